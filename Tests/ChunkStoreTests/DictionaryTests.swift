@testable import ChunkStore
import Digests
import FileIO
import Testing

@Suite("A store's compression dictionary")
struct DictionaryTests {
    /// Stores `count` outputs of 400 KB (enough, from 3, to train a dictionary) and returns them.
    func fill(_ store: ChunkStore, _ range: Range<Int>) throws -> [Int: [UInt8]] {
        var bodies: [Int: [UInt8]] = [:]
        for n in range {
            let body = compressibleBytes(400_000, seed: UInt64(300 + n))
            try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            bodies[n] = body
        }
        return bodies
    }

    /// A store in `temp` holding outputs `range`, recompressed with the dictionary they trained.
    func storeWithDictionary(_ temp: borrowing TemporaryStore, _ range: Range<Int>) throws -> (ChunkStore, [Int: [UInt8]]) {
        let store = try temp.open(.init(level: 1))
        let bodies = try fill(store, range)
        try store.recompressPendingChunks(level: 15)
        return (store, bodies)
    }

    @Test("the first recompression with enough new chunks trains it; later runs and other processes use it")
    func trainedOnceAndShared() throws {
        let temp = try TemporaryStore()
        let first = try temp.open(.init(level: 1))
        var bodies = try fill(first, 0..<6)
        let report = try first.recompressPendingChunks(level: 15)
        let dictionary = try #require(try first.storeDictionary())
        #expect(report.dictionary == dictionary.id)
        #expect(report.bytesAfter < report.bytesBefore)

        // Another process, which has never seen the dictionary, reads the chunks through the catalog.
        let other = try temp.open(.init(level: 1))
        for (n, body) in bodies { #expect(try temp.read(other, n) == body) }
        // Its own new chunks are recompressed with the same dictionary, not a second one.
        bodies.merge(try fill(other, 6..<12)) { a, _ in a }
        #expect(try other.recompressPendingChunks(level: 15).dictionary == dictionary.id)
        #expect(try other.catalog.dictionaries().count == 1)
        #expect(other.statistics().dictionaries == 1)
        #expect(other.statistics().dictionaryBytes == Int64(dictionary.bytes.count))
        for (n, body) in bodies { #expect(try temp.read(try temp.open(), n) == body) }
        #expect(try temp.open().verify(repair: false).isHealthy)
    }

    @Test("a run with too little new data to learn from trains none, and still recompresses")
    func tooLittleToLearn() throws {
        let temp = try TemporaryStore()
        let store = try temp.open(.init(level: 1))
        let body = compressibleBytes(200_000, seed: 9)
        try store.store(key: key(1), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        let report = try store.recompressPendingChunks(level: 15)
        #expect(report.chunks > 0)
        #expect(report.dictionary == nil)
        #expect(try store.storeDictionary() == nil)
        #expect(try temp.read(store, 1) == body)
    }

    @Test("chunks whose dictionary is gone are misses and verify reports them, never wrong bytes")
    func lostDictionary() throws {
        let temp = try TemporaryStore()
        let store = try temp.open(.init(level: 1))
        let bodies = try fill(store, 0..<4)
        #expect(try store.recompressPendingChunks(level: 15).dictionary != nil)
        let database = try SQLiteDatabase(path: temp.path + "/store/catalog.db")
        try database.execute("DELETE FROM dictionaries")
        let reopened = try temp.open()
        for n in bodies.keys {
            #expect(throws: (any Error).self) { try temp.read(reopened, n) }
        }
        #expect(try !temp.open().verify(repair: false).isHealthy)
    }

    @Test("a frame needing an unknown dictionary does not decode; with the dictionary it does")
    func compressorNeedsTheDictionary() throws {
        var samples: [UInt8] = []
        var sizes: [Int] = []
        for n in 0..<200 {
            let piece = compressibleBytes(16 << 10, seed: UInt64(n))
            samples += piece
            sizes.append(piece.count)
        }
        let dictionary = try #require(CompressionDictionary.train(samples: samples, sizes: sizes))
        let input = compressibleBytes(20_000, seed: 1_000)
        let writer = Compressor(codec: .zstd, level: 15)
        var withDictionary: [UInt8] = []
        var without: [UInt8] = []
        _ = input.withUnsafeBytes { writer.compress($0, into: &withDictionary, dictionary: dictionary) }
        _ = input.withUnsafeBytes { writer.compress($0, into: &without) }
        #expect(withDictionary.count < without.count)

        var output = [UInt8](repeating: 0, count: input.count)
        let stranger = Compressor()
        #expect(throws: CorruptData.self) {
            try output.withUnsafeMutableBytes { out in try withDictionary.withUnsafeBytes { try stranger.decompress($0, codec: .zstd, into: out) } }
        }
        let friend = Compressor { $0 == dictionary.id ? dictionary : nil }
        try output.withUnsafeMutableBytes { out in try withDictionary.withUnsafeBytes { try friend.decompress($0, codec: .zstd, into: out) } }
        #expect(output == input)
    }

    @Test("archives carry the dictionary: into an empty store, and only once with a base")
    func archives() throws {
        let source = try TemporaryStore()
        let (store, first) = try storeWithDictionary(source, 0..<4)
        var bodies = first
        let dictionary = try #require(try store.storeDictionary())
        let base = source.path + "/base.archive"
        try store.exportArchive(to: base)
        bodies.merge(try fill(store, 4..<6)) { a, _ in a }
        let delta = source.path + "/delta.archive"
        try store.exportArchive(to: delta, base: base)
        func dictionaryRecords(_ path: String) throws -> Int {
            var reader = try ArchiveReader(path: path)
            defer { reader.close() }
            try reader.checkIntegrity()
            var count = 0
            while let (kind, _) = try reader.next() {
                if kind == ArchiveFormat.dictionaryKind { count += 1 }
            }
            return count
        }
        #expect(try dictionaryRecords(base) == 1)
        #expect(try dictionaryRecords(delta) == 0)

        let target = try TemporaryStore()
        let restored = try target.open()
        let report = try restored.importArchives([base, delta])
        #expect(report.manifests == bodies.count)
        #expect(try restored.storeDictionary() == dictionary)
        for (n, body) in bodies { #expect(try target.read(try target.open(), n) == body) }
        #expect(try restored.verify(repair: false).isHealthy)
    }

    @Test("a store with a dictionary of its own imports another store's archive: both dictionaries kept, every output reads")
    func importAcrossDictionaries() throws {
        let first = try TemporaryStore()
        let (a, bodiesA) = try storeWithDictionary(first, 0..<4)
        let archive = first.path + "/a.archive"
        try a.exportArchive(to: archive)

        let second = try TemporaryStore()
        let b = try second.open(.init(level: 1))
        var bodiesB: [Int: [UInt8]] = [:]
        for n in 10..<14 {
            let body = compressibleBytes(400_000, seed: UInt64(900 + n))
            try b.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            bodiesB[n] = body
        }
        try b.recompressPendingChunks(level: 15)
        let own = try #require(try b.storeDictionary())
        #expect(try a.storeDictionary() != own, "each store trained its own")

        try b.importArchives([archive])
        #expect(try b.catalog.dictionaries().count == 2)
        #expect(try b.storeDictionary() == own, "new chunks keep using the store's first dictionary")
        let reopened = try second.open()
        for (n, body) in bodiesA.merging(bodiesB, uniquingKeysWith: { x, _ in x }) { #expect(try second.read(reopened, n) == body) }
        #expect(try reopened.verify(repair: false).isHealthy)
    }

    @Test("a catalog from before dictionaries (version 1) is upgraded when opened")
    func upgradesVersionOne() throws {
        let temp = try TemporaryStore()
        let bodies = try fill(try temp.open(.init(level: 1)), 0..<1)
        let database = try SQLiteDatabase(path: temp.path + "/store/catalog.db")
        try database.execute("DROP TABLE dictionaries; PRAGMA user_version = 1;")
        let store = try temp.open(.init(level: 1))
        #expect(try temp.read(store, 0) == bodies[0])
        try store.recompressPendingChunks(level: 15)
        #expect(try temp.read(try temp.open(), 0) == bodies[0])
    }
}
