/// Splits a cache program's output into responses, for clients. Blank lines are skipped.
public struct ResponseDecoder {
    /// Longest response line accepted.
    public let maxLineLength: Int
    private var line: [UInt8] = []
    private var overflowed = false

    public init(maxLineLength: Int = 1 << 20) { self.maxLineLength = maxLineLength }

    /// Decodes `input`, calling `handle` with each response or the error for a bad line.
    public mutating func feed(_ input: UnsafeRawBufferPointer, _ handle: (Result<Response, WireError>) throws -> Void) rethrows {
        for byte in input {
            if byte != 0x0A {
                if line.count < maxLineLength { line.append(byte) } else { overflowed = true }
                continue
            }
            try finishLine(handle)
        }
    }

    /// Call at the end of the stream: a last line without a newline still counts.
    public mutating func finish(_ handle: (Result<Response, WireError>) throws -> Void) rethrows {
        try finishLine(handle)
    }

    private mutating func finishLine(_ handle: (Result<Response, WireError>) throws -> Void) rethrows {
        defer {
            line.removeAll(keepingCapacity: true)
            overflowed = false
        }
        if overflowed {
            try handle(.failure(WireError(.lineTooLong, "response line longer than \(maxLineLength) bytes")))
            return
        }
        guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { return }
        let result = line.withUnsafeBufferPointer { buffer in
            Result { () throws(WireError) -> Response in try Response.parse(buffer) }
        }
        try handle(result)
    }
}

/// Writes a put body as the go command does: `"`, standard base64, `"`, newline.
public struct BodyEncoder {
    private var encoder = Base64Encoder()

    public init() {}

    /// The opening quote.
    public func begin(into out: inout [UInt8]) { out.append(UInt8(ascii: "\"")) }

    /// Characters for the next piece of the body.
    public mutating func encode(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        encoder.encode(bytes, into: &out)
    }

    /// The last characters, the closing quote and the newline.
    public mutating func end(into out: inout [UInt8]) {
        encoder.finish(into: &out)
        out.append(contentsOf: [UInt8(ascii: "\""), 0x0A])
    }
}
