import Digests
import FileIO

extension ChunkStore {
    /// What `collectGarbage` did.
    public struct GarbageReport: Sendable, Equatable {
        public var chunksRemoved = 0
        public var packsRemoved = 0
        public var packsCompacted = 0
        /// Small packs, all live, rewritten together into one (counted apart from compaction).
        public var packsMerged = 0
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
        /// Outputs checked, and (unless the check was `full`) distinct chunks read back.
        public var checked = 0
        public var chunksChecked = 0
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
            // The live bytes of each pack, from the set of chunks manifests name and one pass
            // over the locations: neither the manifests nor the locations are held whole. Chunks
            // are known by their first 8 bytes: a clash (about 1 in 10^8 for a million chunks)
            // keeps an unused chunk, never removes a used one.
            var referenced = Set<UInt64>()
            try catalog.forEachManifest { _, bytes, _ in
                guard let manifest = try? Manifest(decoding: bytes), case .chunks(let chunks) = manifest.content else { return }
                for chunk in chunks { referenced.insert(chunk.digest.leadingWord) }
            }
            var liveBytes: [UInt64: Int64] = [:]
            var orphans: [SHA256Digest] = []
            try catalog.forEachChunk { digest, location in
                if referenced.contains(digest.leadingWord) {
                    liveBytes[location.pack, default: 0] += Int64(PackStore.recordHeaderSize) + Int64(location.storedSize)
                } else {
                    orphans.append(digest)
                }
            }
            referenced = []
            try catalog.deleteChunks(orphans)
            report.chunksRemoved = orphans.count
            var record: [UInt8] = []
            let all = packs.packIDs()
            let sizes = Dictionary(uniqueKeysWithValues: all.map { ($0, (try? FileSystem.status(of: packs.path(of: $0)).size) ?? 0) })
            // Every run that recompresses writes a pack of its own, mostly small: once several
            // small packs have gathered, they are rewritten into one, so that the number of packs
            // (files a reader opens) stays low however many runs the store has seen. Packs pending
            // recompression are left to it; they become small recompressed ones later.
            let small = all.filter { sizes[$0]! < Self.smallPackSize && liveBytes[$0] != nil && !packs.isPending($0) }
            let merging = small.count >= Self.smallPacksToMerge ? Set(small) : []
            var done = Progress(totalItems: Int64(all.count), totalBytes: sizes.values.reduce(0, +))
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
                let live = liveBytes[pack] ?? 0
                if live == 0 {
                    try packs.remove(pack)
                    report.packsRemoved += 1
                    report.bytesFreed += size
                } else if Double(live) < Double(size) * compactBelow || merging.contains(pack) {
                    // The orphans are gone and puts are held off: every chunk still in the pack is live.
                    let rows = try catalog.chunks(in: pack)
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
                    if Double(live) < Double(size) * compactBelow { report.packsCompacted += 1 } else { report.packsMerged += 1 }
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

    /// Packs under this size count as small for merging (an eighth of the size at which a pack
    /// stops growing), and this many of them are merged.
    static let smallPackSize: Int64 = 32 << 20
    static let smallPacksToMerge = 4

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
                report.garbage.packsMerged += garbage.packsMerged
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
        // Per distinct chunk: how many manifests name it, and which pack holds how many of its
        // bytes. The manifests are read again one at a time in `order`, not held.
        struct Usage {
            var references: Int32 = 0
            var pack: Int32 = -1
            var bytes: Int64 = 0
        }
        var usage: [SHA256Digest: Usage] = [:]
        try catalog.forEachManifest { _, encoded, _ in
            guard let manifest = try? Manifest(decoding: encoded), case .chunks(let chunks) = manifest.content else { return }
            for chunk in chunks { usage[chunk.digest, default: Usage()].references += 1 }
        }
        var packIDs: [UInt64: Int32] = [:]
        var live: [Int64] = []
        try catalog.forEachChunk { digest, location in
            guard usage[digest] != nil else { return }
            let index = packIDs[location.pack] ?? {
                packIDs[location.pack] = Int32(live.count)
                live.append(0)
                return Int32(live.count - 1)
            }()
            let recordBytes = Int64(PackStore.recordHeaderSize) + Int64(location.storedSize)
            usage[digest]!.pack = index
            usage[digest]!.bytes = recordBytes
            live[Int(index)] += recordBytes
        }
        var size = [Int64](repeating: 0, count: live.count)
        for (pack, index) in packIDs { size[Int(index)] = (try? FileSystem.status(of: packs.path(of: pack)))?.size ?? 0 }
        var freed: Int64 = 0
        for (index, key) in order.enumerated() {
            guard let encoded = try catalog.manifest(for: key), let manifest = try? Manifest(decoding: encoded),
                case .chunks(let chunks) = manifest.content
            else { continue }
            for chunk in chunks {
                guard var entry = usage[chunk.digest] else { continue }
                entry.references -= 1
                usage[chunk.digest] = entry
                guard entry.references == 0, entry.pack >= 0, size[Int(entry.pack)] > 0 else { continue }
                let total = size[Int(entry.pack)]
                let before = live[Int(entry.pack)]
                let after = before - entry.bytes
                live[Int(entry.pack)] = after
                let threshold = Double(total) * Self.trimCompaction
                // What gc frees of this pack: nothing while it stays mostly live; all its dead
                // bytes once it falls under the threshold; the rest of it as it shrinks further.
                if Double(after) < threshold { freed += Double(before) < threshold ? before - after : total - after }
            }
            if freed >= bytes { return index + 1 }
        }
        return order.count
    }

