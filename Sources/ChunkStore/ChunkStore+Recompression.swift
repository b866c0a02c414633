import Digests
import Dispatch
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

extension ChunkStore {
    /// What `recompressNewChunks` did.
    public struct RecompressionReport: Sendable, Equatable {
        /// Chunks rewritten at the higher level, and their stored bytes before and after.
        public var chunks = 0
        public var bytesBefore: Int64 = 0
        public var bytesAfter: Int64 = 0
        /// Packs replaced (each by a smaller one).
        public var packs = 0
        /// The zstd ID of the dictionary the chunks were compressed with, if any.
        public var dictionary: UInt32?
    }

    /// The store's dictionary (the first one added), if it has one.
    public func storeDictionary() throws -> CompressionDictionary? {
        try catalog.dictionaries().lazy.compactMap(CompressionDictionary.init(bytes:)).first
    }

    /// The store's dictionary; if it has none yet, one trained on a sample of the chunks in
    /// `packs` and added to the store (nil if they are too few to learn from). When two
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
                _ = try packs.withPayload(digest, at: location, buffer: &record) { payload in
                    try samples.withUnsafeMutableBytes { try compressor.decompress(payload, codec: location.codec, into: UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
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

    /// Rewrites the chunks this process stored (in the packs it created) with zstd at `level`
    /// and the store's dictionary, into fresh packs, and deletes the old ones.
    ///
    /// Puts compress at a fast level because the go command waits for them; once it has moved
    /// on, the same chunks can be made smaller at leisure. zstd-15 with a dictionary trained on
    /// the store's own chunks (the first run with enough new chunks trains it) stores Go outputs
    /// about an eighth smaller than zstd-9 alone, and decodes about 5 % slower (BENCHMARKS.md).
    /// The work is shared between the cores.
    ///
    /// Runs beside puts (holding the store's shared lock, so gc waits) and is safe to kill at
    /// any moment: new records are written before one catalog transaction points the chunks at
    /// them, and an old pack is deleted only after that; a reader that finds a pack gone looks
    /// the chunk up again. Chunks that would not shrink keep their record, copied as they are.
    ///
    /// With `lowPriority`, the threads doing the work (this one and dispatch's workers) lower
    /// their CPU priority for good (Linux lets an unprivileged process lower it, not raise it
    /// back): for a process that is about to end, as chunkcache is after the go command left.
    @discardableResult
    public func recompressNewChunks(level: Int32, lowPriority: Bool = false) throws -> RecompressionReport {
        guard !isReadOnly, compressor.codec == .zstd, level > compressor.level else {
            _ = packs.takeCreatedPacks()
            return RecompressionReport()
        }
        let stronger = Compressor(codec: .zstd, level: level)
        if lowPriority { Self.lowerThisThreadsPriority() }
        return try lock.withShared {
            packs.finishAppending()
            let created = packs.takeCreatedPacks()
            var report = RecompressionReport()
            guard !created.isEmpty else { return report }
            let dictionary = try storeDictionary(orTrainOn: created)
            if let dictionary { stronger.add(dictionary) }
            report.dictionary = dictionary?.id
            for pack in created {
                var moves: [(SHA256Digest, ChunkLocation)] = []
                var before: Int64 = 0
                var after: Int64 = 0
                let chunks = try catalog.chunks(in: pack)
                for batchStart in stride(from: 0, to: chunks.count, by: Self.recompressionBatch) {
                    let batch = chunks[batchStart..<min(batchStart + Self.recompressionBatch, chunks.count)]
                    let encoded = try recompress(batch, with: stronger, dictionary: dictionary, lowPriority: lowPriority)
                    for ((digest, location), record) in zip(batch, encoded) {
                        // A damaged chunk is forgotten with the old pack below; its outputs become misses.
                        guard let record else { continue }
                        let moved = try record.payload.withUnsafeBytes {
                            try packs.append(digest, codec: record.codec, rawSize: Int(location.rawSize), payload: $0)
                        }
                        moves.append((digest, moved))
                        before += Int64(location.storedSize)
                        after += Int64(moved.storedSize)
                    }
                }
                try catalog.relocate(moves)
                try catalog.deleteChunks(in: pack)
                try packs.remove(pack)
                report.packs += 1
                report.chunks += moves.count
                report.bytesBefore += before
                report.bytesAfter += after
            }
            packs.finishAppending()
            _ = packs.takeCreatedPacks()  // the new packs: already at `level`
            return report
        }
    }

    /// Background work: the next build comes first. On Linux, nice is per thread, so each thread
    /// doing the work lowers its own.
    private static func lowerThisThreadsPriority() {
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
    }

    /// Chunks recompressed at once (their new records are held in memory until written in order).
    static var recompressionBatch: Int { 64 }

    /// Decodes each chunk of `batch` and encodes it with `stronger`, on every core (recompression
    /// runs after the go command has exited, at low priority). Returns, in order, each chunk's new
    /// codec and payload (its old ones if they would not shrink), or nil for a damaged chunk.
    private func recompress(_ batch: ArraySlice<(SHA256Digest, ChunkLocation)>, with stronger: Compressor, dictionary: CompressionDictionary?, lowPriority: Bool) throws -> [(codec: Codec, payload: [UInt8])?] {
        let items = Array(batch)
        let results = Mutex<[Result<(codec: Codec, payload: [UInt8])?, any Error>?]>(Array(repeating: nil, count: items.count))
        let next = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: min(Self.decodingThreads, items.count)) { _ in
            if lowPriority { Self.lowerThisThreadsPriority() }
            var record: [UInt8] = []
            var plain: [UInt8] = []
            while true {
                let index = Int(next.add()) - 1
                guard index < items.count else { return }
                let (digest, location) = items[index]
                let result = Result<(codec: Codec, payload: [UInt8])?, any Error> {
                    do {
                        return try packs.withPayload(digest, at: location, buffer: &record) { payload in
                            guard location.codec == .zstd else { return (location.codec, Array(payload)) }
                            if plain.count < Int(location.rawSize) { plain = [UInt8](repeating: 0, count: Int(location.rawSize)) }
                            let raw = try plain.withUnsafeMutableBytes { out in
                                let target = UnsafeMutableRawBufferPointer(rebasing: out[..<Int(location.rawSize)])
                                try compressor.decompress(payload, codec: .zstd, into: target)
                                return UnsafeRawBufferPointer(target)
                            }
                            var compressed: [UInt8] = []
                            let codec = stronger.compress(raw, into: &compressed, dictionary: dictionary)
                            guard codec == .zstd, compressed.count < payload.count else { return (location.codec, Array(payload)) }
                            return (.zstd, compressed)
                        }
                    } catch is CorruptData {
                        return nil
                    }
                }
                results.withLock { $0[index] = result }
            }
        }
        return try results.withLock { $0 }.map { try $0!.get() }
    }
}
