@testable import ChunkStore
import Digests
import FileIO
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Chunk store")
struct ChunkStoreTests {
    @Test("outputs of every size round-trip: inline, one chunk, many chunks", arguments: [0, 1, 4096, 4097, 20_000, 3 << 20])
    func roundTrip(size: Int) throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(size, seed: UInt64(size))
        #expect(try temp.roundTrip(store, 1, body) == body)
        let manifest = try #require(try store.manifest(for: key(1)))
        #expect(manifest.size == Int64(size))
        if size <= 4096 {
            guard case .inline = manifest.content else { Issue.record("expected inline"); return }
        }
    }

    @Test("a body in a file streams through the chunker and round-trips")
    func fileBody() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(5 << 20, seed: 8)
        let source = temp.path + "/body"
        try FileSystem.writeFileAtomically(source, body)
        try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 5), body: .file(path: source))
        #expect(try temp.read(store, 1) == body)
        #expect(try store.manifest(for: key(1))?.time == Timestamp(nanosecondsSinceEpoch: 5))
    }

    @Test("a put of many batches records its chunks as it goes: it round-trips, repeats within it are stored once, and nothing is left unnamed")
    func largePutRecordsAsItGoes() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        // 3 MiB of random bytes twice: the second copy's chunks are those of earlier batches.
        let half = pseudoRandomBytes(3 << 20, seed: 21)
        let body = half + half
        let source = temp.path + "/body"
        try FileSystem.writeFileAtomically(source, body)
        try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 5), body: .file(path: source))
        #expect(try temp.read(store, 1) == body)
        let stats = store.statistics()
        #expect(stats.uniqueBytes < Int64(half.count) + (256 << 10), "the repeated half is stored once")
        #expect(stats.chunkReferences > stats.uniqueChunks)
        // Every chunk the catalog has is named by the manifest: gc finds nothing to remove.
        #expect(try store.collectGarbage().chunksRemoved == 0)
        #expect(try store.verify(repair: false, full: true).isHealthy)
    }

    @Test("both codecs round-trip, and compress build-like data", arguments: [Codec.zstd, .zlib])
    func codecs(codec: Codec) throws {
        let temp = try TemporaryStore()
        let store = try temp.open(.init(codec: codec))
        let body = compressibleBytes(1 << 20, seed: 4)
        #expect(try temp.roundTrip(store, 1, body) == body)
        let stats = store.statistics()
        #expect(stats.storedBytesByCodec[codec.description, default: 0] > 0)
        #expect(stats.compressionRatio > 2)
    }

    @Test("incompressible chunks are stored raw")
    func incompressible() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = pseudoRandomBytes(1 << 20, seed: 5)
        #expect(try temp.roundTrip(store, 1, body) == body)
        #expect(store.statistics().storedBytesByCodec.keys.sorted() == ["raw"])
    }

    @Test("a store written with zlib reads with zstd configured, and the other way round")
    func mixedCodecs() throws {
        let temp = try TemporaryStore()
        let first = compressibleBytes(200_000, seed: 6)
        let second = compressibleBytes(200_000, seed: 7)
        do {
            let store = try temp.open(.init(codec: .zlib))
            try store.store(key: key(1), outputID: SHA256.hash(first), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(first))
        }
        let store = try temp.open(.init(codec: .zstd))
        try store.store(key: key(2), outputID: SHA256.hash(second), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(second))
        #expect(try temp.read(store, 1) == first)
        let reopened = try temp.open(.init(codec: .zlib))
        #expect(try temp.read(reopened, 2) == second)
        #expect(Set(reopened.statistics().storedBytesByCodec.keys) == ["zlib", "zstd"])
    }

    @Test("identical content is stored once, across outputs and store reopenings")
    func deduplication() throws {
        let temp = try TemporaryStore()
        let base = compressibleBytes(2 << 20, seed: 9)
        var variant = base
        variant.replaceSubrange(1000..<1111, with: pseudoRandomBytes(111, seed: 10))  // a new build ID
        do {
            let store = try temp.open()
            #expect(try temp.roundTrip(store, 1, base) == base)
        }
        let store = try temp.open()
        #expect(try temp.roundTrip(store, 2, variant) == variant)
        let stats = store.statistics()
        #expect(stats.logicalBytes == Int64(base.count * 2))
        #expect(stats.dedupRatio > 1.8, "dedup \(stats.dedupRatio)")
    }

    @Test("a flipped byte in a pack makes that output unreadable, never wrong")
    func flippedPackByte() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(300_000, seed: 11)
        try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        let pack = try #require(try temp.files(in: "packs", suffix: ".pack").first)
        var bytes = try FileSystem.readFile(pack)
        bytes[bytes.count / 2] ^= 0x40
        try FileSystem.writeFileAtomically(pack, bytes)
        let reopened = try temp.open()
        #expect { try temp.read(reopened, 1) } throws: { isDamage($0) }
        // The damaged chunk is forgotten: storing the output again repairs it.
        try reopened.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        #expect(try temp.read(reopened, 1) == body)
    }

    @Test("wherever a pack is damaged, a read fails or returns the exact output: never other bytes")
    func damageAnywhere() throws {
        let body = compressibleBytes(120_000, seed: 14)
        var noticed = 0
        let flips = 150
        for step in 0..<flips {
            // A fresh store each time: a read forgets the chunks it finds damaged.
            let temp = try TemporaryStore()
            let store = try temp.open()
            try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            try store.recompressPendingChunks(level: 15)  // frames as a build leaves them
            let pack = try #require(try temp.files(in: "packs", suffix: ".pack").first)
            // One bit anywhere: record headers, frame headers, block headers, literals,
            // sequences, checksums.
            var bytes = try FileSystem.readFile(pack)
            bytes[(step * 7919) % bytes.count] ^= UInt8(1 << (step % 8))
            try FileSystem.writeFileAtomically(pack, bytes)
            do {
                #expect(try temp.read(try temp.open(), 1) == body, "flip \(step) served other bytes")
            } catch let error as StoreError where error.kind == .damagedEntry {
                noticed += 1
            }
        }
        #expect(noticed * 100 >= flips * 95, "nearly every flip is noticed (\(noticed) of \(flips))")
    }

    @Test("a manifest whose chunks are gone is damaged")
    func missingPack() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(300_000, seed: 12)
        try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        for file in try temp.files(in: "packs") { try FileSystem.remove(file) }
        #expect { try temp.read(try temp.open(), 1) } throws: { isDamage($0) }
    }

    @Test("a damaged manifest is reported, and quarantine turns it into a miss")
    func damagedManifest() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(3000, seed: 13)
        let manifest = try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        var bytes = manifest.encoded()
        bytes[40] ^= 1
        try store.catalog.commit(key: key(1), manifest: bytes, time: 1, newChunks: [])
        #expect { try store.manifest(for: key(1)) } throws: { isDamage($0) }
        store.setAside(key(1), because: StoreError(.damagedEntry, "test"))
        #expect(try store.manifest(for: key(1)) == nil)
        #expect(store.statistics().damaged == 1)
    }

    @Test("a manifest from elsewhere that does not match its output ID is never materialized")
    func foreignManifest() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(600_000, seed: 15)
        let stored = try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        // Same chunks, another output ID: what a bad remote manifest would look like.
        let foreign = Manifest(key: key(1), outputID: SHA256.hash([1]), size: stored.size, time: Timestamp(nanosecondsSinceEpoch: 1), content: stored.content)
        let out = temp.path + "/foreign"
        #expect { try temp.materialize(store, foreign, at: out, checkOutputID: true) } throws: { isDamage($0) }
        #expect(!FileSystem.exists(out))
        try temp.materialize(store, stored, at: out, checkOutputID: true)
        #expect(try FileSystem.readFile(out) == body)
    }

    @Test("manifests survive any truncation as an error, never a trap")
    func truncatedManifests() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let body = compressibleBytes(100_000, seed: 15)
        let manifest = try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        let bytes = manifest.encoded()
        #expect(try Manifest(decoding: bytes) == manifest)
        for length in 0..<bytes.count {
            #expect(throws: CorruptData.self) { try Manifest(decoding: Array(bytes.prefix(length))) }
        }
    }

    @Test("a store closed after a put leaves no write-ahead log behind (its gets' read connection closes first)")
    func noLogLeftBehind() throws {
        let temp = try TemporaryStore()
        do {
            let store = try temp.open()
            let body = compressibleBytes(300_000, seed: 21)
            try store.store(key: key(1), outputID: SHA256.hash(body), time: .now, body: .bytes(body))
            #expect(try temp.read(store, 1) == body)
        }
        #expect(!FileSystem.exists(temp.path + "/store/catalog.db-wal"))
    }

    @Test("counters accumulate across flushes")
    func counters() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        store.counters.puts.add(3)
        try store.counters.flush()
        store.counters.puts.add(2)
        try store.counters.flush()
        #expect(try temp.open().statistics().puts == 5)
    }

    @Test("a full disk is recognised whichever layer hit it; other failures are not taken for it")
    func outOfSpaceErrors() throws {
        for code in [ENOSPC, EDQUOT, EFBIG] { #expect(ChunkStore.isOutOfSpace(SystemError("write", code: code))) }
        #expect(ChunkStore.isOutOfSpace(StoreError(.outOfSpace, "full")))
        #expect(ChunkStore.isOutOfSpace(SQLiteDatabase.Failure(description: "COMMIT: database or disk is full", code: 13)))
        #expect(!ChunkStore.isOutOfSpace(SystemError("open", code: ENOENT)))
        #expect(!ChunkStore.isOutOfSpace(SQLiteDatabase.Failure(description: "database is locked", code: 5)))
        #expect(!ChunkStore.isOutOfSpace(StoreError(.damagedEntry, "bad chunk")))
    }

    @Test("a store leaves a reserve free on its filesystem: a put that would eat into it is refused as out of space")
    func reserve() throws {
        let temp = try TemporaryStore()
        let store = try temp.open()
        let space = try FileSystem.space(at: temp.path)
        let reserve = ChunkStore.reserve(onFilesystemOf: space.total)
        #expect(reserve >= 1 << 20 && reserve <= 256 << 20)
        #expect { try store.ensureSpace(for: space.available - reserve + (1 << 20)) } throws: { ($0 as? StoreError)?.kind == .outOfSpace }
        try store.ensureSpace(for: 1)
    }
}
