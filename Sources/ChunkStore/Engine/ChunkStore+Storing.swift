import Digests
import FileIO

extension ChunkStore {
    // MARK: Storing

    /// Stores `body` as the output of `key`, replacing what was there. Returns its manifest.
    /// Throws `outOfSpace` if the store's filesystem lacks the output's size beyond its reserve.
    @discardableResult
    public func store(key: SHA256Digest, outputID: SHA256Digest, time: Timestamp, body: Body) throws -> Manifest {
        guard !isReadOnly else { throw StoreError(.readOnly, "the store at \(directory) is read-only") }
        return try StoreError.translating { try lock.withShared { try storeLocked(key: key, outputID: outputID, time: time, body: body) } }
    }

    /// Free space the store leaves on its filesystem: 5 % of it, between 1 MiB and 256 MiB. The
    /// build itself needs room (the go command writes its binaries and its own files), so the
    /// store stops growing before the disk is full rather than when it is.
    public static func reserve(onFilesystemOf total: Int64) -> Int64 {
        min(256 << 20, max(1 << 20, total / 20))
    }

    /// Throws `outOfSpace` unless the store's filesystem has `bytes` free beyond the reserve.
    /// (Compressed, an output takes at most about its size.)
    func ensureSpace(for bytes: Int64) throws {
        guard let space = try? FileSystem.space(at: directory) else { return }
        let reserve = Self.reserve(onFilesystemOf: space.total)
        guard space.available - bytes >= reserve else {
            throw StoreError(.outOfSpace, "the disk holding \(directory) has \(space.available) bytes free, and the store leaves \(reserve) free")
        }
    }

    private func storeLocked(key: SHA256Digest, outputID: SHA256Digest, time: Timestamp, body: Body) throws -> Manifest {
        var newChunks = NewChunks()
        let content: Manifest.Content
        let size: Int64
        switch body {
        case .bytes(let bytes):
            size = Int64(bytes.count)
            try ensureSpace(for: size)
            content = try bytes.withUnsafeBytes { raw in
                if raw.count <= configuration.inlineLimit { return inline(raw) }
                return .chunks(try storeChunks(of: raw, newChunks: &newChunks))
            }
        case .file(let path):
            let descriptor = try FileDescriptor.open(path, [.readOnly])
            defer { descriptor.close() }
            size = try descriptor.status().size
            try ensureSpace(for: size)
            if size <= Int64(configuration.inlineLimit) {
                let bytes = try FileSystem.readFile(path)
                guard bytes.count == size else { throw StoreError(.changedWhileStoring, "\(path) changed while being stored") }
                content = bytes.withUnsafeBytes { inline($0) }
            } else {
                var offset: Int64 = 0
                content = .chunks(try storeChunks(size: size, newChunks: &newChunks) { buffer in
                    let n = try descriptor.read(into: buffer, at: offset)
                    offset += Int64(n)
                    return n
                })
            }
        }
        let manifest = Manifest(key: key, outputID: outputID, size: size, time: time, content: content)
        if case .chunks(let chunks) = content {
            let total = chunks.reduce(Int64(0)) { $0 + Int64($1.size) }
            guard total == size else { throw StoreError(.changedWhileStoring, "output changed while being stored") }
        }
        try newChunks.flush(to: packs, recordingIn: nil)
        try catalog.commit(key: key, manifest: manifest.encoded(), time: time.nanosecondsSinceEpoch, newChunks: newChunks.unrecorded)
        counters.puts.add()
        counters.bytesPut.add(size)
        return manifest
    }

    private func inline(_ raw: UnsafeRawBufferPointer) -> Manifest.Content {
        var payload: [UInt8] = []
        let codec = compressor.compress(raw, into: &payload)
        return .inline(codec: codec, payload: payload)
    }

    /// Chunks an output held in memory, in place.
    private func storeChunks(of raw: UnsafeRawBufferPointer, newChunks: inout NewChunks) throws -> [Manifest.Chunk] {
        try storeChunks(configuration.chunker.chunks(of: raw).map { UnsafeRawBufferPointer(rebasing: raw[$0]) }, newChunks: &newChunks)
    }

