import Digests
import FileIO

/// Where `ChunkStore.write(_:to:)` puts an output's bytes, in order. Called from the store's
/// decoding threads (one call at a time), hence `Sendable`.
public protocol OutputDestination: Sendable {
    func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension FileDescriptor: OutputDestination {
    public func write(_ bytes: UnsafeRawBufferPointer) throws { try writeAll(bytes) }
}

/// A destination that keeps nothing: for checking an output (`verify`) without writing it.
public struct DiscardingDestination: OutputDestination {
    public init() {}
    public func write(_ bytes: UnsafeRawBufferPointer) throws {}
}

extension ChunkStore {
    /// The manifest stored for `key`, or nil. Throws a `damagedEntry` for one that does not parse
    /// or belongs to another key.
    public func manifest(for key: SHA256Digest) throws -> Manifest? {
        guard let bytes = try StoreError.translating({ try catalog.manifest(for: key) }) else { return nil }
        return try decodeManifest(bytes, of: key)
    }

    /// The manifest of the one action whose key starts with the 8 bytes of `prefix` (big-endian),
    /// for callers that remember actions by a short prefix of their key (prefetch); nil if there
    /// is none or the prefix is ambiguous. Throws a `damagedEntry` like `manifest(for:)`.
    public func manifest(forKeyPrefix prefix: UInt64) throws -> Manifest? {
        guard let (key, bytes) = try StoreError.translating({ try catalog.manifest(forKeyPrefix: prefix) }), let digest = SHA256Digest(bytes: key) else { return nil }
        return try decodeManifest(bytes, of: digest)
    }

    private func decodeManifest(_ bytes: [UInt8], of key: SHA256Digest) throws -> Manifest {
        do {
            let manifest = try Manifest(decoding: bytes)
            guard manifest.key == key else { throw CorruptData(description: "manifest is for another action") }
            return manifest
        } catch let error as CorruptData {
            throw StoreError(.damagedEntry, "manifest \(key.hex.prefix(16)): \(error)")
        }
    }

    /// Chunks of `manifest` this store does not have (so `write` needs them `supplied`).
    public func missingChunks(of manifest: Manifest) throws -> [Manifest.Chunk] {
        guard case .chunks(let chunks) = manifest.content else { return [] }
        return try StoreError.translating { try chunks.filter { try catalog.location(of: $0.digest) == nil } }
    }

    /// Writes the output `manifest` describes to `destination`, checking every chunk against its
    /// hash, taking chunks the store lacks from `supplied` (plain bytes by hash, fetched from
    /// elsewhere). With `checkOutputID`, the whole output is also checked against the manifest's
    /// output ID: for a manifest from elsewhere, which no put of this store has checked, and for
    /// `verify`. Throws a `damagedEntry` if anything does not check out, after which what was
    /// written is not the output (the caller writes to a temporary file and renames it only on
    /// success); `setAside(_:because:)` then deals with the damage.
    ///
    /// `threads` bounds the threads decoding at once (this one among them): 1 for background work
    /// that must not take cores from the go command.
    public func write(
        _ manifest: Manifest, to destination: some OutputDestination, supplied: [SHA256Digest: [UInt8]] = [:], checkOutputID: Bool = false,
        threads: Int = Parallel.threads
    ) throws {
        try StoreError.translating {
            var written: Int64 = 0
            switch manifest.content {
            case .inline:
                let plain = try inlineOutput(of: manifest)
                try plain.withUnsafeBytes { try destination.write($0) }
                written = Int64(plain.count)
            case .chunks(let chunks):
                var hasher = SHA256()
                // Chunks are decoded and checked into a window of about 1 MiB (several at once on
                // several cores); a full window is written while the next one is decoded, so a large
                // output never sits whole in memory. Two windows, no bigger than the output (most are
                // small), not zeroed: every byte is decoded into before it is read.
                let size = Int(min(manifest.size, Int64(max(1 << 20, configuration.chunker.maxSize))))
                var windows = [UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)]
                defer { windows.forEach { $0.deallocate() } }
                var pending: UnsafeRawBufferPointer?  // decoded, not yet written
                var first = 0
                while first < chunks.count {
                    var end = first
                    var filled = 0
                    while end < chunks.count, end == first || filled + Int(chunks[end].size) <= size {
                        filled += Int(chunks[end].size)
                        end += 1
                    }
                    // The window not holding `pending`, grown for a chunk larger than the window.
                    let slot = pending == nil || pending!.baseAddress != UnsafeRawPointer(windows[0].baseAddress) ? 0 : 1
                    if slot == windows.count { windows.append(.allocate(byteCount: size, alignment: 16)) }
                    if filled > windows[slot].count {
                        windows[slot].deallocate()
                        windows[slot] = .allocate(byteCount: filled, alignment: 16)
                    }
                    let part = UnsafeMutableRawBufferPointer(rebasing: windows[slot][..<filled])
                    try decode(chunks[first..<end], of: manifest, into: part, supplied: supplied, threads: threads, writingMeanwhile: pending, to: destination)
                    if checkOutputID { hasher.update(UnsafeRawBufferPointer(part)) }
                    pending = UnsafeRawBufferPointer(part)
                    written += Int64(filled)
                    first = end
                }
                if let pending { try destination.write(pending) }
                if checkOutputID, hasher.finalize() != manifest.outputID {
                    throw StoreError(.damagedEntry, "output of \(manifest.key.hex.prefix(16)) does not match its output ID")
                }
            }
            guard written == manifest.size else {
                throw StoreError(.damagedEntry, "output of \(manifest.key.hex.prefix(16)) has \(written) bytes, not \(manifest.size)")
            }
        }
    }

