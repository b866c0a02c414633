import Digests
import FileIO

extension ChunkStore {
    /// What an export wrote.
    public struct ExportReport: Sendable, Equatable {
        public var manifests = 0
        public var chunks = 0
        public var bytes: Int64 = 0
    }

    /// What an import added.
    public struct ImportReport: Sendable, Equatable {
        public var manifests = 0
        public var chunks = 0
        /// Manifests left out because a chunk they need is in neither the store nor the archives
        /// (a delta imported without its base).
        public var incomplete = 0
    }

    /// Writes the store's outputs to one archive file: all of them, or those used within the last
    /// `usedWithin`. With `base`, only what that archive lacks.
    /// `progress` counts the store's outputs looked at, and the archive's bytes.
    @discardableResult
    public func exportArchive(to path: String, usedWithin: Duration? = nil, base: String? = nil, progress: ProgressHandler = { _ in }) throws -> ExportReport {
        try StoreError.translating { try exportArchiveLocked(to: path, usedWithin: usedWithin, base: base, progress: progress) }
    }

    private func exportArchiveLocked(to path: String, usedWithin: Duration?, base: String?, progress: ProgressHandler) throws -> ExportReport {
        var baseChunks = Set<SHA256Digest>()
        // Manifests by their hash: a base archive may hold a hundred thousand of them.
        var baseManifests = Set<SHA256Digest>()
        var baseDictionaries = Set<[UInt8]>()
        if let base {
            var reader = try ArchiveReader(path: base)
            defer { reader.close() }
            try reader.checkIntegrity()
            while let (kind, payload) = try reader.next() {
                if kind == ArchiveFormat.chunkKind, payload.count >= 32 {
                    baseChunks.insert(payload.withUnsafeBytes { SHA256Digest(unsafeBytes: $0) })
                } else if kind == ArchiveFormat.manifestKind, payload.count > 8 {
                    baseManifests.insert(SHA256.hash(payload[8...]))
                } else if kind == ArchiveFormat.dictionaryKind {
                    baseDictionaries.insert(payload)
                }
            }
        }
        let cutoff = usedWithin.map { (Timestamp.now - $0).nanosecondsSinceEpoch } ?? .min
        let writer = try ArchiveWriter(path: path)
        var report = ExportReport()
        var written = Set<SHA256Digest>()
        var record: [UInt8] = []
        do {
            // Dictionaries first: chunks compressed with one cannot be checked without it.
            for dictionary in try catalog.dictionaries() where !baseDictionaries.contains(dictionary) {
                try writer.record(ArchiveFormat.dictionaryKind, dictionary)
            }
            var done = Progress(totalItems: Int64(try catalog.manifestCount()))
            try catalog.forEachManifest { _, bytes, used in
                done.items += 1
                done.bytes = writer.size
                progress(done)
                guard used >= cutoff, let manifest = try? Manifest(decoding: bytes), baseManifests.isEmpty || !baseManifests.contains(SHA256.hash(bytes))
                else { return }
                // Chunks first, so an archive read in order never names a chunk before it holds it.
                if case .chunks(let chunks) = manifest.content {
                    for chunk in chunks where !baseChunks.contains(chunk.digest) && written.insert(chunk.digest).inserted {
                        guard let location = try catalog.location(of: chunk.digest) else { continue }
                        var head = BinaryWriter(capacity: 37)
                        head.append(chunk.digest)
                        head.append(location.codec.rawValue)
                        head.append(location.rawSize)
                        let payload = try packs.withPayload(chunk.digest, at: location, buffer: &record) { Array($0) }
                        try writer.record(ArchiveFormat.chunkKind, head.bytes, payload)
                        report.chunks += 1
                    }
                }
                var head = BinaryWriter(capacity: 8)
                head.append(used)
                try writer.record(ArchiveFormat.manifestKind, head.bytes, bytes)
                report.manifests += 1
            }
            try writer.finish()
        } catch {
            writer.abandon()
            throw error
        }
        report.bytes = writer.size
        return report
    }

    /// Merges archives into the store (chunks it already has are not stored again). Every archive
    /// is checked in full before anything is written: a bad, truncated or tampered archive is
    /// rejected with the store unchanged.
    /// `progress` counts the archives' bytes read in the two passes.
    @discardableResult
    public func importArchives(_ paths: [String], progress: ProgressHandler = { _ in }) throws -> ImportReport {
        try StoreError.translating { try importArchivesLocked(paths, progress: progress) }
    }

