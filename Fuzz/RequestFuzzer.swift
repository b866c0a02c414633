// libFuzzer target for everything that reads bytes from a peer: the request stream decoder
// (fed in pieces whose sizes the input chooses), the response decoder, and RFC 3339 times.
// Built and run by scripts/fuzz; a crash, a trap, a hang or a leak is a finding.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let first = input.first else { return 0 }
    let pieceSize = Int(first % 64) + 1
    let rest = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[1...])

    var decoder = RequestDecoder(maxLineLength: 4096, maxBodySize: 1 << 20, bodyPieceSize: 512)
    var bodyBytes = 0
    var pendingBody: Int64?
    func handle(_ event: RequestEvent) {
        switch event {
        case .request(let request):
            precondition(request.bodySize >= 0 && request.bodySize <= 1 << 20, "BodySize outside the limit got through")
            pendingBody = request.bodySize > 0 ? request.bodySize : nil
            bodyBytes = 0
        case .body(let bytes):
            precondition(pendingBody != nil, "body bytes without a put")
            precondition(bytes.count <= 512 + 3, "body piece over the limit")
            bodyBytes += bytes.count
        case .bodyEnd:
            precondition(Int64(bodyBytes) == pendingBody, "body end with the wrong size")
            pendingBody = nil
        case .error:
            pendingBody = nil
        }
    }
    var offset = 0
    while offset < rest.count {
        let end = min(rest.count, offset + pieceSize)
        decoder.feed(UnsafeRawBufferPointer(rebasing: rest[offset..<end]), handle)
        offset = end
    }
    decoder.finish(handle)

    var responses = ResponseDecoder(maxLineLength: 4096)
    responses.feed(rest) { result in
        if case .success(let response) = result {
            // What parses must encode and parse back to the same thing.
            var again = ResponseDecoder()
            var roundTrip: Response?
            response.encoded().withUnsafeBytes { again.feed($0) { roundTrip = try? $0.get() } }
            precondition(roundTrip == response, "response does not round-trip")
        }
    }
    responses.finish { _ in }

    if rest.count < 64, let time = Timestamp(rfc3339: String(decoding: rest, as: UTF8.self)) {
        precondition(Timestamp(rfc3339: time.rfc3339) == time, "time does not round-trip")
    }
    return 0
}
