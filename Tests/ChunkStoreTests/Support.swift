@_exported import TestSupport
@testable import ChunkStore
import Digests
import FileIO


/// Bytes that compress like a build output: random words from a small vocabulary.
func compressibleBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    let noise = pseudoRandomBytes(count, seed: seed)
    let vocabulary = ["runtime.", "func ", "type ", "(*T).", "go:", "\u{0}\u{0}\u{0}\u{1}", "strings.", "Builder", "main"].map { Array($0.utf8) }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    var i = 0
    while out.count < count {
        out.append(contentsOf: vocabulary[Int(noise[i % noise.count]) % vocabulary.count])
        out.append(noise[(i * 7) % noise.count])
        i += 1
    }
    return Array(out.prefix(count))
}

/// True for the error a damaged entry is reported with.
func isDamage(_ error: any Error) -> Bool { (error as? StoreError)?.kind == .damagedEntry }

func key(_ n: Int) -> SHA256Digest { SHA256.hash(Array("action \(n)".utf8)) }

/// A fresh store directory, removed when the test ends.
struct TemporaryStore: ~Copyable {
    let path: String
    init() throws {
        path = "/tmp/chunkstore-test-" + FileSystem.uniqueSuffix()
        try FileSystem.createDirectories(path)
    }
    deinit { try? FileSystem.removeTree(path) }

    func open(_ configuration: ChunkStore.Configuration = .init()) throws -> ChunkStore {
        try ChunkStore(directory: path + "/store", configuration: configuration)
    }

    /// Stores `body` under `n` and reads it back through a materialized file.
    func roundTrip(_ store: ChunkStore, _ n: Int, _ body: [UInt8]) throws -> [UInt8] {
        try store.store(key: key(n), outputID: SHA256.hash(body), time: Timestamp(nanosecondsSinceEpoch: 1), body: .bytes(body))
        return try read(store, n)
    }

    /// Reads `n` back as a get does, into a new file; a damaged chunk is forgotten (so storing
    /// the output again repairs it), the manifest left for the caller to set aside.
    func read(_ store: ChunkStore, _ n: Int) throws -> [UInt8] {
        do {
            guard let manifest = try store.manifest(for: key(n)) else { throw Missing() }
            let out = path + "/out-\(n)-" + FileSystem.uniqueSuffix()
            try materialize(store, manifest, at: out)
            defer { try? FileSystem.remove(out) }
            return try FileSystem.readFile(out)
        } catch let damage as StoreError where damage.kind == .damagedEntry {
            store.forgetDamagedChunk(damage)
            throw damage
        }
    }

    /// Writes the output of `manifest` to a new file at `out`, atomically, as serving does.
    func materialize(_ store: ChunkStore, _ manifest: Manifest, at out: String, checkOutputID: Bool = false) throws {
        try FileSystem.createAtomically(out, permissions: 0o644) { try store.write(manifest, to: $0, checkOutputID: checkOutputID) }
    }

    struct Missing: Error {}

    func files(in sub: String, suffix: String = "") throws -> [String] {
        let dir = path + "/store/" + sub
        return try FileSystem.contentsOfDirectory(dir).filter { $0.hasSuffix(suffix) }.map { dir + "/" + $0 }
    }
}