    /// Deals with damage `write` or `manifest(for:)` reported for `key`: the manifest is moved
    /// out of the way (its action becomes a miss and can be stored anew), and a damaged chunk is
    /// forgotten (so the next put of the same content stores it again).
    public func setAside(_ key: SHA256Digest, because damage: StoreError) {
        forgetDamagedChunk(damage)
        try? catalog.quarantine(key: key, reason: damage.description, time: WallClock.nanoseconds())
        counters.damaged.add()
    }

    /// Forgets the chunk whose damage `error` reports, if it names one (see `setAside`); for
    /// damage found while writing an entry from elsewhere, which has no manifest here to set aside.
    public func forgetDamagedChunk(_ error: StoreError) {
        guard let (digest, location) = error.damagedChunk else { return }
        try? catalog.forget(digest, at: location)
    }

    /// The plain bytes of an inline output, checked against its output ID (inline outputs have
    /// no chunk hashes; at most a few KiB, they are checked whole).
    func inlineOutput(of manifest: Manifest) throws -> [UInt8] {
        guard case .inline(let codec, let payload) = manifest.content else { return [] }
        var plain = [UInt8](repeating: 0, count: Int(manifest.size))
        do {
            _ = try payload.withUnsafeBytes { input in
                try plain.withUnsafeMutableBytes { try compressor.decompress(input, codec: codec, into: $0) }
            }
        } catch let error as CorruptData {
            throw StoreError(.damagedEntry, "inline output of \(manifest.key.hex.prefix(16)): \(error)")
        }
        guard SHA256.hash(plain) == manifest.outputID else {
            throw StoreError(.damagedEntry, "inline output of \(manifest.key.hex.prefix(16)) does not match its output ID")
        }
        return plain
    }

    /// Decodes consecutive `chunks` into `output` (exactly their total size), each checked
    /// against its hash; on several threads when there is enough work to share. Writes
    /// `previous` (an earlier window of the output) to `destination` meanwhile.
    private func decode(
        _ chunks: ArraySlice<Manifest.Chunk>, of manifest: Manifest, into output: UnsafeMutableRawBufferPointer, supplied: [SHA256Digest: [UInt8]],
        threads: Int, writingMeanwhile previous: UnsafeRawBufferPointer?, to destination: some OutputDestination
    ) throws {
        var starts: [Int] = []
        starts.reserveCapacity(chunks.count)
        var total = 0
        for chunk in chunks {
            starts.append(total)
            total += Int(chunk.size)
        }
        let offsets = starts
        let list = Array(chunks)
        let shared = DisjointWrites(buffer: output)
        // Looked up together (one query, not one per chunk); a chunk moved meanwhile is looked
        // up again by `decode`.
        let locations = try catalog.locations(of: list.lazy.filter { supplied[$0.digest] == nil }.map(\.digest))
        @Sendable func decodeOne(_ index: Int, record: inout [UInt8]) throws {
            let chunk = list[index]
            let target = UnsafeMutableRawBufferPointer(rebasing: shared.buffer[offsets[index]..<offsets[index] + Int(chunk.size)])
            if let bytes = supplied[chunk.digest], bytes.count == target.count {
                bytes.withUnsafeBytes { target.copyMemory(from: $0) }
                guard SHA256.hash(UnsafeRawBufferPointer(target)) == chunk.digest else {
                    throw StoreError(.damagedEntry, "supplied chunk \(chunk.digest.hex.prefix(16)) does not match its hash")
                }
            } else {
                try decode(chunk, of: manifest, into: target, record: &record, at: locations[chunk.digest])
            }
        }
        guard threads > 1, list.count > 1, total >= 64 << 10 else {
            if let previous { try destination.write(previous) }
            var record: [UInt8] = []
            for index in list.indices { try decodeOne(index, record: &record) }
            return
        }
        // One thread writes the earlier window, then joins the others.
        var writeEarlier: (@Sendable () throws -> Void)?
        if let previous {
            let window = DisjointWrites(buffer: UnsafeMutableRawBufferPointer(mutating: previous))
            writeEarlier = { try destination.write(UnsafeRawBufferPointer(window.buffer)) }
        }
        let makeRecord: @Sendable () -> [UInt8] = { [] }
        try Parallel.forEach(list.count, threads: threads, scratch: makeRecord, first: writeEarlier) { (index: Int, record: inout [UInt8]) in
            try decodeOne(index, record: &record)
        }
    }

