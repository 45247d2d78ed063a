internal import CSQLite
import Foundation

/// State of the busy handler of one connection: when the current wait began, and how many
/// times the connection has waited for another writer (a diagnostic the tests read).
final class BusyState {
    var waits = 0
    var waitStartedNanos: UInt64 = 0
    var timeoutNanos: UInt64 = 0
}

/// A thin, internal wrapper over the SQLite C API: one connection, prepared statements, and every
/// return code checked and turned into an ``AuditLogError``.
///
/// Contract: no C type leaves this file's types; statements are finalized before the connection
/// closes. Not thread-safe: one ``AuditLog`` owns one connection.
/// - SeeAlso: https://sqlite.org/c3ref/intro.html; `Protocol/AUDIT_LOG.md` §"Durability and concurrency".
final class SQLiteConnection {
    enum Mode {
        /// `SQLITE_OPEN_READONLY`: never creates or modifies the database file.
        case readOnly
        /// `SQLITE_OPEN_READWRITE`, plus `SQLITE_OPEN_CREATE` when `create` is set.
        case readWrite(create: Bool)
    }

    private let handle: OpaquePointer
    let busy = BusyState()
    /// The file name used in error reasons (the path the caller gave; never a party's data).
    let path: String

    init(path: String, mode: Mode) throws(AuditLogError) {
        self.path = path
        var flags: Int32 = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE
        switch mode {
        case .readOnly: flags |= SQLITE_OPEN_READONLY
        case .readWrite(let create): flags |= SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0)
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteConnection.error(rc, "cannot open '\(path)': \(message)")
        }
        self.handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { sqlite3_close_v2(handle) }

    /// Maps an SQLite result code to the module's stable codes.
    static func error(_ rc: Int32, _ reason: String) -> AuditLogError {
        switch rc & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED: return AuditLogError(.busy, reason)
        case SQLITE_CORRUPT: return AuditLogError(.corrupt, reason)
        case SQLITE_NOTADB: return AuditLogError(.notAnAuditLog, reason)
        default: return AuditLogError(.io, reason)
        }
    }

    func error(_ rc: Int32, _ context: String) -> AuditLogError {
        SQLiteConnection.error(rc, "\(context) on '\(path)': \(String(cString: sqlite3_errmsg(handle))) (sqlite \(rc))")
    }

    /// Waits up to `milliseconds` for another connection's lock instead of failing at once.
    ///
    /// Replaces SQLite's default handler, whose back-off grows to 100 ms sleeps and lets a busy
    /// writer starve a waiting one, with short randomized sleeps (0.2–1.2 ms) until the deadline.
    func setBusyTimeout(milliseconds: Int32) {
        busy.timeoutNanos = UInt64(max(0, milliseconds)) * 1_000_000
        sqlite3_busy_handler(
            handle,
            { context, attempt in
                guard let context else { return 0 }
                let state = Unmanaged<BusyState>.fromOpaque(context).takeUnretainedValue()
                let now = DispatchTime.now().uptimeNanoseconds
                if attempt == 0 { state.waitStartedNanos = now }
                state.waits += 1
                guard now - state.waitStartedNanos < state.timeoutNanos else { return 0 }
                usleep(UInt32.random(in: 200...1200))
                return 1
            }, Unmanaged.passUnretained(busy).toOpaque())
    }

    /// Runs `body` again while it fails with `.busy`, until the busy timeout has passed.
    ///
    /// SQLite does not call the busy handler where waiting could deadlock: a connection holding
    /// a shared lock that needs an exclusive one, as `PRAGMA journal_mode = WAL` does while two
    /// processes create the same new log. It answers `SQLITE_BUSY` at once; the only safe
    /// answer is to let go of every lock (each `body` runs in autocommit) and try again.
    /// - SeeAlso: https://sqlite.org/c3ref/busy_handler.html; `Protocol/AUDIT_LOG.md` §"Durability and concurrency".
    func retryingWhileBusy<R>(_ body: () throws(AuditLogError) -> R) throws(AuditLogError) -> R {
        let started = DispatchTime.now().uptimeNanoseconds
        while true {
            do {
                return try body()
            } catch  where error.code == .busy && DispatchTime.now().uptimeNanoseconds - started < busy.timeoutNanos {
                busy.waits += 1
                usleep(UInt32.random(in: 1_000...5_000))
            }
        }
    }

    /// Runs one or more statements that return no rows the caller needs.
    func execute(_ sql: String) throws(AuditLogError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "executing '\(sql.prefix(60))'") }
    }

    func prepare(_ sql: String) throws(AuditLogError) -> SQLiteStatement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "preparing '\(sql.prefix(60))'") }
        return SQLiteStatement(stmt, connection: self)
    }

    /// The first column of the first row of a query, as text (`nil` for NULL or no row).
    func scalarText(_ sql: String) throws(AuditLogError) -> String? {
        let s = try prepare(sql)
        guard try s.step() else { return nil }
        return s.text(0)
    }

    /// The first column of the first row of a query, as an integer (0 for no row).
    func scalarInt(_ sql: String) throws(AuditLogError) -> Int64 {
        let s = try prepare(sql)
        guard try s.step() else { return 0 }
        return s.int(0)
    }

    /// Runs `body` inside `BEGIN IMMEDIATE … COMMIT`, rolling back when it throws.
    ///
    /// `BEGIN IMMEDIATE` takes the write lock before the head is read, so two writers cannot
    /// both extend the same head; the busy timeout makes the second wait instead of failing.
    func immediateTransaction<R>(_ body: () throws(AuditLogError) -> R) throws(AuditLogError) -> R {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            _ = sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }
}

/// A prepared statement. Finalized on release.
final class SQLiteStatement {
    private let stmt: OpaquePointer
    private let connection: SQLiteConnection

    fileprivate init(_ stmt: OpaquePointer, connection: SQLiteConnection) {
        self.stmt = stmt
        self.connection = connection
    }

    deinit { sqlite3_finalize(stmt) }

    /// `SQLITE_TRANSIENT`: SQLite copies the bound bytes before `bind` returns.
    private static var transient: sqlite3_destructor_type {
        unsafeBitCast(-1 as Int, to: sqlite3_destructor_type.self)
    }

    func bind(_ index: Int32, _ value: Int64) throws(AuditLogError) {
        try check(sqlite3_bind_int64(stmt, index, value), "binding parameter \(index)")
    }

    func bind(_ index: Int32, _ value: String?) throws(AuditLogError) {
        guard let value else {
            try check(sqlite3_bind_null(stmt, index), "binding parameter \(index)")
            return
        }
        try check(sqlite3_bind_text(stmt, index, value, -1, SQLiteStatement.transient), "binding parameter \(index)")
    }

    /// Resets the statement so it can run again; bindings are cleared.
    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    /// Steps once: `true` when a row is available, `false` when done.
    func step() throws(AuditLogError) -> Bool {
        let rc = sqlite3_step(stmt)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc, "running a statement")
        }
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_NULL }
    func isInteger(_ column: Int32) -> Bool { sqlite3_column_type(stmt, column) == SQLITE_INTEGER }
    func int(_ column: Int32) -> Int64 { sqlite3_column_int64(stmt, column) }

    func text(_ column: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, column) else { return nil }
        let n = Int(sqlite3_column_bytes(stmt, column))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    private func check(_ rc: Int32, _ context: String) throws(AuditLogError) {
        guard rc == SQLITE_OK else { throw connection.error(rc, context) }
    }
}
