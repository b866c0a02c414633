@testable import ChunkStore
import Digests
import FileIO
import Testing

@Suite("Archives: export and import")
struct ArchiveTests {
    func fill(_ store: ChunkStore, _ range: Range<Int>, variant: UInt64 = 0) throws -> [Int: [UInt8]] {
        var bodies: [Int: [UInt8]] = [:]
        for n in range {
            // Outputs share most of their bytes between "branches": only a small part varies.
            var body = compressibleBytes(150_000, seed: UInt64(n))
            if variant != 0 { body.replaceSubrange(70_000..<70_100, with: pseudoRandomBytes(100, seed: variant &+ UInt64(n))) }
            try store.store(key: key(n + Int(variant) * 1000), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
            bodies[n + Int(variant) * 1000] = body
        }
        return bodies
    }

    @Test("an archive round-trips into an empty store")
    func roundTrip() throws {
        let source = try TemporaryStore()
        let bodies = try fill(try source.open(), 0..<8)
        let file = source.path + "/cache.archive"
        let exported = try source.open().exportArchive(to: file)
        #expect(exported.manifests == 8)
        let target = try TemporaryStore()
        let store = try target.open()
        let imported = try store.importArchives([file])
        #expect(imported.manifests == 8)
        for (n, body) in bodies { #expect(try target.read(store, n) == body) }
        #expect(try store.verify(repair: false).isHealthy)
    }

    @Test("a branch's delta over a base archive is small, and base + delta restore everything")
    func delta() throws {
        let source = try TemporaryStore()
        let store = try source.open()
        var bodies = try fill(store, 0..<8)
        let base = source.path + "/main.archive"
        let full1 = try store.exportArchive(to: base)
        bodies.merge(try fill(store, 0..<8, variant: 7)) { a, _ in a }
        let delta = source.path + "/branch.archive"
        let deltaReport = try store.exportArchive(to: delta, base: base)
        #expect(deltaReport.manifests == 8)
        #expect(deltaReport.bytes * 4 < full1.bytes, "delta \(deltaReport.bytes) vs full \(full1.bytes)")
        let target = try TemporaryStore()
        let restored = try target.open()
        try restored.importArchives([base, delta])
        for (n, body) in bodies { #expect(try target.read(restored, n) == body) }
        // A delta alone cannot restore outputs whose chunks live in the base: they are left out.
        let alone = try TemporaryStore()
        let partial = try alone.open().importArchives([delta])
        #expect(partial.incomplete > 0)
    }

    @Test("a truncated or tampered archive is rejected and the store is left unchanged", arguments: ["truncate", "flip", "garbage"])
    func rejected(damage: String) throws {
        let source = try TemporaryStore()
        _ = try fill(try source.open(), 0..<4)
        let file = source.path + "/cache.archive"
        try source.open().exportArchive(to: file)
        var bytes = try FileSystem.readFile(file)
        switch damage {
        case "truncate": bytes.removeLast(bytes.count / 3)
        case "flip": bytes[bytes.count / 2] ^= 1
        default: bytes = Array("not an archive at all, just text".utf8)
        }
        try FileSystem.writeFileAtomically(file, bytes)
        let target = try TemporaryStore()
        let store = try target.open()
        #expect { try store.importArchives([file]) } throws: { ($0 as? StoreError)?.kind == .badArchive }
        #expect(store.statistics().outputs == 0)
        #expect(try target.files(in: "packs").isEmpty)
    }
}
