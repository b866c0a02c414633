import Digests
import Dispatch
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A content-addressed store for build outputs: each output is split into content-defined chunks
/// (FastCDC), each chunk is compressed and stored once by its SHA-256 in pack files, and a
/// manifest per action lists the chunks (tiny outputs sit inside the manifest).
///
///     STORE/VERSION                 format marker
///     STORE/catalog.db              manifests and chunk locations (see Catalog)
///     STORE/packs/<id>.pack         chunk records (see PackStore)
///     STORE/live/<process>/         plain files handed out, when not in memory (see LiveFiles)
///     STORE/tmp/                    bodies being received
///     STORE/kept/                   decompressed outputs kept between runs, if so configured
///     STORE/stats                   counters accumulated across runs
///     STORE/gc.lock                 keeps gc and puts apart (see StoreLock)
///     STORE/recompress.lock         one process at a time recompresses (see recompressPendingChunks)
///
/// It knows nothing of the GOCACHEPROG protocol. Writes go chunks first, then the manifest and
/// the new chunks' locations in one catalog transaction, so a killed process leaves a valid
/// store. Reads check every chunk (its record's hash, its content against zstd's checksum or
/// its SHA-256; see `decode`) and the manifest its CRC, so damage anywhere is a miss, never a
/// wrong file. The output ID is the client's (the go command
/// computes it from the body, as Go's own cache does); it is checked whole only for manifests
/// from elsewhere (`materialize(_:at:supplied:checkOutputID:)`).
public final class ChunkStore: Sendable {
    /// How outputs are chunked and compressed.
    public struct Configuration: Sendable {
        /// The chunker; changing its sizes stops new chunks matching stored ones.
        public var chunker: FastCDC
        /// Codec and level for new chunks.
        public var codec: Codec
        public var level: Int32?
        /// Outputs up to this size are kept inside their manifest.
        public var inlineLimit: Int

        public init(chunker: FastCDC = FastCDC(averageSize: 16 << 10), codec: Codec = .zstd, level: Int32? = nil, inlineLimit: Int = 4096) {
            self.chunker = chunker
            self.codec = codec
            self.level = level
            self.inlineLimit = inlineLimit
        }
    }

    /// An output to store.
    public enum Body: Sendable {
        case bytes([UInt8])
        /// A file holding the output; it is only read.
        case file(path: String)
    }

    /// An entry that cannot be served: a damaged or missing chunk, or a manifest that does not
    /// parse or does not match its output ID.
    public struct DamagedEntry: Error, CustomStringConvertible {
        public let description: String
    }

    /// A directory that is not a store to open: missing (when only an existing store will do),
    /// or holding other files and no store (which chunkcache never turns into one).
    public struct NotAStore: Error, CustomStringConvertible {
        public let description: String
    }

    /// The store's filesystem has too little free space to store an output (see
    /// `reserve(onFilesystemOf:)`).
    public struct OutOfSpace: Error, CustomStringConvertible {
        public let description: String
    }

    /// True if `error` means the store's disk is full: this store's own check before a write,
    /// the system's ENOSPC, EDQUOT or EFBIG, or SQLite's "database or disk is full".
    public static func isOutOfSpace(_ error: any Error) -> Bool {
        switch error {
        case is OutOfSpace: true
        case let error as SystemError: error.isOutOfSpace
        case let error as SQLiteDatabase.Failure: error.isOutOfSpace
        default: false
        }
    }

    /// Whether opening may create a store.
    public enum Opening: Sendable {
        /// Create the store if the directory is missing or empty (serving, import).
        case createIfNeeded
        /// Open only a store that exists (stats, verify, export, trim, gc): a mistyped path must
        /// be an error, not a new empty store.
        case existingOnly
    }

