import Digests
import FileIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The store's catalog: a manifest per action and the location of every chunk, in one SQLite
/// database (WAL mode) shared by every process using the store.
///
/// A database rather than a file per manifest: most outputs are tiny, and a file each would cost
/// a 4 KiB disk block per action, more than the outputs themselves. SQLite gives atomic commits
/// (a manifest appears with the chunks it names, never before them), safe concurrent use by
/// several processes, and lookups without loading an index into memory.
final class Catalog: Sendable {
    /// The connection that writes (and does maintenance's reads).
    private let database: Mutex<SQLiteDatabase>
    /// A second connection for the look-ups a get makes: so that a get never queues behind this
    /// process's own commits (a put's commit may wait up to the busy timeout for another
    /// process's), and gets and puts proceed side by side.
    private let reader: Mutex<SQLiteDatabase>
    /// Version 2 added the dictionaries table; a version-1 catalog is upgraded when opened for
    /// writing (and read as it is otherwise). Older chunkcaches refuse version 2 rather than
    /// meet chunks they cannot decode.
    static let schemaVersion: Int64 = 2
    static let readableVersions: ClosedRange<Int64> = 1...2
    /// False only for a version-1 catalog opened read-only.
    private let hasDictionaries: Bool
    private static let dictionariesTable = """
        CREATE TABLE IF NOT EXISTS dictionaries (
            id INTEGER PRIMARY KEY, content BLOB NOT NULL, added INTEGER NOT NULL);
        """

    init(path: String, readOnly: Bool = false) throws {
        let database = try SQLiteDatabase(path: path, readOnly: readOnly)
        if readOnly {
            var version: Int64 = 0
            try database.query("PRAGMA user_version") { version = $0.integer(0) }
            guard Self.readableVersions.contains(version) else {
                throw SQLiteDatabase.Failure(description: "\(path) has catalog version \(version); this chunkcache reads \(Self.readableVersions)")
            }
            hasDictionaries = version >= 2
            self.database = Mutex(database)
            reader = Mutex(try SQLiteDatabase(path: path, readOnly: true))
            return
        }
        // Switching to WAL needs the database to itself, and SQLite does not wait for that on
        // the busy timeout: when several processes start at once, retry for a while. Once the
        // file is in WAL mode (it stays so), this is a read.
        var mode = ""
        for attempt in 0..<200 {
            do {
                try database.query("PRAGMA journal_mode") { mode = String(decoding: $0.blob(0), as: UTF8.self) }
                if mode.lowercased() != "wal" { try database.execute("PRAGMA journal_mode=WAL") }
                break
            } catch let error as SQLiteDatabase.Failure where attempt < 199 && error.isBusy {
                usleep(50_000)
            }
        }
        // Committed data survives a killed process; only a power loss may take the last commits.
        try database.execute("PRAGMA synchronous=NORMAL")
        var version: Int64 = 0
        try database.query("PRAGMA user_version") { version = $0.integer(0) }
        if version == 0 {
            try database.transaction {
                try database.execute("""
                    CREATE TABLE IF NOT EXISTS manifests (
                        key BLOB PRIMARY KEY, manifest BLOB NOT NULL, last_used INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE TABLE IF NOT EXISTS chunks (
                        digest BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
                        stored INTEGER NOT NULL, raw INTEGER NOT NULL, codec INTEGER NOT NULL) WITHOUT ROWID;
                    CREATE INDEX IF NOT EXISTS manifests_by_last_use ON manifests (last_used);
                    CREATE TABLE IF NOT EXISTS quarantine (
                        key BLOB NOT NULL, manifest BLOB NOT NULL, reason TEXT NOT NULL, time INTEGER NOT NULL);
                    \(Self.dictionariesTable)
                    PRAGMA user_version = \(Self.schemaVersion);
                    """)
            }
        } else if version == 1 {
            try database.transaction {
                try database.execute(Self.dictionariesTable + "PRAGMA user_version = \(Self.schemaVersion);")
            }
        } else if version != Self.schemaVersion {
            throw SQLiteDatabase.Failure(description: "\(path) has catalog version \(version); this chunkcache reads \(Self.readableVersions)")
        }
        hasDictionaries = true
        self.database = Mutex(database)
        reader = Mutex(try SQLiteDatabase(path: path, readsOnly: true))
    }

    deinit {
        // The last connection to close checkpoints the WAL into the database and removes it; a
        // read-only one cannot, so it must not be the last: left open, several MiB of WAL stay.
        reader.withLock { $0.close() }
    }


    // MARK: Dictionaries

