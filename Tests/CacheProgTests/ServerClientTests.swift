import CacheProg
import CacheProgTesting
import FileIO
import Synchronization
import Testing

@Suite("Server and client in one process")
struct ServerClientTests {
    @Test("a put is then a hit with the same output ID, size, time and a file holding the body")
    func putThenGet() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let body = pseudoRandomBytes(100_000, seed: 3)  // over the in-memory limit: spooled to a file
        let (result, ending) = try await withInMemoryServer(MemoryCache(directory: dir), spool: dir) { client in
            let before = try await client.get(actionID(1))
            #expect(before == nil)
            let stored = try await client.put(actionID(1), body: body)
            let found = try await client.get(actionID(1))
            let entry = try #require(found)
            try await client.close()
            return (stored, entry)
        }
        let (stored, entry) = result
        #expect(ending == .closed)
        #expect(entry.outputID == OutputID(of: body))
        #expect(entry.size == 100_000)
        #expect(entry.time != nil)
        #expect(try FileSystem.readFile(entry.diskPath) == body)
        #expect(stored.diskPath == entry.diskPath)
        #expect(try FileSystem.contentsOfDirectory(dir).allSatisfy { !$0.hasSuffix(".tmp") })
    }

    @Test("capabilities sent before the handler exists: the handshake completes at once, requests sent meanwhile are answered once the server runs, and no second capabilities message follows")
    func capabilitiesBeforeHandler() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let requests = InMemoryPipe()
        let responses = InMemoryPipe()
        try await CacheServer.sendCapabilities(to: responses.writer)
        // Yields once the client has its handshake; ends either way when the client is done.
        let (handshakes, handshaken) = AsyncStream<Void>.makeStream()
        let body = pseudoRandomBytes(10_000, seed: 5)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { handshaken.finish() }
                let (stored, entry) = try await CacheProgClient.withConnection(
                    reader: responses.reader, writer: requests.writer, handshakeTimeout: .seconds(120), requestTimeout: .seconds(120)
                ) { client in
                    handshaken.yield()
                    let stored = try await client.put(actionID(1), body: body)  // sent before any server runs
                    let entry = try await client.get(actionID(1))
                    try await client.close()
                    return (stored, entry)
                }
                #expect(try FileSystem.readFile(try #require(entry).diskPath) == body)
                #expect(stored.diskPath == entry?.diskPath)
            }
            var completed = false
            for await _ in handshakes {
                completed = true
                break
            }
            #expect(completed, "the handshake completes with no server running")
            if completed {
                try await Task.sleep(for: .milliseconds(20))  // the put waits in the pipe: the handler is still being made
                let server = CacheServer(handler: MemoryCache(directory: dir), configuration: .init(inMemoryBodyLimit: 4096, spoolDirectory: dir))
                let ending = try await server.run(input: requests.reader, output: responses.writer, capabilitiesSent: true)
                #expect(ending == .closed)
            }
            await responses.writer.close()
            try await group.waitForAll()
        }
    }

    /// A backend that names where large bodies are spooled, and records where they arrived.
    final class PlacingCache: CacheHandler {
        let inner: MemoryCache
        let place: String
        let arrived = Mutex<[String]>([])
        init(_ inner: MemoryCache, place: String) {
            self.inner = inner
            self.place = place
        }
        func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? { try await inner.get(actionID, context: context) }
        func put(_ request: PutRequest, context: CacheContext) async throws -> String {
            let at: String
            switch request.body.storage {
            case .file(let path): at = FileSystem.parentDirectory(of: path)
            case .bytes: at = "memory"
            }
            arrived.withLock { $0.append(at) }
            return try await inner.put(request, context: context)
        }
        func spoolDirectory(forBodyOf size: Int64) -> String? { place }
    }

    @Test("large bodies are spooled where the handler says; where that cannot be written, they arrive in memory, never as an error")
    func spoolPlacement() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        try FileSystem.createDirectories(dir + "/chosen")
        let body = pseudoRandomBytes(100_000, seed: 4)
        for (place, expected) in [(dir + "/chosen", dir + "/chosen"), (dir + "/no-such-directory", "memory")] {
            let cache = PlacingCache(MemoryCache(directory: dir), place: place)
            let (bytes, _) = try await withInMemoryServer(cache, spool: dir) { client in
                let stored = try await client.put(actionID(1), body: body)
                try await client.close()
                return try FileSystem.readFile(stored.diskPath)
            }
            #expect(bytes == body)
            #expect(cache.arrived.withLock { $0 } == [expected])
        }
    }

    @Test("1,000 concurrent mixed requests, answered out of order, each matched to its ID")
    func thousandConcurrent() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let cache = MemoryCache(directory: dir, jitter: true)
        let (mismatches, _) = try await withInMemoryServer(cache, spool: dir) { client in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<500 {
                    group.addTask {
                        let body = pseudoRandomBytes(n * 37 % 9000, seed: UInt64(n))
                        let stored = try await client.put(actionID(n), body: body)
                        return try FileSystem.readFile(stored.diskPath) == body ? 0 : 1
                    }
                    group.addTask {
                        // A get racing the put of the same action: a miss or the right entry.
                        guard let entry = try await client.get(actionID(n)) else { return 0 }
                        return entry.outputID == OutputID(of: pseudoRandomBytes(n * 37 % 9000, seed: UInt64(n))) ? 0 : 1
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        #expect(mismatches == 0)
    }

    @Test("end of input without close ends the run normally, after in-flight work")
    func endOfInputWithoutClose() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let cache = MemoryCache(directory: dir)
        let (_, ending) = try await withInMemoryServer(cache, spool: dir) { client in
            _ = try await client.put(actionID(1), body: [1, 2, 3])
        }
        #expect(ending == .endOfInput)
        #expect(cache.closes.current == 0)
    }

    @Test("middleware runs in order: the first sees the request first and the result last")
    func middlewareOrder() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        let trace = TraceLog()
        let metrics = ServerMetrics()
        let middleware: [any CacheMiddleware] = [
            Tracing(name: "outer", trace: trace), Tracing(name: "inner", trace: trace), MetricsMiddleware(metrics: metrics),
        ]
        _ = try await withInMemoryServer(MemoryCache(directory: dir), middleware: middleware, spool: dir) { client in
            _ = try await client.get(actionID(7))
            _ = try await client.put(actionID(7), body: [9, 9])
            _ = try await client.get(actionID(7))
        }
        #expect(trace.entries.prefix(4) == ["outer>get", "inner>get", "inner<get", "outer<get"])
        let totals = metrics.snapshot()
        #expect(totals[.get]?.count == 2)
        #expect(totals[.get]?.hits == 1)
        #expect(totals[.get]?.misses == 1)
        #expect(totals[.put]?.bytes == 2)
    }

    @Test("middleware can answer for the handler")
    func middlewareShortCircuit() async throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileSystem.removeTree(dir) }
        _ = try await withInMemoryServer(MemoryCache(directory: dir), middleware: [ReadOnly()], spool: dir) { client in
            let refused = await #expect(throws: CacheProgClient.Failure.self) { try await client.put(actionID(1), body: [1]) }
            #expect(refused?.code == .requestFailed)
            let entry = try await client.get(actionID(1))
            #expect(entry == nil)
        }
    }

    @Test("a handler error becomes Err and the server keeps serving")
    func handlerErrorIsErr() async throws {
        let (outcome, _) = try await withInMemoryServer(Failing(), spool: "/tmp") { client in
            do {
                _ = try await client.get(actionID(1))
                return "no error"
            } catch let failure as CacheProgClient.Failure {
                return failure.code == .requestFailed ? failure.message : "wrong code"
            }
        }
        #expect(outcome.contains("disk on fire"))
    }
}

final class TraceLog: Sendable {
    private let log = Mutex<[String]>([])
    func append(_ line: String) { log.withLock { $0.append(line) } }
    var entries: [String] { log.withLock { $0 } }
}

struct Tracing: CacheMiddleware {
    let name: String
    let trace: TraceLog
    func handle(_ request: CacheRequest, context: CacheContext, next: (CacheRequest, CacheContext) async throws -> CacheResult) async throws -> CacheResult {
        trace.append("\(name)>\(request.command)")
        defer { trace.append("\(name)<\(request.command)") }
        return try await next(request, context)
    }
}

struct ReadOnly: CacheMiddleware {
    struct Refused: Error {}
    func handle(_ request: CacheRequest, context: CacheContext, next: (CacheRequest, CacheContext) async throws -> CacheResult) async throws -> CacheResult {
        if case .put = request { throw Refused() }
        return try await next(request, context)
    }
}

struct Failing: CacheHandler {
    struct DiskOnFire: Error, CustomStringConvertible { var description: String { "disk on fire" } }
    func get(_ actionID: ActionID, context: CacheContext) async throws -> CacheEntry? { throw DiskOnFire() }
    func put(_ request: PutRequest, context: CacheContext) async throws -> String { throw DiskOnFire() }
}
