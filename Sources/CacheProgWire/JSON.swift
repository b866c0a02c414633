/// A small reader for the flat JSON objects of this protocol: strings, integers, booleans, null,
/// arrays, and nested values it skips. Foundation's decoder is slow on Linux and reports errors
/// without the request ID; this one keeps both under control.
struct JSONReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private static let maxDepth = 64

    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    struct Failure: Error { let message: String }

    private func fail(_ message: String) -> Failure {
        Failure(message: "\(message) at offset \(index)")
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func peek() -> UInt8? {
        skipWhitespace()
        return index < bytes.count ? bytes[index] : nil
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard peek() == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    /// Checks that nothing but white space remains.
    mutating func expectEnd() throws {
        guard peek() == nil else { throw fail("unexpected text after the object") }
    }

    /// Reads an object, calling `field` with each key (as UTF-8) to read or skip its value.
    mutating func readObject(_ field: (inout JSONReader, [UInt8]) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        if peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        while true {
            let key = try readStringBytes()
            try expect(UInt8(ascii: ":"))
            try field(&self, key)
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    /// True (and consumed) if the next value is `null`.
    mutating func readNull() -> Bool {
        guard peek() == UInt8(ascii: "n"), index + 4 <= bytes.count,
            bytes[index + 1] == UInt8(ascii: "u"), bytes[index + 2] == UInt8(ascii: "l"),
            bytes[index + 3] == UInt8(ascii: "l")
        else { return false }
        index += 4
        return true
    }

    mutating func readBool() throws -> Bool {
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw fail("expected true or false")
    }

    private mutating func matchLiteral(_ literal: StaticString) -> Bool {
        _ = peek()
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { return false }
        for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] { return false }
        index += count
        return true
    }

    /// Reads an integer that fits in Int64 (no fraction, no exponent).
    mutating func readInt64() throws -> Int64 {
        _ = peek()
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        let start = index
        var value: Int64 = 0
        while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
            let digit = Int64(bytes[index] - 48)
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            guard !o1, !o2 else { throw fail("integer out of range") }
            value = sum
            index += 1
        }
        guard index > start else { throw fail("expected an integer") }
        if index < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[index]) {
            throw fail("expected an integer, not a fraction")
        }
        return value
    }

    /// Reads a string and returns its UTF-8 bytes, with escapes resolved.
    mutating func readStringBytes() throws -> [UInt8] {
        try expect(UInt8(ascii: "\""))
        var out = [UInt8]()
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return out
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try readHex4()
                    if (0xD800..<0xDC00).contains(scalar), index + 6 <= bytes.count,
                        bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    {
                        index += 2
                        let low = try readHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            scalar = 0xFFFD
                        }
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8))
                default:
                    throw fail("invalid escape")
                }
            case 0..<0x20:
                throw fail("control character in string")
            default:
                out.append(byte)
            }
        }
        throw fail("unterminated string")
    }

    private mutating func readHex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case 48...57: digit = UInt32(byte - 48)
            case 65...70: digit = UInt32(byte - 55)
            case 97...102: digit = UInt32(byte - 87)
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    mutating func readString() throws -> String {
        String(decoding: try readStringBytes(), as: UTF8.self)
    }

    /// Reads an array, calling `element` for each value.
    mutating func readArray(_ element: (inout JSONReader) throws -> Void) throws {
        try expect(UInt8(ascii: "["))
        if peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try element(&self)
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    /// Skips one value of any type, nested at most 64 deep.
    mutating func skipValue(depth: Int = 0) throws {
        guard depth < Self.maxDepth else { throw fail("nesting too deep") }
        switch peek() {
        case UInt8(ascii: "{"):
            try readObject { reader, _ in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "["):
            try readArray { reader in try reader.skipValue(depth: depth + 1) }
        case UInt8(ascii: "\""):
            _ = try readStringBytes()
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            _ = try readBool()
        case UInt8(ascii: "n"):
            guard readNull() else { throw fail("expected null") }
        case .some(let byte) where byte == UInt8(ascii: "-") || (48...57).contains(byte):
            index += 1
            while index < bytes.count {
                switch bytes[index] {
                case 48...57, UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"),
                    UInt8(ascii: "-"):
                    index += 1
                default: return
                }
            }
        default:
            throw fail("expected a value")
        }
    }
}

/// Builds JSON text into a byte array.
struct JSONWriter {
    var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 128) { bytes.reserveCapacity(capacity) }

    mutating func beginObject() {
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() { bytes.append(UInt8(ascii: "}")) }

    private mutating func key(_ name: StaticString) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func field(_ name: StaticString, _ value: Int64) {
        key(name)
        bytes.append(contentsOf: Array(String(value).utf8))
    }

    mutating func field(_ name: StaticString, _ value: Bool) {
        key(name)
        bytes.append(contentsOf: Array((value ? "true" : "false").utf8))
    }

    mutating func field(_ name: StaticString, _ value: String) {
        key(name)
        appendString(value)
    }

    mutating func field(_ name: StaticString, base64 value: [UInt8]) {
        key(name)
        bytes.append(UInt8(ascii: "\""))
        value.withUnsafeBytes { Base64.encode($0, into: &bytes) }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func field(_ name: StaticString, strings values: [String]) {
        key(name)
        bytes.append(UInt8(ascii: "["))
        for (offset, value) in values.enumerated() {
            if offset > 0 { bytes.append(UInt8(ascii: ",")) }
            appendString(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private mutating func appendString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0..<0x20, 0x3C, 0x3E, 0x26:
                // Control characters, and <, >, & as Go escapes them.
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Field names compare as Go's encoding/json compares them: case-insensitively.
func fieldName(_ key: [UInt8], is name: StaticString) -> Bool {
    guard key.count == name.utf8CodeUnitCount else { return false }
    for offset in 0..<key.count {
        let a = key[offset] | 0x20, b = name.utf8Start[offset] | 0x20
        guard a == b else { return false }
    }
    return true
}