    /// Chunks what `read` supplies (it fills a buffer and returns the count, 0 at the end) through
    /// a window of about 1 MiB, so a large file never sits whole in memory.
    private func storeChunks(size: Int64, newChunks: inout NewChunks, _ read: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> [Manifest.Chunk] {
        let chunker = configuration.chunker
        let capacity = Int(min(size + 1, Int64(max(1 << 20, chunker.maxSize * 2))))
        var buffer = [UInt8](repeating: 0, count: max(capacity, chunker.maxSize + 1))
        var chunks: [Manifest.Chunk] = []
        chunks.reserveCapacity(Int(size / Int64(chunker.averageSize)) + 16)
        var start = 0
        var end = 0
        var atEnd = false
        try buffer.withUnsafeMutableBytes { buffer in
            while true {
                if !atEnd, end - start < chunker.maxSize {
                    // Keep at least a maximum chunk ahead, so every cut sees all it may need.
                    if start > 0 {
                        buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: end - start)
                        end -= start
                        start = 0
                    }
                    while end < buffer.count {
                        let n = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
                        if n == 0 {
                            atEnd = true
                            break
                        }
                        end += n
                    }
                }
                if start == end { break }
                // Every chunk that can be cut now (a maximum chunk ahead, or the end), stored
                // together before the window moves.
                var pieces: [UnsafeRawBufferPointer] = []
                repeat {
                    let window = UnsafeRawBufferPointer(rebasing: buffer[start..<end])
                    let length = chunker.firstChunkLength(window)
                    pieces.append(UnsafeRawBufferPointer(rebasing: window[..<length]))
                    start += length
                } while start < end && (atEnd || end - start >= chunker.maxSize)
                chunks += try storeChunks(pieces, newChunks: &newChunks)
            }
        }
        return chunks
    }

    /// Hashes `chunks`, asks the catalog once which it has, and stores those that neither it
    /// nor this put has yet.
    private func storeChunks(_ chunks: [UnsafeRawBufferPointer], newChunks: inout NewChunks) throws -> [Manifest.Chunk] {
        let digests = chunks.map { SHA256.hash($0) }
        let known = try catalog.locations(of: digests)
        for (chunk, digest) in zip(chunks, digests) where known[digest] == nil && !newChunks.contains(digest) {
            newChunks.batch.add(digest, rawSize: chunk.count, maxPayload: compressor.bound(chunk.count)) { compressor.compress(chunk, into: $0) }
            if newChunks.batch.count >= NewChunks.flushSize { try newChunks.flush(to: packs, recordingIn: catalog) }
        }
        return zip(chunks, digests).map { Manifest.Chunk(digest: $1, size: UInt32($0.count)) }
    }
}

/// The chunks one put adds: records gathered into a batch and written to the pack about every
/// MiB (so a put makes few writes). A put of up to a batch records its chunks with its manifest,
/// in one commit; a larger one records each full batch's chunks as it goes, so that a put of
/// gigabytes holds one batch, not the location of every chunk it stored. (Until its manifest is
/// committed those chunks are named by none: a crash leaves them to gc, as it leaves the bytes of
/// an unfinished put; gc cannot run meanwhile, as the put holds the store's shared lock.)
private struct NewChunks {
    static let flushSize = 1 << 20
    let batch = PackStore.RecordBatch()
    /// Chunks written and not yet in the catalog: they go in with the manifest.
    private(set) var unrecorded: [(SHA256Digest, ChunkLocation)] = []

    /// Whether this put has the chunk already; those of earlier batches are in the catalog.
    func contains(_ digest: SHA256Digest) -> Bool { batch.contains(digest) }

    /// Writes the batch to the pack; its chunks go to `catalog` now, or (nil) with the manifest.
    mutating func flush(to packs: PackStore, recordingIn catalog: Catalog?) throws {
        let written = try packs.write(batch)
        batch.removeAll()
        if let catalog { try catalog.record(written) } else { unrecorded += written }
    }
}
