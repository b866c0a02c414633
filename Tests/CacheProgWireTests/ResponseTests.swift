import Testing
@testable import CacheProgWire

@Suite("Responses and other wire values")
struct ResponseTests {
    @Test("a hit response encodes as Go's JSON and parses back")
    func hitRoundTrip() throws {
        let response = Response(id: 12, outputID: sampleOutput, size: 42, time: Timestamp(seconds: 1_700_000_000, nanoseconds: 120_000_000), diskPath: "/tmp/a\"b<c")
        let line = response.encoded()
        let text = String(decoding: line, as: UTF8.self)
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains(#""Time":"2023-11-14T22:13:20.12Z""#))
        #expect(text.contains(#""DiskPath":"/tmp/a\"b\u003cc""#))
        #expect(!text.contains("Miss"))
        var decoder = ResponseDecoder()
        var parsed: [Response] = []
        line.withUnsafeBytes { decoder.feed($0) { parsed.append(try! $0.get()) } }
        #expect(parsed == [response])
    }

    @Test("the capabilities message lists the commands")
    func capabilities() {
        let text = String(decoding: Response.capabilities([.get, .put, .close]).encoded(), as: UTF8.self)
        #expect(text == "{\"ID\":0,\"KnownCommands\":[\"get\",\"put\",\"close\"]}\n")
    }

    @Test("garbage from a cache program is a typed error")
    func garbageResponse() {
        var decoder = ResponseDecoder()
        var results: [Result<Response, WireError>] = []
        Array("not json\n\n{\"ID\":3,\"Miss\":true}\n".utf8).withUnsafeBytes { decoder.feed($0) { results.append($0) } }
        #expect(results.count == 2)
        #expect(throws: WireError.self) { try results[0].get() }
        #expect((try? results[1].get()) == Response(id: 3, miss: true))
    }

    @Test("RFC 3339 times round-trip, with offsets and up to nanoseconds", arguments: [
        ("1970-01-01T00:00:00Z", Int64(0), Int32(0)),
        ("2026-11-27T05:52:33.123456789Z", Int64(1_795_758_753), Int32(123_456_789)),
        ("1969-12-31T23:59:59.5Z", Int64(-1), Int32(500_000_000)),
        ("2000-02-29T12:00:00.000000001Z", Int64(951_825_600), Int32(1)),
    ])
    func timeRoundTrip(text: String, seconds: Int64, nanos: Int32) throws {
        let time = try #require(Timestamp(rfc3339: text))
        #expect(time == Timestamp(seconds: seconds, nanoseconds: nanos))
        #expect(time.rfc3339 == text)
    }

    @Test("a time with a zone offset means the same instant")
    func timeOffset() {
        #expect(Timestamp(rfc3339: "2026-11-27T07:52:33+02:00") == Timestamp(rfc3339: "2026-11-27T05:52:33Z"))
        #expect(Timestamp(rfc3339: "2026-13-27T07:52:33Z") == nil)
        #expect(Timestamp(rfc3339: "yesterday") == nil)
    }

    @Test("base64 round-trips every length, split anywhere")
    func base64Streaming() {
        for length in 0..<40 {
            let bytes = pseudoRandomBytes(length, seed: UInt64(length))
            let text = Array(Base64.encode(bytes).utf8)
            #expect(Base64.decode(text) == bytes)
            for split in 0...text.count {
                var decoder = Base64Decoder()
                var out = [UInt8]()
                text[..<split].withUnsafeBufferPointer { _ = decoder.decode($0, into: &out) }
                text[split...].withUnsafeBufferPointer { _ = decoder.decode($0, into: &out) }
                #expect(decoder.finish())
                #expect(out == bytes)
            }
        }
    }

    @Test("malformed base64 is refused", arguments: ["A", "AB=", "A===", "AB=C", "ABC=D", "AB==AB==", "A B="])
    func base64Malformed(text: String) {
        #expect(Base64.decode(Array(text.utf8)) == nil)
    }

    @Test("IDs are 32 bytes and print as hex")
    func identifiers() {
        #expect(ActionID(bytes: [1, 2, 3]) == nil)
        let id = ActionID(bytes: sampleAction)
        #expect(id?.hex == String(repeating: "ab", count: 32))
        #expect(OutputID(of: Array("hello".utf8)).hex == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    }
}

@Suite("Responses: empty fields")
struct EmptyFieldTests {
    @Test("an empty DiskPath, Err or OutputID means absent, as Go's omitempty does (found by the fuzzer)")
    func emptyIsAbsent() {
        var decoder = ResponseDecoder()
        var parsed: [Response] = []
        Array(#"{"ID":4,"Err":"","OutputID":"","DiskPath":""}"#.utf8).withUnsafeBytes { decoder.feed($0) { _ in } }
        decoder.finish { if let r = try? $0.get() { parsed.append(r) } }
        #expect(parsed == [Response(id: 4)])
    }
}
