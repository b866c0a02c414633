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
    public func recordUse(of keys: [SHA256Digest], at time: Int64) throws {
        try catalog.touch(keys, time: time)
    }

    /// Bytes the store occupies on disk (as `du` counts), live and kept files excluded (they
    /// have budgets of their own).
    public var diskUsage: Int64 {
        let live = scratchRoot == directory ? FileSystem.allocatedSize(of: liveRoot) : 0
        return FileSystem.allocatedSize(of: directory) - live - FileSystem.allocatedSize(of: keptRoot)
    }

    /// Removes chunks no manifest names, deletes packs left empty, and rewrites packs that are
    /// mostly garbage (live fraction under `compactBelow`) into a fresh pack. Runs with puts
    /// held off (`StoreLock`); packs other processes are still appending to are left alone.
    @discardableResult
    public func collectGarbage(compactBelow: Double = 0.5) throws -> GarbageReport {
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
            for pack in packs.packIDs() {
                guard let held = packs.lockForCompaction(pack) else { continue }
                defer { held.close() }
                let size = (try? held.status().size) ?? 0
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

    /// Expires outputs unused for `maxAge` nanoseconds, then, if the store is over `maxSize`
    /// bytes, evicts least recently used outputs until it is at most 90 % of it.
    @discardableResult
    public func trim(maxSize: Int64?, maxAge: Int64?) throws -> TrimReport {
        var report = TrimReport()
        report.bytesBefore = diskUsage
        if let maxAge {
            report.expired = try catalog.deleteManifests(unusedSince: WallClock.nanoseconds() - maxAge)
        }
        report.garbage = try collectGarbage(compactBelow: 0.9)
        var usage = diskUsage
        if let maxSize, usage > maxSize {
            let target = maxSize / 10 * 9
            var order = try catalog.actionsByLastUse()[...]
            while usage > target, !order.isEmpty {
                // Evict in proportion to the excess, then measure again: with deduplication an
                // output's share of the disk is only known after collecting.
                let share = Double(usage - target) / Double(max(usage, 1))
                let count = max(1, min(order.count, Int(Double(order.count) * share * 1.1)))
                try catalog.deleteManifests(order.prefix(count).map(\.key))
                order = order.dropFirst(count)
                report.evicted += count
                let garbage = try collectGarbage(compactBelow: 0.9)
                report.garbage.chunksRemoved += garbage.chunksRemoved
                report.garbage.packsRemoved += garbage.packsRemoved
                report.garbage.packsCompacted += garbage.packsCompacted
                report.garbage.bytesFreed += garbage.bytesFreed
                usage = diskUsage
            }
        }
        report.bytesAfter = usage
        counters.evictions.add(Int64(report.expired + report.evicted))
        counters.lastTrim.add(WallClock.nanoseconds() - counters.lastTrim.current)
        return report
    }

    /// Re-reads every output and checks it against its output ID. With `repair`, damaged
    /// entries are set aside (they become misses). `progress` is called with (done, total).
    public func verify(repair: Bool, progress: (Int, Int) -> Void = { _, _ in }) throws -> VerifyReport {
        var report = VerifyReport()
        let all = try catalog.allManifests()
        var record: [UInt8] = []
        var window: [UInt8] = []
        for (index, (keyBytes, bytes)) in all.enumerated() {
            progress(index, all.count)
            report.checked += 1
            let keyHex = Hex.encode(keyBytes)
            do {
                let manifest = try Manifest(decoding: bytes)
                guard manifest.key.bytes == keyBytes else { throw CorruptData(description: "manifest is for another action") }
                var hasher = SHA256()
                switch manifest.content {
                case .inline(let codec, let payload):
                    var plain = [UInt8](repeating: 0, count: Int(manifest.size))
                    _ = try payload.withUnsafeBytes { input in try plain.withUnsafeMutableBytes { try compressor.decompress(input, codec: codec, into: $0) } }
                    hasher.update(plain)
                case .chunks(let chunks):
                    for chunk in chunks {
                        if window.count < Int(chunk.size) { window = [UInt8](repeating: 0, count: Int(chunk.size)) }
                        try window.withUnsafeMutableBytes { out in
                            let part = UnsafeMutableRawBufferPointer(rebasing: out[..<Int(chunk.size)])
                            try decode(chunk, of: manifest, into: part, record: &record)
                            hasher.update(UnsafeRawBufferPointer(part))
                        }
                    }
                }
                guard hasher.finalize() == manifest.outputID else { throw CorruptData(description: "output does not match its output ID") }
            } catch {
                report.damaged.append((keyHex, "\(error)"))
                if repair, let key = SHA256Digest(bytes: keyBytes) {
                    quarantine(key: key, reason: "verify: \(error)")
                    report.repaired += 1
                }
            }
        }
        progress(all.count, all.count)
        return report
    }
}
