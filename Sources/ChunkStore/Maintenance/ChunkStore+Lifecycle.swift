import Digests
import FileIO

extension ChunkStore {
    /// What `collectGarbage` did.
    public struct GarbageReport: Sendable, Equatable {
        public var chunksRemoved = 0
        public var packsRemoved = 0
        public var packsCompacted = 0
        public var bytesFreed: Int64 = 0
    }

    /// What `trim` did.
    public struct TrimReport: Sendable, Equatable {
        public var expired = 0
        public var evicted = 0
        public var bytesBefore: Int64 = 0
        public var bytesAfter: Int64 = 0
        public var garbage = GarbageReport()
    }

    /// What `verify` found.
    public struct VerifyReport: Sendable {
        public var checked = 0
        /// Damaged actions (hex key) and why.
        public var damaged: [(key: String, reason: String)] = []
        public var repaired = 0
        public var isHealthy: Bool { damaged.isEmpty }
    }

    /// Records that `keys` were used (served) at `time`, for least-recently-used eviction. Call
    /// once per run with all its hits, not per hit.
    public func recordUse(of keys: [SHA256Digest], at time: Timestamp) throws {
        try StoreError.translating { try catalog.touch(keys, time: time.nanosecondsSinceEpoch) }
    }

    /// Bytes the store occupies on disk (as `du` counts), its auxiliary directories excluded
    /// (their users budget them).
    public var diskUsage: Int64 {
        Self.auxiliaryNames.reduce(FileSystem.allocatedSize(of: directory)) { $0 - FileSystem.allocatedSize(of: directory + "/" + $1) }
    }

    /// Removes chunks no manifest names, deletes packs left empty, and rewrites packs that are
    /// mostly garbage (live fraction under `compactBelow`) into a fresh pack. Runs with puts
    /// held off (`StoreLock`); packs other processes are still appending to are left alone.
    @discardableResult
    public func collectGarbage(compactBelow: Double = 0.5, progress: ProgressHandler = { _ in }) throws -> GarbageReport {
        try StoreError.translating { try collectGarbageLocked(compactBelow: compactBelow, progress: progress) }
    }

    private func collectGarbageLocked(compactBelow: Double, progress: ProgressHandler) throws -> GarbageReport {
        packs.finishAppending()
        let report = try lock.withExclusive { () throws -> GarbageReport in
            var report = GarbageReport()
            var referenced = Set<SHA256Digest>()
            for (_, bytes) in try catalog.allManifests() {
                guard let manifest = try? Manifest(decoding: bytes), case .chunks(let chunks) = manifest.content else { continue }
                for chunk in chunks { referenced.insert(chunk.digest) }
            }
            var byPack: [UInt64: [(SHA256Digest, ChunkLocation)]] = [:]
            var orphans: [SHA256Digest] = []
            for (digest, location) in try catalog.allChunks() {
                if referenced.contains(digest) { byPack[location.pack, default: []].append((digest, location)) } else { orphans.append(digest) }
            }
            try catalog.deleteChunks(orphans)
            report.chunksRemoved = orphans.count
            var record: [UInt8] = []
            let all = packs.packIDs()
            var done = Progress(totalItems: Int64(all.count), totalBytes: all.reduce(0) { $0 + ((try? FileSystem.status(of: packs.path(of: $1)).size) ?? 0) })
            progress(done)
            for pack in all {
                guard let held = packs.lockForCompaction(pack) else { continue }
                defer { held.close() }
                let size = (try? held.status().size) ?? 0
                defer {
                    done.items += 1
                    done.bytes += size
                    progress(done)
                }
                let rows = byPack[pack] ?? []
                let live = rows.reduce(Int64(0)) { $0 + Int64(PackStore.recordHeaderSize) + Int64($1.1.storedSize) }
                if rows.isEmpty {
                    try packs.remove(pack)
                    report.packsRemoved += 1
                    report.bytesFreed += size
                } else if Double(live) < Double(size) * compactBelow {
                    // Chunks of a pack pending recompression stay pending where they move to.
                    let pending = packs.isPending(pack)
                    var moves: [(SHA256Digest, ChunkLocation)] = []
                    var lost: [SHA256Digest] = []
                    for (digest, location) in rows {
                        do {
                            let moved = try packs.withPayload(digest, at: location, buffer: &record) { payload in
                                try packs.append(digest, codec: location.codec, rawSize: Int(location.rawSize), payload: payload, pending: pending)
                            }
                            moves.append((digest, moved))
                        } catch is CorruptData {
                            lost.append(digest)  // damaged: its outputs become misses
                        }
                    }
                    try catalog.relocate(moves)
                    try catalog.deleteChunks(lost)
                    try packs.remove(pack)
                    report.packsCompacted += 1
                    report.bytesFreed += size - live
                }
            }
            packs.finishAppending()
            try catalog.vacuumIfWorthIt()
            return report
        }
        removeStaleTemporaryFiles()
        return report ?? GarbageReport()
    }