    public let directory: String
    public let configuration: Configuration
    /// The store's filesystem is read-only: gets are served, puts are refused.
    public let isReadOnly: Bool
    /// Where live files and received bodies go: the store, or a private directory elsewhere
    /// when the store is read-only.
    let scratchRoot: String
    let packs: PackStore
    let catalog: Catalog
    let lock: StoreLock
    let compressor: Compressor
    public let counters: StoreCounters

    static let versionLine = "chunkcache store 1\n"

    /// Opens the store at `directory`, creating it (private to this user) if `opening` allows.
    /// A directory that holds other files and no store is refused either way, and left as it is.
    public init(directory: String, configuration: Configuration = Configuration(), opening: Opening = .createIfNeeded) throws {
        self.directory = FileSystem.absolutePath(directory)
        self.configuration = configuration
        let versionPath = self.directory + "/VERSION"
        switch opening {
        case .existingOnly:
            guard FileSystem.exists(self.directory) else { throw NotAStore(description: "no chunkcache store at \(self.directory): the directory does not exist") }
            guard FileSystem.exists(versionPath) else { throw NotAStore(description: "\(self.directory) is not a chunkcache store (it has no VERSION file)") }
        case .createIfNeeded:
            if !FileSystem.exists(self.directory) {
                try FileSystem.createDirectories(self.directory, permissions: 0o700)
            } else if !FileSystem.exists(versionPath), let names = try? FileSystem.contentsOfDirectory(self.directory), !names.isEmpty {
                throw NotAStore(description: "\(self.directory) holds other files and no chunkcache store; refusing to make a store there (name an empty or new directory)")
            }
        }
        try Self.checkOwnership(of: self.directory)
        // A store on a read-only filesystem (a CI cache mounted read-only, say) still serves hits.
        isReadOnly = access(self.directory, W_OK) != 0
        if let existing = try? FileSystem.readFile(versionPath) {
            guard existing == Array(Self.versionLine.utf8) else {
                throw DamagedEntry(description: "\(self.directory) is not a chunkcache store of this version (VERSION says \(String(decoding: existing, as: UTF8.self).debugDescription))")
            }
        } else if isReadOnly {
            throw DamagedEntry(description: "\(self.directory) is read-only and holds no store")
        } else {
            try FileSystem.writeFileAtomically(versionPath, Array(Self.versionLine.utf8), permissions: 0o644)
        }
        if isReadOnly {
            // Live files and received bodies go to a private directory of this user's instead.
            scratchRoot = "/tmp/chunkcache-readonly-\(getuid())"
            try FileSystem.createDirectories(scratchRoot, permissions: 0o700)
            try Self.checkOwnership(of: scratchRoot)
        } else {
            scratchRoot = self.directory
        }
        for sub in ["live", "tmp"] {
            try FileSystem.createDirectory(scratchRoot + "/" + sub)
        }
        packs = try PackStore(directory: self.directory + "/packs", readOnly: isReadOnly)
        catalog = try Catalog(path: self.directory + "/catalog.db", readOnly: isReadOnly)
        lock = try StoreLock(path: (isReadOnly ? scratchRoot : self.directory) + "/gc.lock")
        compressor = Compressor(codec: configuration.codec, level: configuration.level) { [catalog] id in
            // A dictionary added after this store was opened (by another process) is found here.
            (try? catalog.dictionary(id: id))?.flatMap(CompressionDictionary.init(bytes:))
        }
        counters = StoreCounters(path: self.directory + "/stats", lockPath: self.directory + "/VERSION")
    }

    /// The store's own files and directories: none may be a symbolic link (which could lead
    /// writes outside the store).
    static let layout = ["VERSION", "catalog.db", "catalog.db-wal", "catalog.db-shm", "packs", "live", "tmp", "kept", "stats", "gc.lock", "recompress.lock"]

