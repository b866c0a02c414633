import Digests
import FileIO
import Synchronization

/// Where a stored chunk is: which pack, where in it, and how it is encoded.
public struct ChunkLocation: Hashable, Sendable {
    /// The pack's identifier (its file name is this in hex).
    public var pack: UInt64
    /// Offset of the chunk's record in the pack.
    public var offset: Int64
    /// Bytes of the encoded payload.
    public var storedSize: UInt32
    /// Bytes of the chunk itself.
    public var rawSize: UInt32
    /// How the payload is encoded.
    public var codec: Codec
}

/// Chunks appended to pack files, one pack at a time per process (and one more for maintenance).
///
///     packs/<id>.pack     records: "CCK1", codec, 3 zero bytes, raw size u32, stored size u32,
///                         SHA-256 of the raw chunk (32), then the payload
///     packs/<id>.pending  the pack holds chunks as puts stored them (at a fast level), not yet
///                         recompressed (see `ChunkStore.recompressPendingChunks`)
///
/// Packs avoid the 4 KiB of block slack that a small chunk in a file of its own wastes. A
/// process writes only packs it created (O_EXCL), so processes never interleave in a file. A
/// record is written before the catalog names it, so a crash leaves at worst unreferenced bytes
/// at the end of a pack. Records describe themselves (so a pack can be checked or re-indexed
/// alone), and readers check each one against what the manifest expects.
final class PackStore: Sendable {
    static let recordMagic: [UInt8] = Array("CCK1".utf8)
    static let recordHeaderSize = 48

    let directory: String
    /// A pack is closed for appending beyond this size.
    let packLimit: Int64

    private struct Writer {
        var pack: UInt64 = 0
        var data: FileDescriptor?
        var size: Int64 = 0
    }

    /// The pack puts append to (its chunks are pending recompression), and the one recompression
    /// appends to: kept apart so that put-level chunks and recompressed ones never share a pack.
    private struct Writers {
        var puts = Writer()
        var maintenance = Writer()
    }

    private let writers = Mutex(Writers())
    private let readers = Mutex<[UInt64: FileDescriptor]>([:])

    init(directory: String, packLimit: Int64 = 256 << 20, readOnly: Bool = false) throws {
        self.directory = directory
        self.packLimit = packLimit
        if !readOnly { try FileSystem.createDirectories(directory) }
    }

    deinit {
        writers.withLock { writers in
            writers.puts.data?.close()
            writers.maintenance.data?.close()
        }
        readers.withLock { $0.values.forEach { $0.close() } }
    }

    static func name(of pack: UInt64) -> String {
        let hex = String(pack, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    func path(of pack: UInt64) -> String {
        directory + "/" + Self.name(of: pack) + ".pack"
    }

    /// Records gathered to be written together: a put's new chunks reach the pack in one write.
    /// Payloads are encoded straight into the batch's buffer, which is neither zeroed nor copied
    /// per record. Used by one thread at a time.
    final class RecordBatch {
        private var storage: UnsafeMutableRawBufferPointer
        /// Bytes of records gathered.
        private(set) var count = 0
        private(set) var entries: [(digest: SHA256Digest, offset: Int, storedSize: UInt32, rawSize: UInt32, codec: Codec)] = []
        private var digests = Set<SHA256Digest>()

        init(capacity: Int = 64 << 10) {
            storage = .allocate(byteCount: max(capacity, 64), alignment: 16)
        }

        deinit { storage.deallocate() }

        var isEmpty: Bool { entries.isEmpty }

        /// The records, back to back, as they will be in the pack.
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[..<count]) }

        func contains(_ digest: SHA256Digest) -> Bool { digests.contains(digest) }

        /// Adds a record for the chunk `digest` of `rawSize` bytes; `encode` writes its payload
        /// (at most `maxPayload` bytes) into the buffer it is given and returns how it is encoded
        /// and its size.
        func add(_ digest: SHA256Digest, rawSize: Int, maxPayload: Int, encode: (UnsafeMutableRawBufferPointer) -> (Codec, Int)) {
            let start = count
            let needed = start + PackStore.recordHeaderSize + maxPayload
            if needed > storage.count {
                let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: max(needed, storage.count * 2), alignment: 16)
                grown.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: start)
                storage.deallocate()
                storage = grown
            }
            let payload = UnsafeMutableRawBufferPointer(rebasing: storage[(start + PackStore.recordHeaderSize)..<needed])
            let (codec, stored) = encode(payload)
            var header = BinaryWriter(capacity: PackStore.recordHeaderSize)
            header.append(PackStore.recordMagic)
            header.append(codec.rawValue)
            header.pad(3)
            header.append(UInt32(rawSize))
            header.append(UInt32(stored))
            header.append(digest)
            header.bytes.withUnsafeBytes { storage.baseAddress!.advanced(by: start).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            count = start + PackStore.recordHeaderSize + stored
            entries.append((digest, start, UInt32(stored), UInt32(rawSize), codec))
            digests.insert(digest)
        }

