@testable import ChunkStore
import Digests
import FileIO
import Testing

@Suite("Recompression of a run's chunks after the build")
struct RecompressionTests {
    @Test("chunks stored at a fast level shrink at a stronger one; every output reads back the same")
    func shrinks() throws {
        let temp = try TemporaryStore()
        let store = try temp.open(.init(level: 1))
        var bodies: [[UInt8]] = []
        for n in 0..<6 {
            let body = compressibleBytes(400_000, seed: UInt64(40 + n))
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            bodies.append(body)
        }
        let packsBefore = try temp.files(in: "packs", suffix: ".pack")
        let storedBefore = store.statistics().storedBytes
        let report = try store.recompressPendingChunks(level: 9)
        #expect(report.chunks == store.statistics().uniqueChunks)
        #expect(report.packs == 1)
        #expect(report.bytesAfter < report.bytesBefore)
        #expect(store.statistics().storedBytes == storedBefore - (report.bytesBefore - report.bytesAfter))
        let packsAfter = try temp.files(in: "packs", suffix: ".pack")
        #expect(packsAfter.count == 1 && packsAfter != packsBefore, "the old pack is replaced")
        for n in bodies.indices { #expect(try temp.read(store, n) == bodies[n]) }
        #expect(try store.verify(repair: false).isHealthy)
        #expect(try temp.read(try temp.open(), 0) == bodies[0], "a reopened store reads the new pack")
        #expect(try store.recompressPendingChunks(level: 9) == ChunkStore.RecompressionReport(), "nothing new to recompress")
    }

    @Test("packs another process still appends to stay as they are, until it is done with them")
    func ownPacksOnly() throws {
        let temp = try TemporaryStore()
        let mine = try temp.open(.init(level: 1))
        let other = try temp.open(.init(level: 1))
        let a = compressibleBytes(300_000, seed: 50)
        let b = compressibleBytes(300_000, seed: 51)
        try mine.store(key: key(1), outputID: SHA256.hash(a), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(a))
        try other.store(key: key(2), outputID: SHA256.hash(b), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(b))
        let otherPack = try #require(try temp.files(in: "packs", suffix: ".pack").first { path in
            // The other store's pack: the one holding b's chunks.
            guard case .chunks(let chunks) = try other.manifest(for: key(2))?.content, let first = chunks.first,
                let location = try other.catalog.location(of: first.digest)
            else { return false }
            return path.hasSuffix(PackStore.name(of: location.pack) + ".pack")
        })
        try mine.recompressPendingChunks(level: 9)
        #expect(FileSystem.exists(otherPack))
        #expect(try temp.read(other, 2) == b)
        #expect(try temp.read(mine, 1) == a)
        #expect(try temp.read(other, 1) == a, "other processes find moved chunks too")
        #expect(mine.pendingRecompression().packs == 1, "the other's pack is still pending")

        other.packs.finishAppending()  // as its run ends
        let report = try mine.recompressPendingChunks(level: 9)
        #expect(report.packs == 1 && report.packsLeft == 0, "any process takes up a finished pending pack")
        #expect(!FileSystem.exists(otherPack))
        #expect(try temp.read(other, 2) == b)
    }

    /// A store holding `count` outputs of 400 KB stored at zstd-1, about 25 chunks each.
    func fastStore(_ temp: borrowing TemporaryStore, count: Int) throws -> (ChunkStore, [[UInt8]]) {
        let store = try temp.open(.init(level: 1))
        var bodies: [[UInt8]] = []
        for n in 0..<count {
            let body = compressibleBytes(400_000, seed: UInt64(70 + n))
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            bodies.append(body)
        }
        return (store, bodies)
    }

    @Test("a CPU limit stops it after a batch; the rest stays pending and a later run finishes it")
    func boundedAndResumed() throws {
        let temp = try TemporaryStore()
        let (store, bodies) = try fastStore(temp, count: 8)
        let chunks = store.statistics().uniqueChunks
        #expect(chunks > 2 * ChunkStore.recompressionBatch)

        let first = try store.recompressPendingChunks(level: 9, cpuLimit: .zero)
        #expect(first.chunks == ChunkStore.recompressionBatch, "one batch, then the limit")
        #expect(first.packs == 0 && first.packsLeft == 1)
        #expect(store.pendingRecompression().packs == 1)
        for n in bodies.indices { #expect(try temp.read(store, n) == bodies[n]) }
        #expect(try store.verify(repair: false).isHealthy)

        let later = try temp.open(.init(level: 1))  // the next run
        let second = try later.recompressPendingChunks(level: 9)
        #expect(first.chunks + second.chunks == chunks)
        #expect(second.packs == 1 && second.packsLeft == 0)
        #expect(later.pendingRecompression().packs == 0)
        #expect(later.statistics().pendingPackFiles == 0)
        for n in bodies.indices { #expect(try temp.read(later, n) == bodies[n]) }
        #expect(try later.verify(repair: false).isHealthy)
    }

    @Test("one process at a time: one that finds recompression under way leaves the work to it")
    func oneAtATime() throws {
        let temp = try TemporaryStore()
        let (store, bodies) = try fastStore(temp, count: 2)
        let busy = try FileDescriptor.open(temp.path + "/store/recompress.lock", [.readWrite, .create], permissions: 0o600)
        #expect(try busy.lock(exclusive: true, wait: false))
        let skipped = try store.recompressPendingChunks(level: 9)
        #expect(skipped.leftToAnotherProcess && skipped.chunks == 0 && skipped.packsLeft == 1)
        busy.close()
        let done = try store.recompressPendingChunks(level: 9)
        #expect(!done.leftToAnotherProcess && done.chunks == store.statistics().uniqueChunks && done.packsLeft == 0)
        for n in bodies.indices { #expect(try temp.read(store, n) == bodies[n]) }
    }

    @Test("a store at the stronger level already, or with zlib, is left alone")
    func nothingToGain() throws {
        for configuration in [ChunkStore.Configuration(level: 9), ChunkStore.Configuration(codec: .zlib)] {
            let temp = try TemporaryStore()
            let store = try temp.open(configuration)
            let body = compressibleBytes(100_000, seed: 52)
            try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            #expect(try store.recompressPendingChunks(level: 9).chunks == 0)
            #expect(try temp.read(store, 1) == body)
        }
    }
}