    /// The dictionary with zstd ID `id`, if the store has it.
    func dictionary(id: UInt32) throws -> [UInt8]? {
        guard hasDictionaries else { return nil }
        return try reader.withLock { database in
            var found: [UInt8]?
            try database.query("SELECT content FROM dictionaries WHERE id = ?", [.integer(Int64(id))]) { found = $0.blob(0) }
            return found
        }
    }

    /// Every dictionary, the first added first (the one new chunks use).
    func dictionaries() throws -> [[UInt8]] {
        guard hasDictionaries else { return [] }
        return try database.withLock { database in
            var all: [[UInt8]] = []
            try database.query("SELECT content FROM dictionaries ORDER BY added, id") { all.append($0.blob(0)) }
            return all
        }
    }

    /// Adds a dictionary unless one with its ID is there.
    func addDictionary(id: UInt32, content: [UInt8], time: Int64) throws {
        try database.withLock { database in
            try database.query("INSERT OR IGNORE INTO dictionaries (id, content, added) VALUES (?, ?, ?)", [.integer(Int64(id)), .blob(content), .integer(time)])
        }
    }

    /// The encoded manifest stored for `key`.
    func manifest(for key: SHA256Digest) throws -> [UInt8]? {
        try reader.withLock { database in
            var found: [UInt8]?
            try database.query("SELECT manifest FROM manifests WHERE key = ?", [.blob(key.bytes)]) { found = $0.blob(0) }
            return found
        }
    }

    /// The key and encoded manifest of the one action whose key starts with the 8 bytes of
    /// `prefix` (big-endian); nil if there is none, or more than one.
    func manifest(forKeyPrefix prefix: UInt64) throws -> (key: [UInt8], manifest: [UInt8])? {
        let low = withUnsafeBytes(of: prefix.bigEndian) { Array($0) }
        return try reader.withLock { database in
            var found: [(key: [UInt8], manifest: [UInt8])] = []
            // Blobs compare as bytes: every key with this prefix sorts at or after the prefix alone.
            try database.query("SELECT key, manifest FROM manifests WHERE key >= ? ORDER BY key LIMIT 2", [.blob(low)]) { row in
                let key = row.blob(0)
                if key.starts(with: low) { found.append((key, row.blob(1))) }
            }
            return found.count == 1 ? found[0] : nil
        }
    }

    /// Where the chunk with this hash is stored, if it is.
    func location(of digest: SHA256Digest) throws -> ChunkLocation? {
        try reader.withLock { database in
            var found: ChunkLocation?
            try database.query("SELECT pack, offset, stored, raw, codec FROM chunks WHERE digest = ?", [.blob(digest.bytes)]) { row in
                found = Self.location(row, from: 0)
            }
            return found
        }
    }

    /// Where those of `digests` that the catalog has are, asked in few queries (one per 256).
    func locations(of digests: some Collection<SHA256Digest>) throws -> [SHA256Digest: ChunkLocation] {
        guard !digests.isEmpty else { return [:] }
        let all = Array(digests)
        return try reader.withLock { database in
            var found: [SHA256Digest: ChunkLocation] = [:]
            var start = 0
            while start < all.count {
                let group = all[start..<min(start + 256, all.count)]
                let marks = Array(repeating: "?", count: group.count).joined(separator: ",")
                try database.query("SELECT digest, pack, offset, stored, raw, codec FROM chunks WHERE digest IN (\(marks))", group.map { .blob($0.bytes) }) { row in
                    if let digest = SHA256Digest(bytes: row.blob(0)), let location = Self.location(row, from: 1) { found[digest] = location }
                }
                start += group.count
            }
            return found
        }
    }

    private static func location(_ row: SQLiteDatabase.Row, from column: Int32) -> ChunkLocation? {
        guard let codec = Codec(rawValue: UInt8(truncatingIfNeeded: row.integer(column + 4))) else { return nil }
        return ChunkLocation(
            pack: UInt64(bitPattern: row.integer(column)), offset: row.integer(column + 1),
            storedSize: UInt32(truncatingIfNeeded: row.integer(column + 2)), rawSize: UInt32(truncatingIfNeeded: row.integer(column + 3)), codec: codec)
    }

    /// Calls `body` with every chunk's location, a page at a time in hash order: the table is
    /// never held whole (a store a hundred builds deep has hundreds of thousands of chunks), and
    /// the connection is free while `body` runs, so `body` may use the catalog.
    func forEachChunk(_ body: (SHA256Digest, ChunkLocation) throws -> Void) throws {
        try paged("SELECT digest, pack, offset, stored, raw, codec FROM chunks WHERE digest > ? ORDER BY digest LIMIT ?") { row -> (SHA256Digest, ChunkLocation)? in
            guard let digest = SHA256Digest(bytes: row.blob(0)), let location = Self.location(row, from: 1) else { return nil }
            return (digest, location)
        } each: { try body($0.0, $0.1) }
    }

