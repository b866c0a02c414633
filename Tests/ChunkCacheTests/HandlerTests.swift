import CacheProg
import CacheProgTesting
import ChunkCache
@testable import ChunkStore
import Digests
import Dispatch
import FileIO
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `ChunkCacheHandler` driven in this process (CacheProgTesting), as the go command drives it.
@Suite("ChunkCache handler, in process")
struct HandlerTests {
    let temp = "/tmp/handler-test-" + FileSystem.uniqueSuffix()

    func body(_ n: Int) -> [UInt8] { pseudoRandomBytes(50_000 + n * 1000, seed: UInt64(n)) }

    func actionID(_ n: Int) -> ActionID { ActionID(SHA256.hash(Array("action \(n)".utf8))) }

    func handler() throws -> ChunkCacheHandler {
        try ChunkCacheHandler(store: ChunkStore(directory: temp + "/store"), budget: .init(recompressLevel: nil))
    }

    @Test("a put then a get: the get names a plain file holding exactly the body, counted as a hit")
    func putThenGet() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let cache = try handler()
        let (bytes, ending) = try await withInProcessServer(cache) { client in
            _ = try await client.put(actionID(1), body: body(1))
            let entry = try #require(try await client.get(actionID(1)))
            #expect(entry.outputID == OutputID(of: body(1)) && entry.size == Int64(body(1).count))
            let bytes = try FileSystem.readFile(entry.diskPath)
            #expect(try await client.get(actionID(2)) == nil)
            try await client.close()
            return bytes
        }
        #expect(bytes == body(1))
        #expect(ending == .closed)
        #expect(cache.counters.hits.current == 1 && cache.counters.misses.current == 1)
    }

    @Test("a damaged chunk is a miss: the entry is set aside (manifest quarantined, chunk forgotten) and the next put repairs it")
    func damageSetAside() async throws {
        defer { try? FileSystem.removeTree(temp) }
        _ = try await withInProcessServer(try handler()) { client in
            _ = try await client.put(actionID(1), body: body(1))
            try await client.close()
        }
        try damagePacks(of: temp + "/store")
        let cache = try handler()
        let (again, _) = try await withInProcessServer(cache) { client in
            #expect(try await client.get(actionID(1)) == nil)
            #expect(try cache.store.manifest(for: actionID(1).digest) == nil, "quarantined: a plain miss from now on")
            _ = try await client.put(actionID(1), body: body(1))
            let bytes = try await client.get(actionID(1)).map { try FileSystem.readFile($0.diskPath) }
            try await client.close()
            return bytes
        }
        #expect(again == body(1))
        #expect(cache.store.statistics().damaged == 1)
    }

    @Test("a long gc holding the store's lock does not stall the reading of requests: gets are answered while puts wait")
    func gcDoesNotStallReading() async throws {
        defer { try? FileSystem.removeTree(temp) }
        let cache = try handler()
        let held = Atomic<Bool>(false)
        let released = Atomic<Bool>(false)
        let (answeredDuringGC, _) = try await withInProcessServer(cache) { client in
            _ = try await client.put(actionID(0), body: body(0))
            // gc's exclusive hold, on a thread of its own, as another process's gc would be.
            let store = cache.store
            DispatchQueue(label: "gc").async {
                _ = try? store.lock.withExclusive {
                    held.store(true, ordering: .sequentiallyConsistent)
                    usleep(1_500_000)
                    released.store(true, ordering: .sequentiallyConsistent)
                }
            }
            while !held.load(ordering: .sequentiallyConsistent) { try await Task.sleep(for: .milliseconds(5)) }
            // More puts than the machine has cores, each blocked on the lock.
            let puts = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for n in 1...6 { group.addTask { _ = try await client.put(actionID(n), body: body(n)) } }
                    try await group.waitForAll()
                }
            }
            try await Task.sleep(for: .milliseconds(100))
            let hit = try await client.get(actionID(0))
            let answeredDuringGC = !released.load(ordering: .sequentiallyConsistent)
            #expect(hit != nil)
            try await puts.value
            for n in 1...6 { #expect(try await client.get(actionID(n)) != nil, "put \(n) stored once gc let go") }
            try await client.close()
            return answeredDuringGC
        }
        #expect(answeredDuringGC, "the get was answered while gc held the lock")
    }
}