    /// Deletes files in tmp/ left by processes that died while receiving a body.
    private func removeStaleTemporaryFiles(olderThan age: Int64 = 3_600_000_000_000) {
        let now = WallClock.nanoseconds()
        for name in (try? FileSystem.contentsOfDirectory(temporaryDirectory)) ?? [] {
            let path = temporaryDirectory + "/" + name
            if let info = try? FileSystem.status(of: path, followLinks: false), now - info.modificationTime > age {
                try? FileSystem.remove(path)
            }
        }
    }

    /// Expires outputs unused for `maxAge`, then, if the store is over `maxSize`
    /// bytes, evicts least recently used outputs until it is at most 90 % of it.
    ///
    /// With deduplication, evicting an output frees only the chunks no other output names, and
    /// only once gc rewrites (or deletes) the packs holding them; so the outputs to evict are
    /// chosen by the bytes that gc would then free (`evictionCount`), not by their size.
    @discardableResult
    public func trim(maxSize: Int64?, maxAge: Duration?, progress: ProgressHandler = { _ in }) throws -> TrimReport {
        try StoreError.translating { try trimLocked(maxSize: maxSize, maxAge: maxAge, progress: progress) }
    }

    private func trimLocked(maxSize: Int64?, maxAge: Duration?, progress: ProgressHandler) throws -> TrimReport {
        var report = TrimReport()
        report.bytesBefore = diskUsage
        if let maxAge {
            report.expired = try catalog.deleteManifests(unusedSince: (Timestamp.now - maxAge).nanosecondsSinceEpoch)
        }
        report.garbage = try collectGarbage(compactBelow: Self.trimCompaction, progress: progress)
        var usage = diskUsage
        if let maxSize, usage > maxSize {
            let target = maxSize / 10 * 9
            while usage > target {
                let order = try catalog.actionsByLastUse()
                guard !order.isEmpty else { break }
                let count = try evictionCount(freeing: usage - target, order: order.map(\.key))
                try catalog.deleteManifests(order.prefix(count).map(\.key))
                report.evicted += count
                let garbage = try collectGarbage(compactBelow: Self.trimCompaction, progress: progress)
                report.garbage.chunksRemoved += garbage.chunksRemoved
                report.garbage.packsRemoved += garbage.packsRemoved
                report.garbage.packsCompacted += garbage.packsCompacted
                report.garbage.bytesFreed += garbage.bytesFreed
                usage = diskUsage
            }
        }
        report.bytesAfter = usage
        counters.evictions.add(Int64(report.expired + report.evicted))
        counters.lastTrim.add(Timestamp.now.nanosecondsSinceEpoch - counters.lastTrim.current)
        return report
    }

    /// Packs under this fraction of live bytes are rewritten by trim's gc.
    static let trimCompaction = 0.9