    /// How many chunks the catalog has, and their stored bytes.
    func chunkTotals() throws -> (count: Int, storedBytes: Int64) {
        try database.withLock { database in
            var totals = (count: 0, storedBytes: Int64(0))
            try database.query("SELECT count(*), coalesce(sum(stored), 0) FROM chunks") { totals = (Int($0.integer(0)), $0.integer(1)) }
            return totals
        }
    }

    /// Runs `sql` (a query whose first column is the table's key, with parameters for the last
    /// key seen and the page size) a page at a time, on the maintenance connection; `decode`
    /// turns a row into an item (nil to skip it), and `each` is called with every item of a page
    /// once the page is read and the connection released.
    private func paged<Item: Sendable>(
        _ sql: String, pageSize: Int = 1024, decode: @Sendable (SQLiteDatabase.Row) -> Item?, each: (Item) throws -> Void
    ) throws {
        var after: [UInt8] = []  // every key sorts after the empty blob
        while true {
            let from = after
            let (page, rows, last) = try database.withLock { database -> ([Item], Int, [UInt8]) in
                var page: [Item] = []
                var rows = 0
                var last = from
                try database.query(sql, [.blob(from), .integer(Int64(pageSize))]) { row in
                    rows += 1
                    last = row.blob(0)
                    if let item = decode(row) { page.append(item) }
                }
                return (page, rows, last)
            }
            for item in page { try each(item) }
            if rows < pageSize { return }
            after = last
        }
    }

    /// The chunks whose records are in `pack`.
    func chunks(in pack: UInt64) throws -> [(SHA256Digest, ChunkLocation)] {
        try database.withLock { database in
            var found: [(SHA256Digest, ChunkLocation)] = []
            try database.query("SELECT digest, pack, offset, stored, raw, codec FROM chunks WHERE pack = ?", [.integer(Int64(bitPattern: pack))]) { row in
                guard let digest = SHA256Digest(bytes: row.blob(0)), let location = Self.location(row, from: 1) else { return }
                found.append((digest, location))
            }
            return found
        }
    }

    /// Records a put: its new chunks (already written to packs) and its manifest, atomically.
    func commit(key: SHA256Digest, manifest: [UInt8], time: Int64, newChunks: [(SHA256Digest, ChunkLocation)]) throws {
        try commit([Commit(key: key, manifest: manifest, time: time, newChunks: newChunks)])
    }

    /// One action's manifest with the new chunks it names.
    struct Commit {
        var key: SHA256Digest
        var manifest: [UInt8]
        var time: Int64
        var newChunks: [(SHA256Digest, ChunkLocation)]
    }

    /// Records several actions in one transaction (an import's, a few hundred at a time: a
    /// transaction per output made importing a large archive take a minute).
    func commit(_ commits: [Commit]) throws {
        guard !commits.isEmpty else { return }
        try database.withLock { database in
            try database.transaction {
                for commit in commits {
                    try Self.insert(commit.newChunks, into: database)
                    try database.query(
                        "INSERT OR REPLACE INTO manifests (key, manifest, last_used) VALUES (?, ?, ?)",
                        [.blob(commit.key.bytes), .blob(commit.manifest), .integer(commit.time)])
                }
            }
        }
    }

    /// Records chunks already written to packs that no manifest names yet (a large put's, as it goes).
    func record(_ chunks: [(SHA256Digest, ChunkLocation)]) throws {
        guard !chunks.isEmpty else { return }
        try database.withLock { database in try database.transaction { try Self.insert(chunks, into: database) } }
    }

    private static func insert(_ chunks: [(SHA256Digest, ChunkLocation)], into database: SQLiteDatabase) throws {
        for (digest, location) in chunks {
            try database.query(
                "INSERT OR IGNORE INTO chunks (digest, pack, offset, stored, raw, codec) VALUES (?, ?, ?, ?, ?, ?)",
                [.blob(digest.bytes), .integer(Int64(bitPattern: location.pack)), .integer(location.offset),
                 .integer(Int64(location.storedSize)), .integer(Int64(location.rawSize)), .integer(Int64(location.codec.rawValue))])
        }
    }

    /// Moves a damaged manifest to the quarantine table, so its action becomes a miss.
    func quarantine(key: SHA256Digest, reason: String, time: Int64) throws {
        try database.withLock { database in
            try database.transaction {
                try database.query(
                    "INSERT INTO quarantine (key, manifest, reason, time) SELECT key, manifest, ?, ? FROM manifests WHERE key = ?",
                    [.text(reason), .integer(time), .blob(key.bytes)])
                try database.query("DELETE FROM manifests WHERE key = ?", [.blob(key.bytes)])
            }
        }
    }