    /// Refuses a store that another user could change (or already owns), or that has symbolic
    /// links where its own files belong.
    static func checkOwnership(of directory: String) throws {
        let info = try FileSystem.status(of: directory)
        guard info.isDirectory else { throw DamagedEntry(description: "\(directory) is not a directory") }
        guard info.owner == getuid() else {
            throw DamagedEntry(description: "refusing store \(directory): owned by user \(info.owner), not by this user (\(getuid()))")
        }
        guard info.mode & 0o022 == 0 else {
            throw DamagedEntry(description: "refusing store \(directory): writable by other users (mode \(String(info.mode & 0o777, radix: 8))); run chmod go-w on it")
        }
        for name in layout {
            if let entry = try FileSystem.statusIfExists(of: directory + "/" + name, followLinks: false), entry.isSymbolicLink {
                throw DamagedEntry(description: "refusing store \(directory): \(name) is a symbolic link")
            }
        }
    }

    /// Where decompressed outputs are kept between runs (see `KeptOutputs`).
    public var keptRoot: String { directory + "/kept" }

    /// Where live files go (see `LiveArea`).
    public var liveRoot: String { scratchRoot + "/live" }
    /// Where bodies are received; on the store's filesystem, so they can be renamed into place.
    public var temporaryDirectory: String { scratchRoot + "/tmp" }

    // MARK: Storing

    /// Stores `body` as the output of `key`, replacing what was there. Returns its manifest.
    /// Throws `OutOfSpace` if the store's filesystem lacks the output's size beyond its reserve.
    @discardableResult
    public func store(key: SHA256Digest, outputID: SHA256Digest, time: Int64, body: Body) throws -> Manifest {
        guard !isReadOnly else { throw DamagedEntry(description: "the store at \(directory) is read-only") }
        return try lock.withShared { try storeLocked(key: key, outputID: outputID, time: time, body: body) }
    }

    /// Free space the store leaves on its filesystem: 5 % of it, between 1 MiB and 256 MiB. The
    /// build itself needs room (the go command writes its binaries and its own files), so the
    /// store stops growing before the disk is full rather than when it is.
    public static func reserve(onFilesystemOf total: Int64) -> Int64 {
        min(256 << 20, max(1 << 20, total / 20))
    }

    /// Throws `OutOfSpace` unless the store's filesystem has `bytes` free beyond the reserve.
    /// (Compressed, an output takes at most about its size.)
    func ensureSpace(for bytes: Int64) throws {
        guard let space = try? FileSystem.space(at: directory) else { return }
        let reserve = Self.reserve(onFilesystemOf: space.total)
        guard space.available - bytes >= reserve else {
            throw OutOfSpace(description: "the disk holding \(directory) has \(space.available) bytes free, and the store leaves \(reserve) free")
        }
    }

