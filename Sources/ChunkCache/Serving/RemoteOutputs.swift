import ChunkStore
import Digests
import FileIO
import Logging

/// Outputs fetched from the remote tier into this run's live files (and into the store): what a
/// get does on a local miss, and what remote prefetch does ahead of the gets.
struct RemoteOutputs: Sendable {
    /// An output fetched: its manifest, and its live file.
    struct Fetched: Sendable {
        var manifest: Manifest
        var path: String
    }

    let remote: RemoteTier
    let store: ChunkStore
    let live: LiveFiles
    let outputs: LiveOutputs
    let counters: CacheCounters
    let logger: Logger

    /// Looks `key` up in the remote tier: the manifest, then only the chunks this store lacks,
    /// each checked against its hash, then the whole output against its output ID; the output is
    /// then stored locally too. Any failure is nil (a miss).
    func fetch(_ key: SHA256Digest) async -> Fetched? {
        guard let entry = await remote.entry(for: key),
            let manifest = try? Manifest(decoding: entry.manifest), manifest.key == key,
            let missing = try? store.missingChunks(of: manifest)
        else { return nil }
        // Chunks the entry carried inline need no request of their own.
        guard var supplied = await remote.blobs(missing.filter { entry.inline[$0.digest] == nil }.map { ($0.digest, Int($0.size)) }) else { return nil }
        for chunk in missing { if let bytes = entry.inline[chunk.digest] { supplied[chunk.digest] = bytes } }
        let path: String
        do {
            path = try live.create(manifest.outputID, size: manifest.size) { [store] path in
                try FileSystem.createAtomically(path, permissions: 0o644) { try store.write(manifest, to: $0, supplied: supplied, checkOutputID: true) }
            }
        } catch {
            logger.warning("remote entry \(key.hex.prefix(16)) does not check out, ignored: \(error)")
            // A local chunk found damaged on the way is forgotten; the entry from elsewhere has no
            // manifest here to set aside.
            if let damage = error as? StoreError { store.forgetDamagedChunk(damage) }
            counters.remoteErrors.add()
            return nil
        }
        outputs.add(manifest.outputID, path: path)
        if !store.isReadOnly { _ = try? store.store(key: key, outputID: manifest.outputID, time: manifest.time, body: .file(path: path)) }
        return Fetched(manifest: manifest, path: path)
    }
}
