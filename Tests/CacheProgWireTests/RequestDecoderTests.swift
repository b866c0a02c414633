import Testing
@testable import CacheProgWire

@Suite("Request stream decoding")
struct RequestDecoderTests {
    @Test("requests round-trip through encode and decode, in any piece size", arguments: [1, 3, 7, 64, 65536])
    func roundTrip(pieceSize: Int) {
        let body = pseudoRandomBytes(10_000)
        var stream = wire(Request(id: 1, command: .get, actionID: sampleAction))
        stream += wire(Request(id: 2, command: .put, actionID: sampleAction, outputID: sampleOutput, bodySize: Int64(body.count)), body: body)
        stream += wire(Request(id: 3, command: .close))
        let decoded = decode(stream, pieceSize: pieceSize)
        #expect(decoded.errors.isEmpty)
        #expect(decoded.requests.map(\.id) == [1, 2, 3])
        #expect(decoded.requests[0] == Request(id: 1, command: .get, actionID: sampleAction))
        #expect(decoded.requests[1].outputID == sampleOutput)
        #expect(decoded.bodies[2] == body)
        #expect(decoded.completed == [1, 2, 3])
    }

    @Test("a put with BodySize 0 has no body line and is complete at once")
    func zeroSizePut() {
        let request = Request(id: 9, command: .put, actionID: sampleAction, outputID: sampleOutput, bodySize: 0)
        let bytes = wire(request, body: [])
        #expect(!bytes.contains(UInt8(ascii: "\"") ) || String(decoding: bytes, as: UTF8.self).hasPrefix("{"))
        #expect(bytes.split(separator: 0x0A).count == 1)
        let decoded = decode(bytes + wire(Request(id: 10, command: .get, actionID: sampleAction)))
        #expect(decoded.errors.isEmpty)
        #expect(decoded.completed == [9, 10])
        #expect(decoded.bodies[9] == nil)
    }

    @Test("a 50 MB body streams in bounded pieces")
    func largeBodyStreams() {
        let size = 50 << 20
        let body = pseudoRandomBytes(size, seed: 7)
        let stream = wire(Request(id: 1, command: .put, actionID: sampleAction, outputID: sampleOutput, bodySize: Int64(size)), body: body)
        let decoded = decode(stream, pieceSize: 1 << 16)
        #expect(decoded.errors.isEmpty)
        #expect(decoded.bodies[1] == body)
        #expect(decoded.largestPiece <= RequestDecoder().bodyPieceSize + 3)
    }

    @Test("what the go command really writes: extra blank lines, unknown fields, ObjectID")
    func goCommandShape() {
        let text = """
            {"ID":1,"Command":"get","ActionID":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="}


            {"ID":2,"Command":"put","ActionID":"q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=","OutputID":"zc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc0=","ObjectID":"zc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc3Nzc0=","BodySize":5,"Future":{"a":[1,2.5e3,null,true]}}

            "aGVsbG8="

            {"id":3,"command":"close"}
            """
        let decoded = decode(Array(text.utf8), pieceSize: 5)
        #expect(decoded.errors.isEmpty)
        #expect(decoded.requests.map(\.command) == [.get, .put, .close])
        #expect(decoded.requests[0].actionID == sampleAction)
        #expect(decoded.bodies[2] == Array("hello".utf8))
    }

    @Test("bad JSON is an error, and the next request still decodes")
    func badJSONRecovers() {
        let stream = Array("{\"ID\":4,\"Command\":\"get\",\"ActionID\":tru}\n".utf8) + wire(Request(id: 5, command: .get, actionID: sampleAction))
        let decoded = decode(stream)
        #expect(decoded.errors.count == 1)
        #expect(decoded.errors[0].code == .malformedJSON)
        #expect(decoded.errors[0].requestID == 4)
        #expect(decoded.requests.map(\.id) == [5])
    }

    @Test("garbage between messages is an error without an ID, then decoding resumes")
    func garbageBetweenMessages() {
        let stream = Array("hello there\n".utf8) + wire(Request(id: 6, command: .close))
        let decoded = decode(stream)
        #expect(decoded.errors.map(\.code) == [.unexpectedInput])
        #expect(decoded.errors[0].requestID == nil)
        #expect(decoded.requests.map(\.id) == [6])
    }

    @Test("a body that is not base64 voids its put and the stream goes on")
    func badBase64() {
        let stream = Array("{\"ID\":7,\"Command\":\"put\",\"BodySize\":3}\n\"a*c=\"\n".utf8) + wire(Request(id: 8, command: .close))
        let decoded = decode(stream)
        #expect(decoded.errors.map(\.code) == [.invalidBase64])
        #expect(decoded.errors[0].requestID == 7)
        #expect(decoded.completed == [8])
    }

    @Test("a body shorter or longer than BodySize is a mismatch for that put", arguments: [2, 4])
    func bodySizeMismatch(declared: Int64) {
        let stream = Array("{\"ID\":7,\"Command\":\"put\",\"BodySize\":\(declared)}\n\"YWJj\"\n".utf8) + wire(Request(id: 8, command: .close))
        let decoded = decode(stream)
        #expect(decoded.errors.map(\.code) == [.bodySizeMismatch])
        #expect(decoded.errors[0].requestID == 7)
        #expect(decoded.bodies[7] == nil)
        #expect(decoded.completed == [8])
    }

    @Test("an absurd or negative BodySize is refused before any body is read", arguments: [Int64.max, -1])
    func absurdBodySize(size: Int64) {
        let stream = Array("{\"ID\":7,\"Command\":\"put\",\"BodySize\":\(size)}\n".utf8) + wire(Request(id: 8, command: .close))
        let decoded = decode(stream, decoder: RequestDecoder(maxBodySize: 1 << 30))
        #expect(decoded.errors.map(\.code) == [.bodyTooLarge])
        #expect(decoded.errors[0].requestID == 7)
        #expect(decoded.completed == [8])
    }

    @Test("a stream that ends inside a body reports the truncated put")
    func truncatedBody() {
        let stream = Array("{\"ID\":7,\"Command\":\"put\",\"BodySize\":30}\n\"YWJj".utf8)
        let decoded = decode(stream)
        #expect(decoded.errors.map(\.code) == [.truncatedStream])
        #expect(decoded.errors[0].requestID == 7)
    }

    @Test("a request line over the limit is refused without buffering it all")
    func lineTooLong() {
        let stream = Array(("{\"ID\":1,\"Command\":\"get\",\"X\":\"" + String(repeating: "a", count: 5000) + "\"}\n").utf8) + wire(Request(id: 2, command: .close))
        let decoded = decode(stream, decoder: RequestDecoder(maxLineLength: 1024))
        #expect(decoded.errors.map(\.code) == [.lineTooLong])
        #expect(decoded.requests.map(\.id) == [2])
    }

    @Test("requests without an ID or Command are invalid")
    func missingFields() {
        let decoded = decode(Array("{\"Command\":\"get\"}\n{\"ID\":3}\n{\"ID\":99999999999999999999,\"Command\":\"get\"}\n".utf8))
        #expect(decoded.errors.map(\.code) == [.invalidField, .invalidField, .malformedJSON])
        #expect(decoded.errors[1].requestID == 3)
        #expect(decoded.requests.isEmpty)
    }

    @Test("deeply nested unknown fields do not overflow the stack")
    func deepNesting() {
        let nested = String(repeating: "[", count: 100_000)
        let decoded = decode(Array("{\"ID\":1,\"Command\":\"get\",\"X\":\(nested)}\n".utf8))
        #expect(decoded.errors.map(\.code) == [.malformedJSON])
    }
}