    private func storeLocked(key: SHA256Digest, outputID: SHA256Digest, time: Int64, body: Body) throws -> Manifest {
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
                guard bytes.count == size else { throw DamagedEntry(description: "\(path) changed while being stored") }
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
            guard total == size else { throw DamagedEntry(description: "output changed while being stored") }
        }
        try newChunks.flush(to: packs)
        try catalog.commit(key: key, manifest: manifest.encoded(), time: time, newChunks: newChunks.written)
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
            if newChunks.batch.count >= NewChunks.flushSize { try newChunks.flush(to: packs) }
        }
        return zip(chunks, digests).map { Manifest.Chunk(digest: $1, size: UInt32($0.count)) }
    }

    // MARK: Reading

    /// The manifest stored for `key`, or nil. Throws `DamagedEntry` for one that does not parse
    /// or belongs to another key.
    public func manifest(for key: SHA256Digest) throws -> Manifest? {
        guard let bytes = try catalog.manifest(for: key) else { return nil }
        do {
            let manifest = try Manifest(decoding: bytes)
            guard manifest.key == key else { throw CorruptData(description: "manifest is for another action") }
            return manifest
        } catch let error as CorruptData {
            throw DamagedEntry(description: "manifest \(key.hex.prefix(16)): \(error)")
        }
    }

    /// Chunks of `manifest` this store does not have (so `materialize` needs them `supplied`).
    public func missingChunks(of manifest: Manifest) throws -> [Manifest.Chunk] {
        guard case .chunks(let chunks) = manifest.content else { return [] }
        return try chunks.filter { try catalog.location(of: $0.digest) == nil }
    }

    /// Writes the output `manifest` describes to `path` (atomically: a temporary file, then a
    /// rename), checking every chunk against its hash. Throws `DamagedEntry` if anything does not
    /// check out; damaged chunks are forgotten so the next put stores them again.
    public func materialize(_ manifest: Manifest, at path: String) throws {
        try materialize(manifest, at: path, supplied: [:])
    }

    /// Like `materialize(_:at:)`, taking chunks the store lacks from `supplied` (plain bytes by
    /// hash, fetched from elsewhere). With `checkOutputID`, the whole output is also checked
    /// against the manifest's output ID: for a manifest from elsewhere, which no put of this
    /// store has checked.
    public func materialize(_ manifest: Manifest, at path: String, supplied: [SHA256Digest: [UInt8]], checkOutputID: Bool = false) throws {
        let temporary = FileSystem.temporaryName(beside: path)
        let descriptor = try FileDescriptor.open(temporary, [.writeOnly, .create, .exclusive, .noFollow], permissions: 0o644)
        var renamed = false
        defer {
            descriptor.close()
            if !renamed { try? FileSystem.remove(temporary) }
        }
        var hasher = SHA256()
        var written: Int64 = 0
        switch manifest.content {
        case .inline(let codec, let payload):
            var plain = [UInt8](repeating: 0, count: Int(manifest.size))
            do {
                _ = try payload.withUnsafeBytes { input in
                    try plain.withUnsafeMutableBytes { try compressor.decompress(input, codec: codec, into: $0) }
                }
            } catch let error as CorruptData {
                throw DamagedEntry(description: "inline output of \(manifest.key.hex.prefix(16)): \(error)")
            }
            // Inline outputs have no chunk hashes; at most 4 KiB, they are checked whole.
            guard SHA256.hash(plain) == manifest.outputID else {
                throw DamagedEntry(description: "inline output of \(manifest.key.hex.prefix(16)) does not match its output ID")
            }
            try descriptor.writeAll(plain)
            written = Int64(plain.count)
        case .chunks(let chunks):
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
                try decode(chunks[first..<end], of: manifest, into: part, supplied: supplied, writingMeanwhile: pending, to: descriptor)
                if checkOutputID { hasher.update(UnsafeRawBufferPointer(part)) }
                pending = UnsafeRawBufferPointer(part)
                written += Int64(filled)
                first = end
            }
            if let pending { try descriptor.writeAll(pending) }
            if checkOutputID, hasher.finalize() != manifest.outputID {
                throw DamagedEntry(description: "output of \(manifest.key.hex.prefix(16)) does not match its output ID")
            }
        }
        guard written == manifest.size else {
            throw DamagedEntry(description: "output of \(manifest.key.hex.prefix(16)) has \(written) bytes, not \(manifest.size)")
        }
        try FileSystem.rename(temporary, to: path)
        renamed = true
    }

    /// Threads that decode the chunks of one output at once.
    static let decodingThreads = max(1, min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN))))

    /// Decodes consecutive `chunks` into `output` (exactly their total size), each checked
    /// against its hash; on several threads when there is enough work to share. Writes
    /// `previous` (an earlier window of the output) to `descriptor` meanwhile.
    private func decode(
        _ chunks: ArraySlice<Manifest.Chunk>, of manifest: Manifest, into output: UnsafeMutableRawBufferPointer, supplied: [SHA256Digest: [UInt8]],
        writingMeanwhile previous: UnsafeRawBufferPointer?, to descriptor: FileDescriptor
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
                    throw DamagedEntry(description: "supplied chunk \(chunk.digest.hex.prefix(16)) does not match its hash")
                }
            } else {
                try decode(chunk, of: manifest, into: target, record: &record, at: locations[chunk.digest])
            }
        }
        let threads = min(Self.decodingThreads, list.count)
        guard threads > 1, total >= 64 << 10 else {
            if let previous { try descriptor.writeAll(previous) }
            var record: [UInt8] = []
            for index in list.indices { try decodeOne(index, record: &record) }
            return
        }
        let failure = Mutex<(any Error)?>(nil)
        let write = previous.map { DisjointWrites(buffer: UnsafeMutableRawBufferPointer(mutating: $0)) }
        let next = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            // The first thread writes the earlier window, then joins the others; chunks go to
            // whichever thread is free.
            if thread == 0, let write {
                do { try descriptor.writeAll(UnsafeRawBufferPointer(write.buffer)) } catch { failure.withLock { if $0 == nil { $0 = error } } }
            }
            var record: [UInt8] = []
            while true {
                let index = Int(next.add()) - 1
                guard index < list.count else { return }
                do {
                    try decodeOne(index, record: &record)
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// Decodes one chunk into `output` (exactly its size) and checks it: its record names its
    /// hash (checked by `PackStore.withPayload`), and its content is checked against the zstd
    /// checksum stored in its frame, or, for chunks without one (raw, zlib, older zstd records),
    /// against its SHA-256. The checksum is for damage, which it catches as surely as the hash
    /// (a 64-bit check of bytes the record already ties to the hash), at a tenth of the cost. A chunk
    /// the catalog does not know, or whose record is damaged or gone, is a `DamagedEntry`; a
    /// damaged one is forgotten, so the next put of the same content stores it again. A pack that
    /// vanished because gc moved the chunk meanwhile is looked up again.
    func decode(_ chunk: Manifest.Chunk, of manifest: Manifest, into output: UnsafeMutableRawBufferPointer, record: inout [UInt8], at known: ChunkLocation? = nil) throws {
        func damaged(_ reason: String) -> DamagedEntry {
            DamagedEntry(description: "chunk \(chunk.digest.hex.prefix(16)) of \(manifest.key.hex.prefix(16)): \(reason)")
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
                let checked = try packs.withPayload(chunk.digest, at: location, buffer: &record) { payload in
                    try compressor.decompress(payload, codec: location.codec, into: output)
                }
                guard checked || SHA256.hash(UnsafeRawBufferPointer(output)) == chunk.digest else {
                    throw CorruptData(description: "does not match its hash")
                }
                return
            } catch let error as CorruptData {
                try? catalog.forget(chunk.digest, at: location)
                throw damaged(error.description)
            } catch let error as SystemError where error.isNotFound {
                previous = location
            }
        }
    }

    /// Moves a damaged manifest out of the way, so its action is a miss and can be stored anew.
    public func quarantine(key: SHA256Digest, reason: String) {
        try? catalog.quarantine(key: key, reason: reason, time: WallClock.nanoseconds())
        counters.damaged.add()
    }
}

/// A buffer that several threads use at once, each on ranges no other thread touches (one chunk
/// each; or a whole earlier window, only read), and that no one else uses until all are done
/// (`concurrentPerform` returns only then): so sharing the pointer is safe, though the compiler
/// cannot see it.
private struct DisjointWrites: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
}

/// The chunks one put adds: records gathered into a batch, written to the pack about every
/// MiB (so a put makes few writes), and where the written ones went.
private struct NewChunks {
    static let flushSize = 1 << 20
    let batch = PackStore.RecordBatch()
    private(set) var written: [(SHA256Digest, ChunkLocation)] = []
    private var writtenDigests = Set<SHA256Digest>()

    func contains(_ digest: SHA256Digest) -> Bool {
        batch.contains(digest) || writtenDigests.contains(digest)
    }

    mutating func flush(to packs: PackStore) throws {
        for (digest, location) in try packs.write(batch) {
            written.append((digest, location))
            writtenDigests.insert(digest)
        }
        batch.removeAll()
    }
}
