/// The part of the Remote Execution API's `ActionResult` message (build.bazel.remote.execution.v2)
/// that an action-cache entry of ours uses: output files, each a path and a digest (hex SHA-256
/// and size) and, optionally, its contents inline. Stock bazel-remote accepts only this message
/// under `ac/`, and stores it re-serialized with fields of its own added (worker metadata), so
/// decoding skips every field it does not know.
///
/// Wire format (protobuf): ActionResult.output_files = 2; OutputFile.path = 1, .digest = 2,
/// .is_executable = 4, .contents = 5; Digest.hash = 1, .size_bytes = 2.
struct ActionResult: Equatable, Sendable {
    struct OutputFile: Equatable, Sendable {
        var path: String
        var hash: String
        var size: Int64
        var contents: [UInt8]?
    }

    var outputFiles: [OutputFile]

    struct Malformed: Error {}

    func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for file in outputFiles {
            var digest: [UInt8] = []
            Protobuf.appendBytes(1, Array(file.hash.utf8), to: &digest)
            Protobuf.appendVarint(2, UInt64(file.size), to: &digest)
            var message: [UInt8] = []
            Protobuf.appendBytes(1, Array(file.path.utf8), to: &message)
            Protobuf.appendBytes(2, digest, to: &message)
            if let contents = file.contents { Protobuf.appendBytes(5, contents, to: &message) }
            Protobuf.appendBytes(2, message, to: &out)
        }
        return out
    }

    init(outputFiles: [OutputFile]) { self.outputFiles = outputFiles }

    init(decoding bytes: [UInt8]) throws(Malformed) {
        outputFiles = []
        for field in try Protobuf.fields(bytes[...]) where field.number == 2 {
            guard case .bytes(let message) = field.value else { throw Malformed() }
            var file = OutputFile(path: "", hash: "", size: 0, contents: nil)
            for part in try Protobuf.fields(message) {
                switch (part.number, part.value) {
                case (1, .bytes(let path)): file.path = String(decoding: path, as: UTF8.self)
                case (5, .bytes(let contents)): file.contents = Array(contents)
                case (2, .bytes(let digest)):
                    for entry in try Protobuf.fields(digest) {
                        switch (entry.number, entry.value) {
                        case (1, .bytes(let hash)): file.hash = String(decoding: hash, as: UTF8.self)
                        case (2, .varint(let size)):
                            guard size <= UInt64(Int64.max) else { throw Malformed() }
                            file.size = Int64(size)
                        default: continue
                        }
                    }
                default: continue
                }
            }
            outputFiles.append(file)
        }
    }
}

/// Just enough of protobuf's wire format: varints and length-delimited fields written; every
/// wire type read (so unknown fields are skipped), with lengths checked against the input.
enum Protobuf {
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    static func appendVarint(_ number: Int, _ value: UInt64, to out: inout [UInt8]) {
        appendVarint(UInt64(number << 3), to: &out)
        appendVarint(value, to: &out)
    }

    static func appendBytes(_ number: Int, _ bytes: [UInt8], to out: inout [UInt8]) {
        appendVarint(UInt64(number << 3 | 2), to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out += bytes
    }

    static func fields(_ bytes: ArraySlice<UInt8>) throws(ActionResult.Malformed) -> [(number: Int, value: Value)] {
        var index = bytes.startIndex
        func varint() throws(ActionResult.Malformed) -> UInt64 {
            var value: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                guard index < bytes.endIndex else { throw ActionResult.Malformed() }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << UInt64(shift)
                if byte < 0x80 { return value }
            }
            throw ActionResult.Malformed()
        }
        var fields: [(number: Int, value: Value)] = []
        while index < bytes.endIndex {
            let tag = try varint()
            let number = Int(truncatingIfNeeded: tag >> 3)
            guard number > 0 else { throw ActionResult.Malformed() }
            switch tag & 7 {
            case 0: fields.append((number, .varint(try varint())))
            case 1, 5:
                let width = tag & 7 == 1 ? 8 : 4
                guard bytes.endIndex - index >= width else { throw ActionResult.Malformed() }
                index += width
                fields.append((number, .fixed))
            case 2:
                let length = try varint()
                guard length <= UInt64(bytes.endIndex - index) else { throw ActionResult.Malformed() }
                let end = index + Int(length)
                fields.append((number, .bytes(bytes[index..<end])))
                index = end
            default: throw ActionResult.Malformed()  // groups (3, 4) are not used by this message
            }
        }
        return fields
    }
}