    /// Decodes one chunk of `manifest` into `output` (exactly its size), checked (see
    /// `decodeRecord`). A chunk the catalog does not know, or whose record is damaged or gone, is
    /// a `damagedEntry` naming the chunk's record. A pack that vanished because gc moved the chunk
    /// meanwhile is looked up again.
    private func decode(_ chunk: Manifest.Chunk, of manifest: Manifest, into output: UnsafeMutableRawBufferPointer, record: inout [UInt8], at known: ChunkLocation? = nil) throws {
        func damaged(_ reason: String, at location: ChunkLocation? = nil) -> StoreError {
            StoreError(.damagedEntry, "chunk \(chunk.digest.hex.prefix(16)) of \(manifest.key.hex.prefix(16)): \(reason)", damagedChunk: location.map { (chunk.digest, $0) })
        }
        var previous: ChunkLocation?
        var next = known
        while true {
            let found = try next ?? catalog.location(of: chunk.digest)
            next = nil
            guard let location = found, location != previous else {
                throw damaged(previous == nil ? "not in the catalog" : "pack missing")
            }
            guard location.rawSize == chunk.size else { throw damaged("catalog size differs from manifest") }
            do {
                try decodeRecord(chunk.digest, at: location, into: output, record: &record)
                return
            } catch let error as CorruptData {
                throw damaged(error.description, at: location)
            } catch let error as SystemError where error.isNotFound {
                previous = location
            }
        }
    }

    /// Reads the record of chunk `digest` at `location` into `record` (grown as needed) and
    /// decodes its payload into `output` (exactly the chunk's size), checked; then calls `body`
    /// with the record's payload (for callers that also keep or compare it). The one path by which
    /// the store reads a chunk's bytes back: gets, `verify`, recompression and its dictionary all
    /// go through it. Throws `CorruptData` for a record or content that does not check out.
    @discardableResult
    func decodeRecord<R>(
        _ digest: SHA256Digest, at location: ChunkLocation, into output: UnsafeMutableRawBufferPointer, record: inout [UInt8],
        then body: (UnsafeRawBufferPointer) throws -> R = { _ in () }
    ) throws -> R {
        try packs.withPayload(digest, at: location, buffer: &record) { payload in
            try decodePayload(payload, codec: location.codec, of: digest, into: output)
            return try body(payload)
        }
    }

    /// Decodes a chunk's payload into `output` and checks it: against the zstd checksum stored in
    /// its frame when `trustingChecksum` and it has one, else against `digest`. The record a
    /// payload comes from names its hash (checked by `PackStore.withPayload`), so for the store's
    /// own records the 64-bit checksum catches damage as surely as the hash, at a tenth of the
    /// cost. A payload from outside (an archive) is checked against its hash always: a frame can
    /// be made to carry a valid checksum of other bytes.
    func decodePayload(_ payload: UnsafeRawBufferPointer, codec: Codec, of digest: SHA256Digest, into output: UnsafeMutableRawBufferPointer, trustingChecksum: Bool = true) throws {
        let checked = try compressor.decompress(payload, codec: codec, into: output)
        guard (checked && trustingChecksum) || SHA256.hash(UnsafeRawBufferPointer(output)) == digest else {
            throw CorruptData.hashMismatch
        }
    }
}