    /// Forgets a chunk found damaged at `location`, so the next put of it stores it again.
    func forget(_ digest: SHA256Digest, at location: ChunkLocation) throws {
        try database.withLock { database in
            try database.query(
                "DELETE FROM chunks WHERE digest = ? AND pack = ? AND offset = ?",
                [.blob(digest.bytes), .integer(Int64(bitPattern: location.pack)), .integer(location.offset)])
        }
    }

    /// Calls `body` with every action's key, encoded manifest and last use, a page at a time in
    /// key order (see `forEachChunk`).
    func forEachManifest(_ body: (_ key: [UInt8], _ manifest: [UInt8], _ lastUsed: Int64) throws -> Void) throws {
        try paged("SELECT key, manifest, last_used FROM manifests WHERE key > ? ORDER BY key LIMIT ?") { row -> ([UInt8], [UInt8], Int64)? in
            (row.blob(0), row.blob(1), row.integer(2))
        } each: { try body($0.0, $0.1, $0.2) }
    }

    /// How many actions have a manifest.
    func manifestCount() throws -> Int {
        try database.withLock { database in
            var count: Int64 = 0
            try database.query("SELECT count(*) FROM manifests") { count = $0.integer(0) }
            return Int(count)
        }
    }

    // MARK: Lifecycle

    /// Marks `keys` as used at `time` (one transaction for a whole run's hits).
    func touch(_ keys: [SHA256Digest], time: Int64) throws {
        guard !keys.isEmpty else { return }
        try database.withLock { database in
            try database.transaction {
                for key in keys {
                    try database.query("UPDATE manifests SET last_used = ? WHERE key = ? AND last_used < ?", [.integer(time), .blob(key.bytes), .integer(time)])
                }
            }
        }
    }

    /// Deletes manifests unused since `cutoff`; returns how many.
    func deleteManifests(unusedSince cutoff: Int64) throws -> Int {
        try database.withLock { database in
            var count: Int64 = 0
            try database.query("SELECT count(*) FROM manifests WHERE last_used < ?", [.integer(cutoff)]) { count = $0.integer(0) }
            if count > 0 { try database.query("DELETE FROM manifests WHERE last_used < ?", [.integer(cutoff)]) }
            return Int(count)
        }
    }

    /// Every action with when it was last used, least recently used first.
    func actionsByLastUse() throws -> [(key: SHA256Digest, lastUsed: Int64)] {
        try database.withLock { database in
            var all: [(key: SHA256Digest, lastUsed: Int64)] = []
            try database.query("SELECT key, last_used FROM manifests ORDER BY last_used, key") { row in
                if let key = SHA256Digest(bytes: row.blob(0)) { all.append((key, row.integer(1))) }
            }
            return all
        }
    }

    /// Deletes the manifests of `keys`.
    func deleteManifests(_ keys: [SHA256Digest]) throws {
        try database.withLock { database in
            try database.transaction {
                for key in keys { try database.query("DELETE FROM manifests WHERE key = ?", [.blob(key.bytes)]) }
            }
        }
    }

    /// Deletes the locations of `digests`.
    func deleteChunks(_ digests: [SHA256Digest]) throws {
        try database.withLock { database in
            try database.transaction {
                for digest in digests { try database.query("DELETE FROM chunks WHERE digest = ?", [.blob(digest.bytes)]) }
            }
        }
    }

    /// Forgets every chunk whose record is in `pack` (about to be deleted).
    func deleteChunks(in pack: UInt64) throws {
        try database.withLock { database in
            try database.query("DELETE FROM chunks WHERE pack = ?", [.integer(Int64(bitPattern: pack))])
        }
    }

    /// Points chunks at their new places (after a pack was compacted), all at once.
    func relocate(_ moves: [(SHA256Digest, ChunkLocation)]) throws {
        try database.withLock { database in
            try database.transaction {
                for (digest, location) in moves {
                    try database.query(
                        "UPDATE chunks SET pack = ?, offset = ?, stored = ?, raw = ?, codec = ? WHERE digest = ?",
                        [.integer(Int64(bitPattern: location.pack)), .integer(location.offset), .integer(Int64(location.storedSize)),
                         .integer(Int64(location.rawSize)), .integer(Int64(location.codec.rawValue)), .blob(digest.bytes)])
                }
            }
        }
    }

    /// Returns the catalog's file space to the filesystem, if much of it is free.
    func vacuumIfWorthIt() throws {
        try database.withLock { database in
            var pages: Int64 = 0
            var free: Int64 = 0
            try database.query("PRAGMA page_count") { pages = $0.integer(0) }
            try database.query("PRAGMA freelist_count") { free = $0.integer(0) }
            if free > 256 && free * 4 > pages { try database.execute("VACUUM") }
            try database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }
}
