/// What `RequestDecoder` finds in the request stream, in order.
public enum RequestEvent {
    /// A request. A put with `bodySize > 0` is followed by `.body` pieces and then `.bodyEnd`
    /// or `.error` (for its ID).
    case request(Request)
    /// Decoded body bytes of the last request; valid only during the callback.
    case body(UnsafeRawBufferPointer)
    /// The body of the last request is complete and exactly `bodySize` bytes.
    case bodyEnd
    /// Input that breaks the protocol. The decoder has skipped past it and goes on with the next
    /// line; when `requestID` is set, that request (and any body bytes it gave) is void.
    case error(WireError)
}

/// Decodes the go command's request stream incrementally, as bytes arrive.
///
/// The stream is JSON objects, one per line, with blank lines between them; a put with a body
/// is followed by one line holding the body as a JSON string of standard base64. Bodies are
/// decoded in pieces of at most `bodyPieceSize` bytes, so a 200 MB body needs no 200 MB buffer.
/// Malformed input is reported as `.error` events; the decoder never traps.
public struct RequestDecoder {
    /// Longest request line accepted (a real one is a few hundred bytes).
    public let maxLineLength: Int
    /// Largest `BodySize` accepted.
    public let maxBodySize: Int64
    /// Largest piece of decoded body handed out at once.
    public let bodyPieceSize: Int

    private enum State {
        case idle
        case header
        case bodyOpen(Request)
        case body(Request)
        case discardBody
        case discardString
        case skipLine
    }

    private var state = State.idle
    private var line: [UInt8] = []
    private var base64 = Base64Decoder()
    private var piece: [UInt8] = []

    public init(maxLineLength: Int = 1 << 20, maxBodySize: Int64 = 1 << 36, bodyPieceSize: Int = 1 << 16) {
        self.maxLineLength = maxLineLength
        self.maxBodySize = maxBodySize
        self.bodyPieceSize = bodyPieceSize
        piece.reserveCapacity(bodyPieceSize + 4)
    }

    /// True between messages: the stream may end here without loss.
    public var isAtMessageBoundary: Bool {
        switch state {
        case .idle, .skipLine, .discardBody: line.isEmpty
        default: false
        }
    }

