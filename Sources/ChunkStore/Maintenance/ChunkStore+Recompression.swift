import Digests
import Dispatch
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension ChunkStore {
    /// What `recompressPendingChunks` did.
    public struct RecompressionReport: Sendable, Equatable {
        /// Chunks rewritten at the higher level, and their stored bytes before and after.
        public var chunks = 0
        public var bytesBefore: Int64 = 0
        public var bytesAfter: Int64 = 0
        /// Packs replaced (each by a smaller one).
        public var packs = 0
        /// The zstd ID of the dictionary the chunks were compressed with, if any.
        public var dictionary: UInt32?
        /// Packs still pending afterwards: the CPU limit was reached, or a running process still
        /// appends to them. A later run takes them up.
        public var packsLeft = 0
        /// Another process was recompressing this store, so this one left the work to it.
        public var leftToAnotherProcess = false
    }

    /// The store's dictionary (the first one added), if it has one.
    public func storeDictionary() throws -> CompressionDictionary? {
        try StoreError.translating { try catalog.dictionaries() }.lazy.compactMap(CompressionDictionary.init(bytes:)).first
    }

    /// The store's dictionary; if it has none yet, one trained on a sample of the chunks in
    /// `created` (pending packs) and added to the store (nil if they are too few to learn from). When two
    /// processes train at once, both keep using the one added first.
    func storeDictionary(orTrainOn created: [UInt64]) throws -> CompressionDictionary? {
        if let existing = try storeDictionary() { return existing }
        var chunks: [(SHA256Digest, ChunkLocation)] = []
        for pack in created { chunks += try catalog.chunks(in: pack) }
        let total = chunks.reduce(0) { $0 + Int($1.1.rawSize) }
        guard total >= CompressionDictionary.sampleBytesNeeded else { return nil }
        // Every k-th chunk, so the sample spans the whole run rather than its first packages.
        let stride = max(1, (total + CompressionDictionary.sampleBytesWanted - 1) / CompressionDictionary.sampleBytesWanted)
        let chosen = chunks.enumerated().filter { $0.offset % stride == 0 }.map(\.element)
        var samples: [UInt8] = []
        samples.reserveCapacity(chosen.reduce(0) { $0 + Int($1.1.rawSize) })  // no doubling: it is most of the peak
        var sizes: [Int] = []
        var record: [UInt8] = []
        for (digest, location) in chosen {
            let start = samples.count
            samples.append(contentsOf: repeatElement(0, count: Int(location.rawSize)))
            do {
                try samples.withUnsafeMutableBytes { out in
                    try decodeRecord(digest, at: location, into: UnsafeMutableRawBufferPointer(rebasing: out[start...]), record: &record)
                }
                sizes.append(Int(location.rawSize))
            } catch is CorruptData {
                samples.removeLast(samples.count - start)
            }
        }
        guard let trained = CompressionDictionary.train(samples: samples, sizes: sizes) else { return nil }
        try catalog.addDictionary(id: trained.id, content: trained.bytes, time: WallClock.nanoseconds())
        return try storeDictionary()
    }

    /// Rewrites the chunks puts stored at a fast level (in packs marked pending, whichever
    /// process wrote them) with zstd at `level` and the store's dictionary, into fresh packs, and
    /// deletes the old ones; oldest packs first.
    ///
    /// Puts compress at a fast level because the go command waits for them; once it has moved
    /// on, the same chunks can be made smaller at leisure. zstd-15 with a dictionary trained on
    /// the store's own chunks (the first run with enough new chunks trains it) stores Go outputs
    /// about an eighth smaller than zstd-9 alone, and decodes about 5 % slower (BENCHMARKS.md).
    /// The work is shared between the cores.
    ///
    /// One process at a time does this work for the whole store (`recompress.lock`): another
    /// that finds it taken leaves its pending packs to it or to a later run, so concurrent builds
    /// do not each load the cores. With `cpuLimit`, it stops between batches once this process
    /// has used that much CPU time since the call (at least one batch is done, so every run makes
    /// progress); what is left stays pending. Packs a running process still appends to are left.
    ///
    /// Runs beside puts (holding the store's shared lock, so gc waits) and is safe to kill at
    /// any moment: new records are written before one catalog transaction points the chunks at
    /// them, and an old pack (and its marker) is deleted only after that; a reader that finds a
    /// pack gone looks the chunk up again. Chunks that would not shrink keep their record, copied
    /// as they are.
    ///
    /// With `lowPriority`, the threads doing the work (this one and dispatch's workers) lower
    /// their CPU priority for good (Linux lets an unprivileged process lower it, not raise it
    /// back): for a process that is about to end, as chunkcache is after the go command left.
    @discardableResult
    public func recompressPendingChunks(level: Int32, cpuLimit: Duration? = nil, lowPriority: Bool = false) throws -> RecompressionReport {
        try StoreError.translating { try recompressPendingChunksLocked(level: level, cpuLimit: cpuLimit, lowPriority: lowPriority) }
    }

    private func recompressPendingChunksLocked(level: Int32, cpuLimit: Duration?, lowPriority: Bool) throws -> RecompressionReport {
        guard !isReadOnly, compressor.codec == .zstd, level > compressor.level else { return RecompressionReport() }
        let started = ProcessClock.cpuTime()
        let exclusive = try FileDescriptor.open(directory + "/recompress.lock", [.readWrite, .create, .noFollow], permissions: 0o600)
        defer { exclusive.close() }
        guard try exclusive.lock(exclusive: true, wait: false) else {
            var report = RecompressionReport()
            report.packsLeft = packs.pendingPacks().count
            report.leftToAnotherProcess = true
            return report
        }
        let stronger = Compressor(codec: .zstd, level: level)
        if lowPriority { StoreThread.lowerPriority() }
        return try lock.withShared {
            packs.finishAppending()
            var report = RecompressionReport()
            let pending = packs.pendingPacks()
            guard !pending.isEmpty else { return report }
            func overLimit() -> Bool { cpuLimit.map { ProcessClock.cpuTime() - started >= $0 } ?? false }
            var dictionary: CompressionDictionary?
            var trained = false
            for (index, pack) in pending.enumerated() {
                if report.chunks > 0 && overLimit() {
                    report.packsLeft += pending.count - index
                    break
                }
                guard let held = packs.lockForCompaction(pack) else {
                    // Still being appended to; or no pack: a marker left by a crash (or one that
                    // another process has only just made, its pack not yet: so only an old one goes).
                    if FileSystem.exists(packs.path(of: pack)) {
                        report.packsLeft += 1
                    } else if let marker = try? FileSystem.status(of: packs.pendingMarker(of: pack)),
                        WallClock.nanoseconds() - marker.modificationTime > 60_000_000_000
                    {
                        packs.markRecompressed(pack)
                    }
                    continue
                }
                defer { held.close() }
                // Its new records are written before it is deleted: they need room meanwhile.
                try ensureSpace(for: (try? held.status().size) ?? 0)
                if !trained {
                    dictionary = try storeDictionary(orTrainOn: pending)
                    if let dictionary { stronger.add(dictionary) }
                    report.dictionary = dictionary?.id
                    trained = true
                }
                let chunks = try catalog.chunks(in: pack)
                var finished = true
                for batchStart in stride(from: 0, to: chunks.count, by: Self.recompressionBatch) {
                    if report.chunks > 0 && overLimit() {
                        finished = false
                        break
                    }
                    let batch = chunks[batchStart..<min(batchStart + Self.recompressionBatch, chunks.count)]
                    let encoded = try recompress(batch, with: stronger, dictionary: dictionary, lowPriority: lowPriority)
                    var moves: [(SHA256Digest, ChunkLocation)] = []
                    for ((digest, location), record) in zip(batch, encoded) {
                        // A damaged chunk is forgotten with the old pack below; its outputs become misses.
                        guard let record else { continue }
                        let moved = try record.payload.withUnsafeBytes {
                            try packs.append(digest, codec: record.codec, rawSize: Int(location.rawSize), payload: $0, pending: false)
                        }
                        moves.append((digest, moved))
                        report.bytesBefore += Int64(location.storedSize)
                        report.bytesAfter += Int64(moved.storedSize)
                    }
                    // Each batch is committed as it is done, so a stop at the limit keeps it.
                    try catalog.relocate(moves)
                    report.chunks += moves.count
                }
                guard finished else {
                    report.packsLeft += pending.count - index
                    break
                }
                try catalog.deleteChunks(in: pack)
                try packs.remove(pack)
                report.packs += 1
            }
            packs.finishAppending()
            return report
        }
    }

    /// Bytes in packs still pending recompression, and how many packs (for `stats`).
    public func pendingRecompression() -> (packs: Int, bytes: Int64) {
        let pending = packs.pendingPacks()
        let bytes = pending.reduce(Int64(0)) { $0 + FileSystem.allocatedSize(of: packs.path(of: $1)) }
        return (pending.count, bytes)
    }

    /// Chunks recompressed at once (their new records are held in memory until written in order).
    static var recompressionBatch: Int { 64 }

    /// Decodes each chunk of `batch` and encodes it with `stronger`, on every core (recompression
    /// runs after the go command has exited, at low priority). Returns, in order, each chunk's new
    /// codec and payload (its old ones if they would not shrink), or nil for a damaged chunk.
    private func recompress(_ batch: ArraySlice<(SHA256Digest, ChunkLocation)>, with stronger: Compressor, dictionary: CompressionDictionary?, lowPriority: Bool) throws -> [(codec: Codec, payload: [UInt8])?] {
        let items = Array(batch)
        let results = Mutex<[(codec: Codec, payload: [UInt8])?]>(Array(repeating: nil, count: items.count))
        try Parallel.forEach(items.count, scratch: { () -> (first: Bool, plain: [UInt8], record: [UInt8]) in (true, [], []) }) { index, scratch in
            if scratch.first, lowPriority { StoreThread.lowerPriority() }
            scratch.first = false
            let (digest, location) = items[index]
            let result: (codec: Codec, payload: [UInt8])?
            do {
                // zlib chunks stay as they are (zlib was chosen); zstd ones are decoded, checked and encoded anew.
                if location.codec != .zstd {
                    result = try packs.withPayload(digest, at: location, buffer: &scratch.record) { (location.codec, Array($0)) }
                } else {
                    if scratch.plain.count < Int(location.rawSize) { scratch.plain = [UInt8](repeating: 0, count: Int(location.rawSize)) }
                    result = try scratch.plain.withUnsafeMutableBytes { out in
                        let target = UnsafeMutableRawBufferPointer(rebasing: out[..<Int(location.rawSize)])
                        return try decodeRecord(digest, at: location, into: target, record: &scratch.record) { payload -> (codec: Codec, payload: [UInt8]) in
                            var compressed: [UInt8] = []
                            let codec = stronger.compress(UnsafeRawBufferPointer(target), into: &compressed, dictionary: dictionary)
                            guard codec == .zstd, compressed.count < payload.count else { return (location.codec, Array(payload)) }
                            return (.zstd, compressed)
                        }
                    }
                }
            } catch is CorruptData {
                result = nil
            }
            results.withLock { $0[index] = result }
        }
        return results.withLock { $0 }
    }
}
