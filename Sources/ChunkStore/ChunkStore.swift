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
///     STORE/tmp/                    bodies being received
///     STORE/live/, STORE/kept/      directories of the store's users (see `auxiliaryDirectory`)
///     STORE/stats                   counters accumulated across runs
///     STORE/gc.lock                 keeps gc and puts apart (see StoreLock)
///     STORE/recompress.lock         one process at a time recompresses (see recompressPendingChunks)
///
/// It is the storage engine only: it knows nothing of the GOCACHEPROG protocol, of the files
/// handed to the go command, or of other tiers; a get hands the output's bytes to a destination
/// the caller gives (`write(_:to:)`). Writes go chunks first, then the manifest and
/// the new chunks' locations in one catalog transaction, so a killed process leaves a valid
/// store. Reads check every chunk (its record's hash, its content against zstd's checksum or
/// its SHA-256; see `decode`) and the manifest its CRC, so damage anywhere is a miss, never a
/// wrong file. The output ID is the client's (the go command
/// computes it from the body, as Go's own cache does); it is checked whole only for manifests
/// from elsewhere (`write(_:to:supplied:checkOutputID:)`).
///
/// Calls block (disk reads and writes, SQLite waiting up to 60 s for another process's lock,
/// `StoreLock` waiting for gc, decoding on several threads): callers in async code run them on
/// `executor`, whose threads are the store's own, never on Swift's cooperative pool.
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
    /// Where received bodies and the auxiliary directories go: the store, or a private
    /// directory elsewhere when the store is read-only.
    public let scratchRoot: String
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
            guard FileSystem.exists(self.directory) else { throw StoreError(.notAStore, "no chunkcache store at \(self.directory): the directory does not exist") }
            guard FileSystem.exists(versionPath) else { throw StoreError(.notAStore, "\(self.directory) is not a chunkcache store (it has no VERSION file)") }
        case .createIfNeeded:
            if !FileSystem.exists(self.directory) {
                try FileSystem.createDirectories(self.directory, permissions: 0o700)
            } else if !FileSystem.exists(versionPath), let names = try? FileSystem.contentsOfDirectory(self.directory), !names.isEmpty {
                throw StoreError(.notAStore, "\(self.directory) holds other files and no chunkcache store; refusing to make a store there (name an empty or new directory)")
            }
        }
        try Self.checkOwnership(of: self.directory)
        // A store on a read-only filesystem (a CI cache mounted read-only, say) still serves hits.
        isReadOnly = access(self.directory, W_OK) != 0
        if let existing = try? FileSystem.readFile(versionPath) {
            guard existing == Array(Self.versionLine.utf8) else {
                throw StoreError(.unknownVersion, "\(self.directory) is not a chunkcache store of this version (VERSION says \(String(decoding: existing, as: UTF8.self).debugDescription))")
            }
        } else if isReadOnly {
            throw StoreError(.notAStore, "\(self.directory) is read-only and holds no store")
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
        try FileSystem.createDirectory(scratchRoot + "/tmp")
        packs = try PackStore(directory: self.directory + "/packs", readOnly: isReadOnly)
        let catalogPath = self.directory + "/catalog.db"
        let readOnly = isReadOnly
        catalog = try StoreError.translating { try Catalog(path: catalogPath, readOnly: readOnly) }
        lock = try StoreLock(path: (isReadOnly ? scratchRoot : self.directory) + "/gc.lock")
        compressor = Compressor(codec: configuration.codec, level: configuration.level) { [catalog] id in
            // A dictionary added after this store was opened (by another process) is found here.
            (try? catalog.dictionary(id: id))?.flatMap(CompressionDictionary.init(bytes:))
        }
        counters = StoreCounters(path: self.directory + "/stats", lockPath: self.directory + "/VERSION")
    }

    /// The store's own files and directories: none may be a symbolic link (which could lead
    /// writes outside the store).
    static let layout = ["VERSION", "catalog.db", "catalog.db-wal", "catalog.db-shm", "packs", "tmp", "stats", "gc.lock", "recompress.lock"] + auxiliaryNames

    /// Refuses a store that another user could change (or already owns), or that has symbolic
    /// links where its own files belong.
    static func checkOwnership(of directory: String) throws {
        let info = try FileSystem.status(of: directory)
        guard info.isDirectory else { throw StoreError(.unsafe, "\(directory) is not a directory") }
        guard info.owner == getuid() else {
            throw StoreError(.unsafe, "refusing store \(directory): owned by user \(info.owner), not by this user (\(getuid()))")
        }
        guard info.mode & 0o022 == 0 else {
            throw StoreError(.unsafe, "refusing store \(directory): writable by other users (mode \(String(info.mode & 0o777, radix: 8))); run chmod go-w on it")
        }
        for name in layout {
            if let entry = try FileSystem.statusIfExists(of: directory + "/" + name, followLinks: false), entry.isSymbolicLink {
                throw StoreError(.unsafe, "refusing store \(directory): \(name) is a symbolic link")
            }
        }
    }

    /// Directories the store holds for its users, by name: ChunkCache's serving layer keeps the
    /// files it hands out in `live/` and decompressed outputs in `kept/`. The store knows nothing
    /// of what is in them; it refuses them as symbolic links and leaves them out of `diskUsage`
    /// (their users budget them).
    public static let auxiliaryNames = ["live", "kept"]

    /// The auxiliary directory `name` (one of `auxiliaryNames`), created if needed: in the store,
    /// or beside its scratch files when the store is read-only.
    public func auxiliaryDirectory(_ name: String) throws -> String {
        let path = auxiliaryPath(name)
        try FileSystem.createDirectory(path)
        return path
    }

    /// Where the auxiliary directory `name` is (it may not exist).
    public func auxiliaryPath(_ name: String) -> String {
        precondition(Self.auxiliaryNames.contains(name), "not an auxiliary directory of the store: \(name)")
        return scratchRoot + "/" + name
    }

    /// Where bodies are received; on the store's filesystem, so they can be renamed into place.
    public var temporaryDirectory: String { scratchRoot + "/tmp" }
}
