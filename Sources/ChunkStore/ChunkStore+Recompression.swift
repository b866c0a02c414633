import Digests
import FileIO

extension ChunkStore {
    /// What `recompressNewChunks` did.
    public struct RecompressionReport: Sendable, Equatable {
        /// Chunks rewritten at the higher level, and their stored bytes before and after.
        public var chunks = 0
        public var bytesBefore: Int64 = 0
        public var bytesAfter: Int64 = 0
        /// Packs replaced (each by a smaller one).
        public var packs = 0
    }

    /// Rewrites the chunks this process stored (in the packs it created) with zstd at `level`,
    /// into fresh packs, and deletes the old ones.
    ///
    /// Puts compress at a fast level because the go command waits for them; once it has moved
    /// on, the same chunks can be made smaller at leisure (zstd-9 saves about a tenth more than
    /// zstd-3 on Go outputs and decompresses as fast). Runs beside puts (holding the store's
    /// shared lock, so gc waits) and is safe to kill at any moment: new records are written
    /// before one catalog transaction points the chunks at them, and an old pack is deleted only
    /// after that; a reader that finds a pack gone looks the chunk up again. Chunks that would
    /// not shrink keep their record, copied as they are.
    @discardableResult
    public func recompressNewChunks(level: Int32) throws -> RecompressionReport {
        guard !isReadOnly, compressor.codec == .zstd, level > compressor.level else {
            _ = packs.takeCreatedPacks()
            return RecompressionReport()
        }
        let stronger = Compressor(codec: .zstd, level: level)
        return try lock.withShared {
            packs.finishAppending()
            var report = RecompressionReport()
            var record: [UInt8] = []
            var plain: [UInt8] = []
            var compressed: [UInt8] = []
            for pack in packs.takeCreatedPacks() {
                var moves: [(SHA256Digest, ChunkLocation)] = []
                var before: Int64 = 0
                var after: Int64 = 0
                for (digest, location) in try catalog.chunks(in: pack) {
                    do {
                        let moved = try packs.withPayload(digest, at: location, buffer: &record) { payload -> ChunkLocation in
                            guard location.codec == .zstd else {
                                return try packs.append(digest, codec: location.codec, rawSize: Int(location.rawSize), payload: payload)
                            }
                            if plain.count < Int(location.rawSize) { plain = [UInt8](repeating: 0, count: Int(location.rawSize)) }
                            let raw = try plain.withUnsafeMutableBytes { out in
                                let target = UnsafeMutableRawBufferPointer(rebasing: out[..<Int(location.rawSize)])
                                try compressor.decompress(payload, codec: .zstd, into: target)
                                return UnsafeRawBufferPointer(target)
                            }
                            compressed.removeAll(keepingCapacity: true)
                            let codec = stronger.compress(raw, into: &compressed)
                            guard codec == .zstd, compressed.count < payload.count else {
                                return try packs.append(digest, codec: location.codec, rawSize: Int(location.rawSize), payload: payload)
                            }
                            return try compressed.withUnsafeBytes { try packs.append(digest, codec: .zstd, rawSize: Int(location.rawSize), payload: $0) }
                        }
                        moves.append((digest, moved))
                        before += Int64(location.storedSize)
                        after += Int64(moved.storedSize)
                    } catch is CorruptData {
                        continue  // damaged: forgotten with the old pack below; its outputs become misses
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
}
