@testable import CacheProg
import FileIO
import Testing

@Suite("Client and server across real processes")
struct SubprocessTests {
    var diskBackend: String { productsDirectory + "/cacheprog-disk" }

    @Test("the client drives cacheprog-disk: 1,000 concurrent requests, then close, exit 0")
    func driveDiskBackend() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let (mismatches, status) = try await CacheProgClient.withProgram([diskBackend, "--dir", dir]) { client in
            let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<1000 {
                    group.addTask {
                        let body = pseudoRandomBytes(n * 101 % 300_000, seed: UInt64(n))
                        let stored = try await client.put(actionID(n), body: body)
                        return try FileSystem.readFile(stored.diskPath) == body ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
            for n in stride(from: 0, to: 1000, by: 97) {
                let found = try await client.get(actionID(n))
                let entry = try #require(found)
                #expect(entry.size == Int64(n * 101 % 300_000))
                #expect(entry.time != nil)
            }
            try await client.close()
            return mismatches
        }
        #expect(mismatches == 0)
        #expect(status == 0)
    }

    @Test("a file put streams from disk and DiskPaths have no extension")
    func filePut() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let source = dir + "/source"
        let body = pseudoRandomBytes(3 << 20, seed: 9)
        try FileSystem.writeFileAtomically(source, body)
        let (stored, _) = try await CacheProgClient.withProgram([diskBackend, "--dir", dir + "/cache"]) { client in
            try await client.put(actionID(1), file: source)
        }
        #expect(stored.outputID == OutputID(of: body))
        #expect(!(stored.diskPath.split(separator: "/").last ?? "").contains("."))
        #expect(try FileSystem.readFile(stored.diskPath) == body)
    }

    @Test("malformed requests get Err replies or are skipped; the server stays usable and exits 0 at EOF")
    func malformedInputToServer() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let child = try ChildProcess.launch([diskBackend, "--dir", dir], environment: nil)
        let good = Base64.encode([UInt8](repeating: 7, count: 32))
        let script = """
            garbage that is not json
            {"ID":1,"Command":"get","ActionID":"c2hvcnQ="}
            {"ID":2,"Command":"put","ActionID":"\(good)","OutputID":"\(good)","BodySize":4}
            "!!!!"
            {"ID":3,"Command":"frobnicate"}
            {"ID":4,"Command":"put","ActionID":"\(good)","OutputID":"\(good)","BodySize":99999999999999999}
            "AAAA"
            {"ID":5,"Command":"get","ActionID":"\(good)"}

            """
        try child.input.writeAll(Array(script.utf8))
        child.input.close()
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try child.output.read(into: $0) }
            if n == 0 { break }
            output += buffer[..<n]
        }
        child.output.close()
        let status = await child.wait()
        var replies: [Int64: Response] = [:]
        var decoder = ResponseDecoder()
        output.withUnsafeBytes { decoder.feed($0) { if let r = try? $0.get() { replies[r.id] = r } } }
        #expect(status == 0)
        #expect(replies[0]?.knownCommands == [.get, .put, .close])
        for id: Int64 in [1, 2, 3, 4] { #expect(replies[id]?.err?.isEmpty == false, "request \(id) should fail") }
        #expect(replies[5]?.miss == true)
    }

    @Test("a program that dies mid-run fails pending requests cleanly")
    func programDies() async throws {
        let script = #"printf '{"ID":0,"KnownCommands":["get","put","close"]}\n'; read line; exit 3"#
        let (failure, status) = try await CacheProgClient.withProgram(["sh", "-c", script]) { client in await failureOfGet(client) }
        #expect(failure == .programExited)
        #expect(status == 3)
    }

    @Test("a program that answers garbage is a protocol violation")
    func programAnswersGarbage() async throws {
        let script = #"printf '{"ID":0,"KnownCommands":["get"]}\n'; read line; echo 'hello?'; exec sleep 5"#
        let (failure, _) = try await CacheProgClient.withProgram(["sh", "-c", script], exitTimeout: .milliseconds(200)) { client in await failureOfGet(client) }
        #expect(failure == .protocolViolation)
    }

    @Test("a program that never answers times out, and is killed")
    func programNeverAnswers() async throws {
        let script = #"printf '{"ID":0,"KnownCommands":["get"]}\n'; exec sleep 30"#
        let (failure, status) = try await CacheProgClient.withProgram(["sh", "-c", script], requestTimeout: .milliseconds(300), exitTimeout: .milliseconds(300)) { client in await failureOfGet(client) }
        #expect(failure == .timedOut)
        #expect(status == 128 + 9)
    }

    @Test("a program that never sends capabilities fails the handshake")
    func noHandshake() async throws {
        await #expect(throws: CacheProgClient.Failure.self) {
            _ = try await CacheProgClient.withProgram(["sleep", "30"], handshakeTimeout: .milliseconds(300), exitTimeout: .milliseconds(100)) { _ in 0 }
        }
    }
}

/// The failure code of a get that should fail; nil if it succeeded or failed otherwise.
func failureOfGet(_ client: CacheProgClient) async -> CacheProgClient.Failure.Code? {
    do {
        _ = try await client.get(actionID(1))
        return nil
    } catch let failure as CacheProgClient.Failure {
        return failure.code
    } catch {
        return nil
    }
}
