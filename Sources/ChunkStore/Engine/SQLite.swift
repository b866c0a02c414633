import CSQLite

/// A thin wrapper over one SQLite connection: prepared statements, typed binds and columns,
/// errors with SQLite's message. Not thread-safe on its own; `Catalog` serialises use.
final class SQLiteDatabase {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// SQLite's primary result code, if SQLite reported the failure.
        var code: Int32 = 0

        /// Another connection holds the lock SQLite needed.
        var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }

        /// The database or its disk is full (SQLITE_FULL), or its write failed for lack of space.
        var isOutOfSpace: Bool { code == SQLITE_FULL || (code == SQLITE_IOERR && description.contains("No space")) }
    }

    private var handle: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    /// - Parameters:
    ///   - readOnly: the database's filesystem is read-only (a store mounted read-only): opened
    ///     as immutable, since no process can be writing it and SQLite could not create its WAL
    ///     index there.
    ///   - readsOnly: a connection of this process's that only reads a database others write
    ///     (in WAL mode it never waits for them).
    init(path: String, readOnly: Bool = false, readsOnly: Bool = false) throws {
        let access = readOnly || readsOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        let flags = access | (readOnly ? SQLITE_OPEN_URI : 0) | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW
        let status = sqlite3_open_v2(readOnly ? "file:\(path)?immutable=1" : path, &handle, flags, nil)
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw Failure(description: "open \(path): \(message)")
        }
        // Other processes hold the write lock briefly (one put); wait rather than fail.
        sqlite3_busy_timeout(handle, 60_000)
    }

    deinit { close() }

    /// Closes the connection (once; later calls do nothing, and so does any use after it).
    func close() {
        for statement in statements.values { sqlite3_finalize(statement) }
        statements.removeAll()
        sqlite3_close(handle)
        handle = nil
    }

    private func failure(_ what: String) -> Failure {
        Failure(description: "\(what): \(String(cString: sqlite3_errmsg(handle)))", code: sqlite3_errcode(handle) & 0xFF)
    }

    /// Runs SQL without results (several statements allowed).
    func execute(_ sql: String) throws {
        guard sqlite3_exec(handle, sql, nil, nil, nil) == SQLITE_OK else { throw failure(sql) }
    }

    /// A value to bind.
    enum Value {
        case integer(Int64)
        case blob([UInt8])
        case text(String)
    }

    /// Runs one statement with `values` bound in order, calling `row` for each result row.
    func query(_ sql: String, _ values: [Value] = [], row: (Row) throws -> Void = { _ in }) throws {
        let statement = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, value) in values.enumerated() {
            let position = Int32(index + 1)
            let status: Int32
            switch value {
            case .integer(let number): status = sqlite3_bind_int64(statement, position, number)
            case .blob(let bytes):
                status = bytes.withUnsafeBytes { raw in
                    // SQLITE_TRANSIENT: SQLite copies the bytes before this call returns.
                    sqlite3_bind_blob(statement, position, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(raw.count), unsafeBitCast(-1, to: sqlite3_destructor_type.self))
                }
            case .text(let string):
                status = sqlite3_bind_text(statement, position, string, -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
            }
            guard status == SQLITE_OK else { throw failure("bind \(sql)") }
        }
        while true {
            switch sqlite3_step(statement) {
            case SQLITE_ROW: try row(Row(statement: statement))
            case SQLITE_DONE: return
            default: throw failure(sql)
            }
        }
    }

    private func prepared(_ sql: String) throws -> OpaquePointer {
        if let statement = statements[sql] { return statement }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw failure("prepare \(sql)")
        }
        statements[sql] = statement
        return statement
    }

    /// Runs `body` in a write transaction (taken at once, so concurrent writers queue on the
    /// busy timeout instead of failing midway), committing if it returns.
    func transaction<R>(_ body: () throws -> R) throws -> R {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// One result row; valid only inside the `row` callback.
    struct Row {
        let statement: OpaquePointer

        func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

        func blob(_ column: Int32) -> [UInt8] {
            let count = Int(sqlite3_column_bytes(statement, column))
            guard count > 0, let base = sqlite3_column_blob(statement, column) else { return [] }
            return Array(UnsafeRawBufferPointer(start: base, count: count))
        }
    }
}
