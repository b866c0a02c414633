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

    @Test("stats, verify, gc and export walk a catalog of many pages and see every output and chunk")
    func maintenanceSeesEveryPage() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        // 2,600 outputs of 6–10 KB (chunked, not inline): over two pages of manifests and of chunks.
        let count = 2_600
        let bodies = try fill(store, count: count, size: 6_000)
        var chunksOf: [Int] = []
        for n in 0..<count {
            guard case .chunks(let chunks) = try #require(try store.manifest(for: key(n))).content else {
                Issue.record("output \(n) is inline")
                return
            }
            chunksOf.append(chunks.count)
        }
        let stats = store.statistics()
        #expect(stats.outputs == count)
        #expect(stats.uniqueChunks == chunksOf.reduce(0, +))
        #expect(stats.logicalBytes == Int64(count * 6_000))
        let verified = try store.verify(repair: false)
        #expect(verified.checked == count)
        #expect(verified.isHealthy)

        // Half the outputs go: gc removes exactly their chunks (each output's are its own).
        let gone = stride(from: 0, to: count, by: 2)
        try store.catalog.deleteManifests(gone.map(key))
        let garbage = try store.collectGarbage()
        #expect(garbage.chunksRemoved == gone.map { chunksOf[$0] }.reduce(0, +))
        #expect(store.statistics().outputs == count / 2)
        for n in [1, 1_023, 1_025, 2_047, 2_599] { #expect(try temp.read(store, n) == bodies[n]) }

        let archive = temp.path + "/all.ccar"
        let exported = try store.exportArchive(to: archive)
        #expect(exported.manifests == count / 2)
        let copy = try ChunkStore(directory: temp.path + "/copy")
        let imported = try copy.importArchives([archive])
        #expect(imported.manifests == count / 2)
        #expect(copy.statistics().uniqueChunks == store.statistics().uniqueChunks)
    }

    @Test("gc merges the small packs many runs leave into one; every output still reads back")
    func gcMergesSmallPacks() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        var bodies: [Int: [UInt8]] = [:]
        // Six runs, each storing its outputs and recompressing them into a pack of its own.
        for run in 0..<6 {
            for n in (run * 5)..<(run * 5 + 5) {
                bodies[n] = compressibleBytes(60_000, seed: UInt64(n))
                try store.store(key: key(n), outputID: SHA256.hash(bodies[n]!), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(bodies[n]!))
            }
            try store.recompressPendingChunks(level: 3)
            store.packs.finishAppending()
        }
        let before = store.packs.packIDs().count
        #expect(before >= 6)
        let report = try store.collectGarbage()
        #expect(report.packsMerged >= 6)
        #expect(report.chunksRemoved == 0)
        #expect(store.packs.packIDs().count == 1)
        for (n, body) in bodies { #expect(try temp.read(store, n) == body) }
        #expect(try store.verify(repair: false).isHealthy)

        // Fewer small packs than that are left as they are.
        let again = try store.collectGarbage()
        #expect(again.packsMerged == 0)
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

    @Test("verify finds an injected corruption, and repair turns it into a miss", arguments: [false, true])
    func verifyAndRepair(full: Bool) throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        _ = try fill(store, count: 5, size: 50_000)
        #expect(try store.verify(repair: false, full: full).isHealthy)
        let pack = try #require(try temp.files(in: "packs", suffix: ".pack").first)
        var bytes = try FileSystem.readFile(pack)
        bytes[bytes.count - 10] ^= 0x55
        try FileSystem.writeFileAtomically(pack, bytes)
        let reopened = try temp.open()
        let found = try reopened.verify(repair: false, full: full)
        #expect(found.damaged.count == 1)
        let repaired = try reopened.verify(repair: true, full: full)
        #expect(repaired.repaired == 1)
        #expect(try reopened.verify(repair: false, full: full).isHealthy)
        #expect(try reopened.manifest(for: key(4)) == nil)
        #expect(try temp.read(reopened, 0).count == 50_000)
    }

    @Test("verify reads a chunk two outputs share once, and a damage to it is reported for both")
    func verifySharedChunk() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let first = pseudoRandomBytes(100_000, seed: 7)
        let second = first + pseudoRandomBytes(50_000, seed: 8)  // the same leading chunks
        for (n, body) in [first, second].enumerated() {
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        }
        let healthy = try store.verify(repair: false)
        #expect(healthy.isHealthy)
        #expect(healthy.checked == 2)
        #expect(healthy.chunksChecked == store.statistics().uniqueChunks)
        #expect(healthy.chunksChecked < store.statistics().chunkReferences)
        // The first record's payload: the first chunk of both outputs.
        let pack = try #require(try temp.files(in: "packs", suffix: ".pack").first)
        var bytes = try FileSystem.readFile(pack)
        bytes[PackStore.recordHeaderSize + 100] ^= 0x55
        try FileSystem.writeFileAtomically(pack, bytes)
        let found = try temp.open().verify(repair: true)
        #expect(found.damaged.count == 2)
        #expect(found.repaired == 2)
        #expect(try temp.open().verify(repair: false).isHealthy)
    }
}