    private func importArchivesLocked(_ paths: [String], progress: ProgressHandler) throws -> ImportReport {
        var done = Progress(totalItems: Int64(2 * paths.count), totalBytes: 2 * paths.reduce(0) { $0 + ((try? FileSystem.status(of: $1).size) ?? 0) })
        // Pass 1: integrity, chunk contents against their hashes, manifests parse.
        /// The next record of `reader`, counted in `done`.
        func next(_ reader: inout ArchiveReader, after base: Int64) throws -> (kind: UInt8, payload: [UInt8])? {
            let record = try reader.next()
            done.bytes = base + (record == nil ? reader.size : reader.position)
            if record == nil { done.items += 1 }
            progress(done)
            return record
        }
        /// Calls `body` with every record of every archive in turn, each archive checked whole first.
        func eachRecord(_ body: (_ path: String, _ kind: UInt8, _ payload: [UInt8]) throws -> Void) throws {
            for path in paths {
                var reader = try ArchiveReader(path: path)
                defer { reader.close() }
                try reader.checkIntegrity()
                let base = done.bytes
                while let (kind, payload) = try next(&reader, after: base) { try body(path, kind, payload) }
            }
        }
        try eachRecord { path, kind, payload in
            switch kind {
            case ArchiveFormat.chunkKind:
                _ = try checkedChunk(payload, in: path)
            case ArchiveFormat.manifestKind:
                guard payload.count > 8, (try? Manifest(decoding: Array(payload[8...]))) != nil else {
                    throw StoreError(.badArchive, "\(path): a manifest does not parse")
                }
            case ArchiveFormat.dictionaryKind:
                try checkedDictionary(payload, in: path)
            default:
                throw StoreError(.badArchive, "\(path): unknown record kind \(kind)")
            }
        }
        // Pass 2: store chunks, then commit each complete manifest with the chunks it brought.
        var report = ImportReport()
        try lock.withShared {
            // Chunks stored whose manifest is not committed yet: once one is, the catalog knows
            // them, so this holds a few hundred outputs' chunks, not the archive's.
            var added: [SHA256Digest: ChunkLocation] = [:]
            // Manifests ready to commit, a few hundred to a transaction.
            var pending: [Catalog.Commit] = []
            func commitPending() throws {
                try catalog.commit(pending)
                for commit in pending { for (digest, _) in commit.newChunks { added[digest] = nil } }
                pending.removeAll(keepingCapacity: true)
            }
            try eachRecord { path, kind, payload in
                if kind == ArchiveFormat.dictionaryKind {
                    let dictionary = try checkedDictionary(payload, in: path)
                    try catalog.addDictionary(id: dictionary.id, content: dictionary.bytes, time: WallClock.nanoseconds())
                    return
                }
                if kind == ArchiveFormat.chunkKind {
                    let chunk = try checkedChunk(payload, in: path)
                    guard added[chunk.digest] == nil, try catalog.location(of: chunk.digest) == nil else { return }
                    added[chunk.digest] = try payload.withUnsafeBytes { raw in
                        try packs.append(chunk.digest, codec: chunk.codec, rawSize: chunk.rawSize, payload: UnsafeRawBufferPointer(rebasing: raw[37...]), pending: false)
                    }
                    report.chunks += 1
                    return
                }
                let bytes = Array(payload[8...])
                let used = payload.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
                let manifest = try Manifest(decoding: bytes)
                var fresh: [(SHA256Digest, ChunkLocation)] = []
                var complete = true
                if case .chunks(let chunks) = manifest.content {
                    for chunk in chunks {
                        if let location = added[chunk.digest] {
                            fresh.append((chunk.digest, location))
                        } else if try catalog.location(of: chunk.digest) == nil {
                            complete = false
                        }
                    }
                }
                guard complete else {
                    report.incomplete += 1
                    return
                }
                pending.append(Catalog.Commit(key: manifest.key, manifest: bytes, time: used, newChunks: fresh))
                report.manifests += 1
                if pending.count >= 256 { try commitPending() }
            }
            try commitPending()
        }
        return report
    }

    /// Parses a dictionary record and makes the dictionary available for checking the chunks
    /// after it. One whose zstd ID the store already uses for another dictionary (a 1 in 2^31
    /// chance) cannot be imported.
    @discardableResult
    private func checkedDictionary(_ payload: [UInt8], in path: String) throws -> CompressionDictionary {
        guard let dictionary = CompressionDictionary(bytes: payload) else { throw StoreError(.badArchive, "\(path): a dictionary is not a zstd dictionary") }
        if let existing = try catalog.dictionary(id: dictionary.id), existing != payload {
            throw StoreError(.badArchive, "\(path): its dictionary \(dictionary.id) differs from the store's dictionary with that ID")
        }
        guard compressor.add(dictionary) else { throw StoreError(.badArchive, "\(path): zstd rejects dictionary \(dictionary.id)") }
        return dictionary
    }

    /// Parses a chunk record and checks its content against its hash.
    private func checkedChunk(_ payload: [UInt8], in path: String) throws -> (digest: SHA256Digest, codec: Codec, rawSize: Int) {
        guard payload.count > 37 else { throw StoreError(.badArchive, "\(path): a chunk record is too short") }
        return try payload.withUnsafeBytes { raw in
            let digest = SHA256Digest(unsafeBytes: raw)
            guard let codec = Codec(rawValue: raw[32]) else { throw StoreError(.badArchive, "\(path): unknown codec") }
            let rawSize = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 33, as: UInt32.self)))
            guard rawSize > 0, rawSize <= 1 << 24 else { throw StoreError(.badArchive, "\(path): bad chunk size") }
            var plain = [UInt8](repeating: 0, count: rawSize)
            do {
                try plain.withUnsafeMutableBytes {
                    try decodePayload(UnsafeRawBufferPointer(rebasing: raw[37...]), codec: codec, of: digest, into: $0, trustingChecksum: false)
                }
            } catch let error as CorruptData where error == .hashMismatch {
                throw StoreError(.badArchive, "\(path): chunk \(digest.hex.prefix(16)) does not match its hash (tampered?)")
            } catch {
                throw StoreError(.badArchive, "\(path): chunk \(digest.hex.prefix(16)) does not decode")
            }
            return (digest, codec, rawSize)
        }
    }
}