    /// Checks every output. By default every distinct chunk is read back once and checked
    /// against its SHA-256, and every manifest against the chunks it names (each present, of
    /// the size it says, adding up to the output's size; inline outputs against their output
    /// ID): the work grows with the bytes stored, not with the outputs' sum, which in a store of
    /// many branches is a hundred times more. With `full`, every output is re-read as a get
    /// reads it and checked whole against its output ID. With `repair`, damaged entries are set
    /// aside (they become misses). `progress` counts chunks and their stored bytes (outputs and
    /// their bytes when `full`).
    public func verify(repair: Bool, full: Bool = false, progress: ProgressHandler = { _ in }) throws -> VerifyReport {
        try StoreError.translating { full ? try verifyOutputs(repair: repair, progress: progress) : try verifyChunks(repair: repair, progress: progress) }
    }

    private func verifyChunks(repair: Bool, progress: ProgressHandler) throws -> VerifyReport {
        var report = VerifyReport()
        // Pass 1: every chunk once. Kept: the plain size of each good one, and where each bad one is.
        var good: [SHA256Digest: UInt32] = [:]
        var bad: [SHA256Digest: (location: ChunkLocation, reason: String)] = [:]
        let totals = try catalog.chunkTotals()
        var done = Progress(totalItems: Int64(totals.count), totalBytes: totals.storedBytes)
        var record: [UInt8] = []
        var plain: [UInt8] = []
        try catalog.forEachChunk { digest, location in
            progress(done)
            done.items += 1
            done.bytes += Int64(location.storedSize)
            report.chunksChecked += 1
            if plain.count < Int(location.rawSize) { plain = [UInt8](repeating: 0, count: Int(location.rawSize)) }
            do {
                try plain.withUnsafeMutableBytes { output in
                    try packs.withPayload(digest, at: location, buffer: &record) { payload in
                        try decodePayload(payload, codec: location.codec, of: digest, into: UnsafeMutableRawBufferPointer(rebasing: output[..<Int(location.rawSize)]), trustingChecksum: false)
                    }
                }
                good[digest] = location.rawSize
            } catch {
                bad[digest] = (location, "\(error)")
            }
        }
        progress(done)
        // Pass 2: every manifest against those chunks.
        try catalog.forEachManifest { keyBytes, bytes, _ in
            verifyEntry(keyBytes, bytes, repair: repair, report: &report) { manifest, keyHex in
                switch manifest.content {
                case .inline:
                    _ = try inlineOutput(of: manifest)
                case .chunks(let chunks):
                    var total: Int64 = 0
                    for chunk in chunks {
                        let name = "chunk \(chunk.digest.hex.prefix(16)) of \(keyHex.prefix(16))"
                        if let damage = bad[chunk.digest] {
                            throw StoreError(.damagedEntry, "\(name): \(damage.reason)", damagedChunk: (chunk.digest, damage.location))
                        }
                        guard let size = good[chunk.digest] else { throw StoreError(.damagedEntry, "\(name): not in the catalog") }
                        guard size == chunk.size else { throw StoreError(.damagedEntry, "\(name): catalog size differs from manifest") }
                        total += Int64(size)
                    }
                    guard total == manifest.size else { throw StoreError(.damagedEntry, "manifest \(keyHex.prefix(16)): its chunks do not add up to its size") }
                }
            }
        }
        // A damaged chunk no output names is forgotten too, so a put that has it stores it again.
        if repair { for (digest, damage) in bad { try? catalog.forget(digest, at: damage.location) } }
        return report
    }

    private func verifyOutputs(repair: Bool, progress: ProgressHandler) throws -> VerifyReport {
        var report = VerifyReport()
        // Two passes over the catalog, a page at a time: the total for the progress, then the check.
        var done = Progress()
        try catalog.forEachManifest { _, bytes, _ in
            done.totalItems += 1
            done.totalBytes += (try? Manifest(decoding: bytes))?.size ?? 0
        }
        try catalog.forEachManifest { keyBytes, bytes, _ in
            progress(done)
            done.items += 1
            verifyEntry(keyBytes, bytes, repair: repair, report: &report) { manifest, _ in
                done.bytes += manifest.size
                // Read back as a get reads it, and checked whole.
                try write(manifest, to: DiscardingDestination(), checkOutputID: true)
            }
        }
        progress(done)
        return report
    }

    /// One catalog entry, as both kinds of verify check it: a manifest that does not decode or is
    /// for another action is damaged, as is one `check` throws for. Damage is added to `report`
    /// and, with `repair`, set aside.
    private func verifyEntry(
        _ keyBytes: [UInt8], _ bytes: [UInt8], repair: Bool, report: inout VerifyReport,
        _ check: (_ manifest: Manifest, _ keyHex: String) throws -> Void
    ) {
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
            try check(manifest, keyHex)
        } catch {
            // Anything that stops an output being read back (an unreadable pack, too) is damage.
            report.damaged.append((keyHex, "\(error)"))
            if repair, let key = SHA256Digest(bytes: keyBytes) {
                setAside(key, because: StoreError(.damagedEntry, "verify: \(error)", damagedChunk: (error as? StoreError)?.damagedChunk))
                report.repaired += 1
            }
        }
    }
}