    /// How many of the actions in `order` (least recently used first) must be evicted for gc to
    /// free at least `bytes` of packs, at least one: a chunk is freed when the last manifest naming
    /// it goes, and its pack's dead bytes when the pack falls under `trimCompaction` live (then
    /// gc rewrites it) or holds nothing (then gc deletes it), as `collectGarbage` does. Inline
    /// outputs live in the catalog, whose file shrinks only when vacuumed: counted as freeing
    /// nothing, so the store may end a little under its target, never over it for this reason.
    func evictionCount(freeing bytes: Int64, order: [SHA256Digest]) throws -> Int {
        var chunksOf: [SHA256Digest: [SHA256Digest]] = [:]
        var references: [SHA256Digest: Int32] = [:]
        for (keyBytes, encoded) in try catalog.allManifests() {
            guard let key = SHA256Digest(bytes: keyBytes), let manifest = try? Manifest(decoding: encoded),
                case .chunks(let chunks) = manifest.content
            else { continue }
            let digests = chunks.map(\.digest)
            chunksOf[key] = digests
            for digest in digests { references[digest, default: 0] += 1 }
        }
        let locations = try catalog.allChunks()
        var live: [UInt64: Int64] = [:]
        for (digest, location) in locations where references[digest] != nil {
            live[location.pack, default: 0] += Int64(PackStore.recordHeaderSize) + Int64(location.storedSize)
        }
        var size: [UInt64: Int64] = [:]
        for pack in live.keys { size[pack] = (try? FileSystem.status(of: packs.path(of: pack)))?.size ?? 0 }
        var freed: Int64 = 0
        for (index, key) in order.enumerated() {
            for digest in chunksOf[key] ?? [] {
                references[digest]! -= 1
                guard references[digest] == 0, let location = locations[digest], let total = size[location.pack], total > 0 else { continue }
                let before = live[location.pack]!
                let after = before - Int64(PackStore.recordHeaderSize) - Int64(location.storedSize)
                live[location.pack] = after
                let threshold = Double(total) * Self.trimCompaction
                // What gc frees of this pack: nothing while it stays mostly live; all its dead
                // bytes once it falls under the threshold; the rest of it as it shrinks further.
                if Double(after) < threshold { freed += Double(before) < threshold ? before - after : total - after }
            }
            if freed >= bytes { return index + 1 }
        }
        return order.count
    }

    /// Re-reads every output and checks it against its output ID. With `repair`, damaged
    /// entries are set aside (they become misses). `progress` counts outputs and their bytes.
    public func verify(repair: Bool, progress: ProgressHandler = { _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        let all = try StoreError.translating { try catalog.allManifests() }
        let sizes = all.map { (try? Manifest(decoding: $0.manifest))?.size ?? 0 }
        var done = Progress(totalItems: Int64(all.count), totalBytes: sizes.reduce(0, +))
        for (index, (keyBytes, bytes)) in all.enumerated() {
            progress(done)
            done.items += 1
            done.bytes += sizes[index]
            report.checked += 1
            let keyHex = Hex.encode(keyBytes)
            do {
                let manifest: Manifest
                do {
                    manifest = try Manifest(decoding: bytes)
                } catch {
                    throw StoreError(.damagedEntry, "manifest \(keyHex.prefix(16)): \(error)")
                }
                guard manifest.key.bytes == keyBytes else { throw StoreError(.damagedEntry, "manifest is for another action") }
                // Read back as a get reads it, and checked whole.
                try write(manifest, to: DiscardingDestination(), checkOutputID: true)
            } catch {
                // Anything that stops an output being read back (an unreadable pack, too) is damage.
                report.damaged.append((keyHex, "\(error)"))
                if repair, let key = SHA256Digest(bytes: keyBytes) {
                    setAside(key, because: StoreError(.damagedEntry, "verify: \(error)", damagedChunk: (error as? StoreError)?.damagedChunk))
                    report.repaired += 1
                }
            }
        }
        progress(done)
        return report
    }
}
