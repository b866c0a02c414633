@_exported import TestSupport
@testable import CacheProgWire

/// What a decoder produced, gathered for assertions.
struct Decoded {
    var requests: [Request] = []
    var bodies: [Int64: [UInt8]] = [:]
    var completed: Set<Int64> = []
    var errors: [WireError] = []
    var largestPiece = 0
}

/// Feeds `stream` to a fresh decoder in pieces of `pieceSize` bytes and collects the events.
func decode(_ stream: [UInt8], pieceSize: Int = 4096, decoder: RequestDecoder = RequestDecoder()) -> Decoded {
    var decoder = decoder
    var result = Decoded()
    var current: Int64?
    func handle(_ event: RequestEvent) {
        switch event {
        case .request(let request):
            result.requests.append(request)
            current = request.id
            if request.bodySize == 0 { result.completed.insert(request.id) }
        case .body(let bytes):
            result.largestPiece = max(result.largestPiece, bytes.count)
            result.bodies[current!, default: []].append(contentsOf: bytes)
        case .bodyEnd:
            result.completed.insert(current!)
        case .error(let error):
            result.errors.append(error)
            if let id = error.requestID { result.bodies[id] = nil }
        }
    }
    var offset = 0
    while offset < stream.count {
        let end = min(stream.count, offset + pieceSize)
        stream[offset..<end].withUnsafeBytes { decoder.feed($0, handle) }
        offset = end
    }
    decoder.finish(handle)
    return result
}

/// A request line plus its body line, exactly as the go command writes them.
func wire(_ request: Request, body: [UInt8]? = nil) -> [UInt8] {
    var out = request.encoded()
    if let body, !body.isEmpty {
        var encoder = BodyEncoder()
        encoder.begin(into: &out)
        body.withUnsafeBytes { encoder.encode($0, into: &out) }
        encoder.end(into: &out)
    }
    return out
}

let sampleAction = [UInt8](repeating: 0xAB, count: 32)
let sampleOutput = [UInt8](repeating: 0xCD, count: 32)
