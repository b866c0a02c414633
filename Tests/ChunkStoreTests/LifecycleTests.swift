@testable import ChunkStore
import Digests
import FileIO
import Testing

@Suite("Store lifecycle: trim, gc, verify")
struct LifecycleTests {
    /// Stores outputs 0..<count, each with its own content, used at times 1000+n.
    func fill(_ store: ChunkStore, count: Int, size: Int = 200_000) throws -> [[UInt8]] {
        var bodies: [[UInt8]] = []
        for n in 0..<count {
            let body = pseudoRandomBytes(size, seed: UInt64(1000 + n))
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: Int64(1000 + n)), body: .bytes(body))
            bodies.append(body)
        }
        return bodies
    }

    @Test("trim over budget evicts least recently used outputs; the rest still hit")
    func trimToBudget() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let bodies = try fill(store, count: 20)
        try store.recordUse(of: [key(0), key(1)], at: Timestamp(nanosecondsSinceEpoch: 10_000))  // recently used: must survive
        let before = store.diskUsage
        let report = try store.trim(maxSize: before / 2, maxAge: nil)
        #expect(report.evicted > 0)
        #expect(store.diskUsage <= before / 2)
        #expect(try temp.read(store, 0) == bodies[0])
        #expect(try temp.read(store, 1) == bodies[1])
        #expect(try store.manifest(for: key(2)) == nil, "the least recently used go first")
        var kept = 0
        for n in 0..<20 where try store.manifest(for: key(n)) != nil {
            #expect(try temp.read(store, n) == bodies[n])
            kept += 1
        }
        #expect(kept == 20 - report.evicted)
        #expect(store.statistics().evictions == Int64(report.evicted))
    }

    @Test("trim to a size on a store whose outputs share most chunks leaves 85-95 % of it, not far less")
    func trimSharedChunks() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        // 60 outputs, each six 64 KiB blocks drawn from a pool of 24 (shared with other outputs)
        // and one block of its own: evicting one output frees little more than its own block.
        let pool = (0..<24).map { pseudoRandomBytes(64 << 10, seed: UInt64(5000 + $0)) }
        for n in 0..<60 {
            var body: [UInt8] = []
            for k in 0..<6 { body += pool[(n * 7 + k * 5) % pool.count] }
            body += pseudoRandomBytes(64 << 10, seed: UInt64(6000 + n))
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: Int64(1000 + n)), body: .bytes(body))
        }
        let budget = store.diskUsage / 2
        let report = try store.trim(maxSize: budget, maxAge: nil)
        let left = Double(store.diskUsage) / Double(budget)
        #expect(left >= 0.85 && left <= 0.95, "left \(left) of the budget after evicting \(report.evicted) of 60")
        #expect(try store.manifest(for: key(59)) != nil, "the most recently used stay")
        #expect(try store.verify(repair: false).isHealthy)
    }

    @Test("trim drops outputs unused for longer than the age limit")
    func trimByAge() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        _ = try fill(store, count: 3)
        try store.recordUse(of: [key(2)], at: .now)
        let report = try store.trim(maxSize: nil, maxAge: .seconds(3600))
        #expect(report.expired == 2)
        #expect(try store.manifest(for: key(0)) == nil)
        #expect(try store.manifest(for: key(2)) != nil)
    }

    @Test("gc removes unused chunks and empty packs, and frees their space")
    func gcFreesSpace() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        _ = try fill(store, count: 10)
        try store.catalog.deleteManifests((0..<10).map(key))
        let before = store.diskUsage
        let report = try store.collectGarbage()
        #expect(report.chunksRemoved > 0)
        #expect(report.packsRemoved + report.packsCompacted >= 1)
        #expect(store.diskUsage < before / 2)
    }

    @Test("gc compacts a mostly dead pack; what was kept still reads back")
    func gcCompacts() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let bodies = try fill(store, count: 10)
        try store.catalog.deleteManifests((1..<10).map(key))
        let report = try store.collectGarbage()
        #expect(report.packsCompacted == 1)
        #expect(try temp.read(store, 0) == bodies[0])
        #expect(try temp.open().verify(repair: false).isHealthy)
    }

    @Test("gc during concurrent puts loses nothing")
    func gcDuringPuts() async throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let writer = try temp.open()  // a second handle, as another process would have
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for n in 0..<60 {
                    let body = pseudoRandomBytes(100_000, seed: UInt64(n % 7))  // repeats: dedup hits
                    try writer.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: Int64(n)), body: .bytes(body))
                }
            }
            group.addTask {
                for _ in 0..<20 {
                    try store.collectGarbage(compactBelow: 1.0)
                    try await Task.sleep(for: .milliseconds(5))
                }
            }
            try await group.waitForAll()
        }
        try store.collectGarbage(compactBelow: 1.0)
        for n in 0..<60 {
            #expect(try temp.read(store, n) == pseudoRandomBytes(100_000, seed: UInt64(n % 7)))
        }
    }

    @Test("verify finds an injected corruption, and repair turns it into a miss")
    func verifyAndRepair() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        _ = try fill(store, count: 5, size: 50_000)
        #expect(try store.verify(repair: false).isHealthy)
        let pack = try #require(try temp.files(in: "packs", suffix: ".pack").first)
        var bytes = try FileSystem.readFile(pack)
        bytes[bytes.count - 10] ^= 0x55
        try FileSystem.writeFileAtomically(pack, bytes)
        let reopened = try temp.open()
        let found = try reopened.verify(repair: false)
        #expect(found.damaged.count == 1)
        let repaired = try reopened.verify(repair: true)
        #expect(repaired.repaired == 1)
        #expect(try reopened.verify(repair: false).isHealthy)
        #expect(try reopened.manifest(for: key(4)) == nil)
        #expect(try temp.read(reopened, 0).count == 50_000)
    }
}
