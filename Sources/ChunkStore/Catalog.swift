import Digests
import FileIO
import Synchronization

/// The store's catalog: a manifest per action and the location of every chunk, in one SQLite
/// database (WAL mode) shared by every process using the store.
///
/// A database rather than a file per manifest: most outputs are tiny, and a file each would cost
/// a 4 KiB disk block per action, more than the outputs themselves. SQLite gives atomic commits
/// (a put's new chunks and its manifest appear together or not at all), safe concurrent use by
/// several processes, and lookups without loading an index into memory.
final class Catalog: Sendable {
    private let database: Mutex<SQLiteDatabase>
    static let schemaVersion: Int64 = 1

    init(path: String) throws {
        let database = try SQLiteDatabase(path: path)
        try database.execute("PRAGMA journal_mode=WAL")
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
                    CREATE TABLE IF NOT EXISTS quarantine (
                        key BLOB NOT NULL, manifest BLOB NOT NULL, reason TEXT NOT NULL, time INTEGER NOT NULL);
                    PRAGMA user_version = \(Self.schemaVersion);
                    """)
            }
        } else if version != Self.schemaVersion {
            throw SQLiteDatabase.Failure(description: "\(path) has catalog version \(version); this chunkcache reads \(Self.schemaVersion)")
        }
        self.database = Mutex(database)
    }

    /// The encoded manifest stored for `key`.
    func manifest(for key: SHA256Digest) throws -> [UInt8]? {
        try database.withLock { database in
            var found: [UInt8]?
            try database.query("SELECT manifest FROM manifests WHERE key = ?", [.blob(key.bytes)]) { found = $0.blob(0) }
            return found
        }
    }

    /// Where the chunk with this hash is stored, if it is.
    func location(of digest: SHA256Digest) throws -> ChunkLocation? {
        try database.withLock { database in
            var found: ChunkLocation?
            try database.query("SELECT pack, offset, stored, raw, codec FROM chunks WHERE digest = ?", [.blob(digest.bytes)]) { row in
                guard let codec = Codec(rawValue: UInt8(truncatingIfNeeded: row.integer(4))) else { return }
                found = ChunkLocation(
                    pack: UInt64(bitPattern: row.integer(0)), offset: row.integer(1),
                    storedSize: UInt32(truncatingIfNeeded: row.integer(2)), rawSize: UInt32(truncatingIfNeeded: row.integer(3)), codec: codec)
            }
            return found
        }
    }

    /// Records a put: its new chunks (already written to packs) and its manifest, atomically.
    func commit(key: SHA256Digest, manifest: [UInt8], time: Int64, newChunks: [(SHA256Digest, ChunkLocation)]) throws {
        try database.withLock { database in
            try database.transaction {
                for (digest, location) in newChunks {
                    try database.query(
                        "INSERT OR IGNORE INTO chunks (digest, pack, offset, stored, raw, codec) VALUES (?, ?, ?, ?, ?, ?)",
                        [.blob(digest.bytes), .integer(Int64(bitPattern: location.pack)), .integer(location.offset),
                         .integer(Int64(location.storedSize)), .integer(Int64(location.rawSize)), .integer(Int64(location.codec.rawValue))])
                }
                try database.query(
                    "INSERT OR REPLACE INTO manifests (key, manifest, last_used) VALUES (?, ?, ?)",
                    [.blob(key.bytes), .blob(manifest), .integer(time)])
            }
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

    /// Every encoded manifest.
    func allManifests() throws -> [[UInt8]] {
        try database.withLock { database in
            var all: [[UInt8]] = []
            try database.query("SELECT manifest FROM manifests") { all.append($0.blob(0)) }
            return all
        }
    }
}
