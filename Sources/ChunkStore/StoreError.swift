import Digests
import FileIO

/// Why the store refused or failed a call: a `kind` a caller can switch on, and a message for
/// people. New kinds can be added without breaking callers (the code behind `Kind` is private).
///
/// SQLite's own errors never leave the store: a failing catalog is `catalogFailure`, or
/// `outOfSpace` when its disk is full.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Code: String {
            case damagedEntry = "damaged entry"
            case readOnly = "read-only store"
            case unknownVersion = "store of another version"
            case notAStore = "not a store"
            case unsafe = "unsafe store"
            case outOfSpace = "out of space"
            case changedWhileStoring = "output changed while being stored"
            case badArchive = "bad archive"
            case catalogFailure = "catalog failure"
        }
        private let code: Code
        private init(_ code: Code) { self.code = code }
        public var description: String { code.rawValue }

        /// An entry that cannot be served: a manifest that does not parse or is for another
        /// action, a chunk missing or damaged, an output not matching its ID. Serve a miss.
        public static let damagedEntry = Kind(.damagedEntry)
        /// The store's filesystem is read-only: it serves gets and stores nothing.
        public static let readOnly = Kind(.readOnly)
        /// The directory holds a store of a format this version does not know (a newer one).
        public static let unknownVersion = Kind(.unknownVersion)
        /// No store there (when only an existing one will do), or other files and no store.
        public static let notAStore = Kind(.notAStore)
        /// The store could be changed by another user, or has symbolic links where its files go.
        public static let unsafe = Kind(.unsafe)
        /// The store's filesystem lacks room for the write beyond its reserve, or is full.
        public static let outOfSpace = Kind(.outOfSpace)
        /// A file being stored changed size meanwhile.
        public static let changedWhileStoring = Kind(.changedWhileStoring)
        /// An archive that does not parse, is damaged or was tampered with.
        public static let badArchive = Kind(.badArchive)
        /// The catalog (SQLite) failed: I/O, or another process held its lock too long.
        public static let catalogFailure = Kind(.catalogFailure)
    }

    public let kind: Kind
    public let description: String
    /// For damage found in a chunk: its record, so `setAside` can forget it.
    let damagedChunk: (digest: SHA256Digest, location: ChunkLocation)?

    init(_ kind: Kind, _ description: String, damagedChunk: (digest: SHA256Digest, location: ChunkLocation)? = nil) {
        self.kind = kind
        self.description = description
        self.damagedChunk = damagedChunk
    }

    /// Runs `body`, turning the catalog's SQLite errors into `StoreError`s (public calls of the
    /// store go through this, so no SQLite type escapes).
    static func translating<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let failure as SQLiteDatabase.Failure {
            throw StoreError(failure.isOutOfSpace ? .outOfSpace : .catalogFailure, "catalog: \(failure.description)")
        }
    }
}

extension ChunkStore {
    /// True if `error` means the store's disk is full: this store's own check before a write,
    /// the system's ENOSPC, EDQUOT or EFBIG, or SQLite's "database or disk is full".
    public static func isOutOfSpace(_ error: any Error) -> Bool {
        switch error {
        case let error as StoreError: error.kind == .outOfSpace
        case let error as SystemError: error.isOutOfSpace
        case let error as SQLiteDatabase.Failure: error.isOutOfSpace
        default: false
        }
    }
}
