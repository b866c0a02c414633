import CacheProg

#if canImport(Glibc)
import Glibc
#endif

/// The simplest useful backend: one file per output, one small record per action.
///
///     DIR/o/<output ID hex>   the body
///     DIR/a/<action ID hex>   "<output ID hex> <size> <put time in ns>"
///
/// Writes are atomic (temporary file, then rename), so concurrent processes sharing DIR and a
/// process killed mid-put never leave a partial file under a real name. It uses only the
/// CacheProg library and the C library, as a backend of your own would.
struct DiskCache: CacheHandler {
    let directory: String

    init(directory: String) throws {
        self.directory = directory.hasPrefix("/") ? directory : Self.currentDirectory() + "/" + directory
        for path in [self.directory, self.directory + "/a", self.directory + "/o", self.directory + "/tmp"] {
            guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw Failure("mkdir \(path)") }
        }
    }

    var spoolDirectory: String { directory + "/tmp" }

    func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? {
        guard let record = Self.read(directory + "/a/" + actionID.hex) else { return nil }
        let fields = String(decoding: record, as: UTF8.self).split(separator: " ")
        guard fields.count == 3, let outputID = OutputID(hex: fields[0]), let size = Int64(fields[1]),
            let nanos = Int64(fields[2])
        else { return nil }
        let path = directory + "/o/" + outputID.hex
        // An output that vanished or changed size is a miss, never a wrong answer.
        guard Self.size(of: path) == size else { return nil }
        return CacheEntry(outputID: outputID, size: size, time: Timestamp(nanosecondsSinceEpoch: nanos), diskPath: path)
    }

    func put(_ request: PutRequest, context: CacheContext) async throws -> String {
        let path = directory + "/o/" + request.outputID.hex
        if Self.size(of: path) != request.body.size {
            switch request.body.storage {
            case .file(let spooled):
                guard rename(spooled, path) == 0 else { throw Failure("rename \(spooled)") }
            case .bytes(let bytes):
                try writeAtomically(path, bytes)
            }
        }
        let record = "\(request.outputID.hex) \(request.body.size) \(Timestamp.now.nanosecondsSinceEpoch)"
        try writeAtomically(directory + "/a/" + request.actionID.hex, Array(record.utf8))
        return path
    }

    // MARK: Files, with the C library

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
    }

    /// Writes `bytes` to a temporary file beside `path`, then renames it into place.
    private func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = spoolDirectory + "/.\(getpid()).\(UInt64.random(in: 0...UInt64.max)).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure("open \(temporary)") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                Glibc.close(fd)
                unlink(temporary)
                throw Failure("write \(temporary)")
            }
            written += n
        }
        Glibc.close(fd)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw Failure("rename \(temporary)")
        }
    }

    private static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return n == 0 ? bytes : nil }
            bytes += buffer[..<n]
        }
    }

    private static func size(of path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    private static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "." }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}