        /// Empties the batch, keeping its buffer.
        func removeAll() {
            count = 0
            entries.removeAll(keepingCapacity: true)
            digests.removeAll(keepingCapacity: true)
        }
    }

    /// Writes `batch` at the end of this process's pack (in one write) and returns where each
    /// record went. Puts write to a pack pending recompression; recompressed records go to the
    /// other pack (`pending` false).
    func write(_ batch: RecordBatch, pending: Bool = true) throws -> [(SHA256Digest, ChunkLocation)] {
        guard !batch.isEmpty else { return [] }
        return try writers.withLock { writers in
            pending ? try write(batch, to: &writers.puts, pending: true) : try write(batch, to: &writers.maintenance, pending: false)
        }
    }

    private func write(_ batch: RecordBatch, to state: inout Writer, pending: Bool) throws -> [(SHA256Digest, ChunkLocation)] {
        if state.data == nil || state.size >= packLimit { try startPack(&state, pending: pending) }
        let base = state.size
        try state.data!.writeAll(batch.bytes, at: base)
        state.size += Int64(batch.count)
        let pack = state.pack
        return batch.entries.map { entry in
            (entry.digest, ChunkLocation(pack: pack, offset: base + Int64(entry.offset), storedSize: entry.storedSize, rawSize: entry.rawSize, codec: entry.codec))
        }
    }

    /// Appends one chunk's encoded payload and returns where it went: to a pack pending
    /// recompression or not (see `write`).
    func append(_ digest: SHA256Digest, codec: Codec, rawSize: Int, payload: UnsafeRawBufferPointer, pending: Bool) throws -> ChunkLocation {
        let batch = RecordBatch(capacity: Self.recordHeaderSize + payload.count)
        batch.add(digest, rawSize: rawSize, maxPayload: payload.count) { out in
            if payload.count > 0 { out.baseAddress!.copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
            return (codec, payload.count)
        }
        return try write(batch, pending: pending)[0].1
    }

    private func startPack(_ state: inout Writer, pending: Bool) throws {
        state.data?.close()
        state.data = nil
        while true {
            // Below 2^63, so the ID fits SQLite's signed integers unchanged.
            let pack = UInt64.random(in: 1...UInt64(Int64.max))
            guard !FileSystem.exists(path(of: pack)) else { continue }  // a 1-in-2^63 clash: pick another
            // The marker first: a crash between the two leaves a marker without a pack (removed
            // by the next recompression), never put-level chunks nobody will recompress.
            if pending { try FileSystem.writeFileAtomically(pendingMarker(of: pack), [], permissions: 0o600) }
            do {
                let data = try FileDescriptor.open(path(of: pack), [.writeOnly, .create, .exclusive, .noFollow], permissions: 0o600)
                // Held while this process may append: gc and recompression leave a locked pack alone.
                _ = try data.lock(exclusive: false, wait: false)
                state = Writer(pack: pack, data: data, size: 0)
                return
            } catch let error as SystemError where error.isExists {
                continue
            }
        }
    }

    func pendingMarker(of pack: UInt64) -> String {
        directory + "/" + Self.name(of: pack) + ".pending"
    }

    /// Packs whose chunks are as puts stored them, not yet recompressed, oldest first.
    func pendingPacks() -> [UInt64] {
        var found: [(pack: UInt64, time: Int64)] = []
        for name in (try? FileSystem.contentsOfDirectory(directory)) ?? [] where name.hasSuffix(".pending") && name.count == 24 {
            guard let pack = UInt64(name.prefix(16), radix: 16) else { continue }
            found.append((pack, (try? FileSystem.status(of: directory + "/" + name, followLinks: false))?.modificationTime ?? 0))
        }
        return found.sorted { $0.time < $1.time }.map(\.pack)
    }

    func isPending(_ pack: UInt64) -> Bool { FileSystem.exists(pendingMarker(of: pack)) }

    /// Records that `pack` holds no chunk pending recompression any more.
    func markRecompressed(_ pack: UInt64) {
        try? FileSystem.remove(pendingMarker(of: pack))
    }

    /// Reads a chunk's record into `buffer` (grown as needed), checks that it is the one the
    /// manifest expects, and calls `body` with its payload.
    func withPayload<R>(_ digest: SHA256Digest, at location: ChunkLocation, buffer: inout [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let descriptor = try reader(for: location.pack)
        let total = Self.recordHeaderSize + Int(location.storedSize)
        if buffer.count < total { buffer = [UInt8](repeating: 0, count: total) }
        return try buffer.withUnsafeMutableBytes { raw in
            let record = UnsafeMutableRawBufferPointer(rebasing: raw[..<total])
            guard try descriptor.readFully(into: record, at: location.offset) == total else {
                throw CorruptData(description: "pack \(Self.name(of: location.pack)) is truncated at \(location.offset)")
            }
            var header = BinaryReader(UnsafeRawBufferPointer(record))
            let magic = try header.readBytes(4)
            let codec = try header.read(UInt8.self)
            try header.skip(3)
            let rawSize = try header.read(UInt32.self)
            let storedSize = try header.read(UInt32.self)
            let recorded = try header.readDigest()
            guard magic.elementsEqual(Self.recordMagic), codec == location.codec.rawValue, rawSize == location.rawSize,
                storedSize == location.storedSize, recorded == digest
            else { throw CorruptData(description: "pack \(Self.name(of: location.pack)) has no record for \(digest.hex.prefix(16)) at \(location.offset)") }
            return try body(UnsafeRawBufferPointer(rebasing: record[Self.recordHeaderSize...]))
        }
    }

    private func reader(for pack: UInt64) throws -> FileDescriptor {
        if let open = readers.withLock({ $0[pack] }) { return open }
        let descriptor = try FileDescriptor.open(path(of: pack), [.readOnly, .noFollow])
        return readers.withLock { readers in
            if let open = readers[pack] {
                descriptor.close()
                return open
            }
            readers[pack] = descriptor
            return descriptor
        }
    }

    /// The packs in the directory.
    func packIDs() -> [UInt64] {
        ((try? FileSystem.contentsOfDirectory(directory)) ?? []).compactMap { name in
            name.hasSuffix(".pack") && name.count == 21 ? UInt64(name.prefix(16), radix: 16) : nil
        }
    }

    /// Locks a pack for compaction; nil if a process may still append to it (or it is gone).
    func lockForCompaction(_ pack: UInt64) -> FileDescriptor? {
        guard let descriptor = try? FileDescriptor.open(path(of: pack), [.readOnly, .noFollow]) else { return nil }
        guard (try? descriptor.lock(exclusive: true, wait: false)) == true else {
            descriptor.close()
            return nil
        }
        return descriptor
    }

    /// Deletes a pack (its chunks must be referenced nowhere), and its pending marker.
    func remove(_ pack: UInt64) throws {
        if let open = readers.withLock({ $0.removeValue(forKey: pack) }) { open.close() }
        try FileSystem.remove(path(of: pack))
        markRecompressed(pack)
    }

    /// Closes the packs being appended to, so gc may compact them and recompression rewrite them.
    func finishAppending() {
        writers.withLock { writers in
            writers.puts.data?.close()
            writers.maintenance.data?.close()
            writers = Writers()
        }
    }
}
