import Digests
import FileIO

/// What a store holds and what it saved, as `chunkcache stats` reports it.
public struct StoreStatistics: Sendable, Equatable {
    /// Actions with a manifest.
    public var outputs = 0
    /// Bytes of all those outputs, as the go command sees them.
    public var logicalBytes: Int64 = 0
    /// Outputs kept inside their manifest.
    public var inlineOutputs = 0
    /// Chunk references in manifests, and the distinct chunks they name.
    public var chunkReferences = 0
    public var uniqueChunks = 0
    /// Plain bytes of the distinct chunks and inline outputs, i.e. after deduplication.
    public var uniqueBytes: Int64 = 0
    /// Their encoded (compressed) size.
    public var storedBytes: Int64 = 0
    /// Encoded bytes per codec.
    public var storedBytesByCodec: [String: Int64] = [:]
    /// Pack files and their size (including chunks no manifest names any more).
    public var packFiles = 0
    public var packBytes: Int64 = 0
    /// Of those, packs whose chunks are still as puts stored them, awaiting recompression.
    public var pendingPackFiles = 0
    public var pendingPackBytes: Int64 = 0
    /// Compression dictionaries in the catalog (normally one) and their size.
    public var dictionaries = 0
    public var dictionaryBytes: Int64 = 0
    /// Disk space used, as `du` counts it, by the store (its auxiliary directories excluded).
    public var diskBytes: Int64 = 0
    /// Counters accumulated across runs: outputs stored, entries found damaged.
    public var puts: Int64 = 0
    public var damaged: Int64 = 0
    /// Outputs evicted by trim (over budget or unused too long), and when trim last ran.
    public var evictions: Int64 = 0
    public var lastTrim: Timestamp?

    /// Logical bytes per unique byte.
    public var dedupRatio: Double { uniqueBytes == 0 ? 1 : Double(logicalBytes) / Double(uniqueBytes) }
    /// Unique bytes per stored byte.
    public var compressionRatio: Double { storedBytes == 0 ? 1 : Double(uniqueBytes) / Double(storedBytes) }
}

extension ChunkStore {
    /// Walks every manifest, then every chunk's location. Damaged manifests are skipped. Holds
    /// the set of distinct chunks, not the manifests or the locations.
    public func statistics() -> StoreStatistics {
        var stats = StoreStatistics()
        var seen = Set<SHA256Digest>()
        try? catalog.forEachManifest { _, bytes, _ in
            guard let manifest = try? Manifest(decoding: bytes) else { return }
            stats.outputs += 1
            stats.logicalBytes += manifest.size
            switch manifest.content {
            case .inline(let codec, let payload):
                stats.inlineOutputs += 1
                stats.uniqueBytes += manifest.size
                stats.storedBytes += Int64(payload.count)
                stats.storedBytesByCodec[codec.description, default: 0] += Int64(payload.count)
            case .chunks(let chunks):
                stats.chunkReferences += chunks.count
                for chunk in chunks where seen.insert(chunk.digest).inserted {
                    stats.uniqueChunks += 1
                    stats.uniqueBytes += Int64(chunk.size)
                }
            }
        }
        try? catalog.forEachChunk { digest, location in
            guard seen.contains(digest) else { return }
            stats.storedBytes += Int64(location.storedSize)
            stats.storedBytesByCodec[location.codec.description, default: 0] += Int64(location.storedSize)
        }
        for name in (try? FileSystem.contentsOfDirectory(packs.directory)) ?? [] where name.hasSuffix(".pack") {
            stats.packFiles += 1
            stats.packBytes += (try? FileSystem.status(of: packs.directory + "/" + name))?.size ?? 0
        }
        (stats.pendingPackFiles, stats.pendingPackBytes) = pendingRecompression()
        for dictionary in (try? catalog.dictionaries()) ?? [] {
            stats.dictionaries += 1
            stats.dictionaryBytes += Int64(dictionary.count)
        }
        stats.diskBytes = diskUsage
        (stats.puts, stats.damaged, stats.evictions, stats.lastTrim) = counters.totals(in: counters.persisted())
        return stats
    }
}