    /// Decodes `input`, calling `handle` for each event.
    public mutating func feed(_ input: UnsafeRawBufferPointer, _ handle: (RequestEvent) throws -> Void) rethrows {
        let bytes = input.bindMemory(to: UInt8.self)
        var i = 0
        let n = bytes.count
        while i < n {
            switch state {
            case .idle:
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D:
                    i += 1
                case UInt8(ascii: "{"):
                    state = .header
                default:
                    state = .skipLine
                    try handle(.error(WireError(.unexpectedInput, "expected a JSON object, found byte \(bytes[i])")))
                }

            case .header:
                let end = Self.find(0x0A, in: bytes, from: i)
                let stop = end ?? n
                if line.count + (stop - i) > maxLineLength {
                    line.removeAll()
                    state = .skipLine
                    try handle(.error(WireError(.lineTooLong, "request line longer than \(maxLineLength) bytes")))
                    continue
                }
                line.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<stop]))
                i = stop
                if end != nil {
                    i += 1
                    try finishHeader(handle)
                }

            case .bodyOpen(let request):
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D:
                    i += 1
                case UInt8(ascii: "\""):
                    i += 1
                    base64 = Base64Decoder()
                    state = .body(request)
                default:
                    // The body line is missing; what follows may be the next request.
                    state = .idle
                    try handle(.error(WireError(.truncatedStream, "put \(request.id): body line missing", requestID: request.id)))
                }

            case .body(let request):
                let end = Self.find(UInt8(ascii: "\""), in: bytes, from: i)
                var stop = end ?? n
                // Decode in slices so that each piece handed out stays near bodyPieceSize.
                let sliceLimit = max(4, (bodyPieceSize - piece.count) / 3 * 4)
                if stop - i > sliceLimit { stop = i + sliceLimit }
                let ok = base64.decode(UnsafeBufferPointer(rebasing: bytes[i..<stop]), into: &piece)
                i = stop
                if !ok {
                    try failBody(request, WireError(.invalidBase64, "put \(request.id): body is not base64", requestID: request.id), handle)
                    continue
                }
                if base64.decodedCount > request.bodySize {
                    try failBody(request, WireError(.bodySizeMismatch, "put \(request.id): body longer than BodySize \(request.bodySize)", requestID: request.id), handle)
                    continue
                }
                if piece.count >= bodyPieceSize { try flushPiece(handle) }
                if end != nil, i == end {
                    i += 1
                    state = .idle
                    guard base64.finish() else {
                        piece.removeAll(keepingCapacity: true)
                        try handle(.error(WireError(.invalidBase64, "put \(request.id): body base64 ends mid-quad", requestID: request.id)))
                        continue
                    }
                    guard base64.decodedCount == request.bodySize else {
                        piece.removeAll(keepingCapacity: true)
                        try handle(.error(WireError(.bodySizeMismatch, "put \(request.id): body has \(base64.decodedCount) bytes, BodySize says \(request.bodySize)", requestID: request.id)))
                        continue
                    }
                    try flushPiece(handle)
                    try handle(.bodyEnd)
                }

            case .discardBody:
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                case UInt8(ascii: "\""):
                    i += 1
                    state = .discardString
                default: state = .idle
                }

            case .discardString:
                if let end = Self.find(UInt8(ascii: "\""), in: bytes, from: i) {
                    i = end + 1
                    state = .idle
                } else {
                    i = n
                }

            case .skipLine:
                if let end = Self.find(0x0A, in: bytes, from: i) {
                    i = end + 1
                    state = .idle
                } else {
                    i = n
                }
            }
        }
    }

    /// Call at the end of the stream: reports a message cut short.
    public mutating func finish(_ handle: (RequestEvent) throws -> Void) rethrows {
        switch state {
        case .idle, .skipLine, .discardBody, .discardString:
            break
        case .header:
            // A last line without its newline is still a whole object if it parses.
            try finishHeader(handle)
            if case .bodyOpen(let request) = state {
                try handle(.error(WireError(.truncatedStream, "put \(request.id): stream ended before the body", requestID: request.id)))
            }
        case .bodyOpen(let request), .body(let request):
            piece.removeAll()
            try handle(.error(WireError(.truncatedStream, "put \(request.id): stream ended inside the body", requestID: request.id)))
        }
        state = .idle
        line.removeAll()
    }

    private mutating func finishHeader(_ handle: (RequestEvent) throws -> Void) rethrows {
        defer { line.removeAll(keepingCapacity: true) }
        state = .idle
        let parsed: Result<Request, WireError> = line.withUnsafeBufferPointer { buffer in
            Result { () throws(WireError) -> Request in try Request.parse(buffer) }
        }
        switch parsed {
        case .failure(let error):
            try handle(.error(error))
        case .success(let request):
            if request.bodySize < 0 || request.bodySize > maxBodySize {
                // The body line that follows, if any, is skipped without decoding.
                state = request.bodySize > 0 ? .discardBody : .idle
                try handle(.error(WireError(.bodyTooLarge, "request \(request.id): BodySize \(request.bodySize) outside 0...\(maxBodySize)", requestID: request.id)))
                return
            }
            if request.bodySize > 0 { state = .bodyOpen(request) }
            try handle(.request(request))
        }
    }

    private mutating func flushPiece(_ handle: (RequestEvent) throws -> Void) rethrows {
        guard !piece.isEmpty else { return }
        try piece.withUnsafeBytes { try handle(.body($0)) }
        piece.removeAll(keepingCapacity: true)
    }

    private mutating func failBody(_ request: Request, _ error: WireError, _ handle: (RequestEvent) throws -> Void) rethrows {
        piece.removeAll(keepingCapacity: true)
        state = .skipLine
        try handle(.error(error))
    }

    private static func find(_ byte: UInt8, in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchrBytes(base + start, byte, bytes.count - start) else { return nil }
        return found - base
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always)
private func memchrBytes(_ start: UnsafePointer<UInt8>, _ byte: UInt8, _ count: Int) -> UnsafePointer<UInt8>? {
    guard let found = memchr(start, Int32(byte), count) else { return nil }
    return UnsafePointer(found.assumingMemoryBound(to: UInt8.self))
}
