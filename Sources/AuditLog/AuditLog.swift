import Foundation
import RistrettoPSI

/// The Clean_Room_Audit_Log: an append-only, hash-chained, Ed25519-signed SQLite log of run
/// events (counts, hashes, versions and reason codes; never identifiers, keys or paths).
///
/// Contract:
/// - Read commands open the file with `SQLITE_OPEN_READONLY` and `PRAGMA query_only`: they never
///   create or change the database file (SQLite may create empty `-wal`/`-shm` side files next to
///   a WAL database, which hold no data).
/// - ``append(_:signedBy:at:)`` validates the event, then in one `BEGIN IMMEDIATE` transaction
///   reads and checks the head, computes the next link and inserts it; WAL with `synchronous=FULL`
///   makes a committed entry durable and an interrupted one absent.
/// - There is no API that updates or deletes an entry; the schema's triggers refuse both.
///
/// Thread-safety: an instance owns one SQLite connection and is not `Sendable`; use one instance
/// per thread or process. Several processes may append to the same file at once.
/// - SeeAlso: `Protocol/AUDIT_LOG.md`.
public final class AuditLog {
    /// How long a writer waits for another writer's lock before failing with `.busy`.
    public static let busyTimeoutMilliseconds: Int32 = 60_000

    /// The database file.
    public let path: String
    /// Whether this handle was opened read-only.
    public let isReadOnly: Bool
    /// The coordinator public key recorded in the database at creation.
    ///
    /// - Warning: an attacker who can rewrite the file can replace it; verify against a pinned key
    ///   (``verify(pinnedKey:checkpoint:)``) to rule that out.
    public let recordedCoordinatorKey: VerifyingKey
    /// The schema version read from `PRAGMA user_version`.
    public let schemaVersion: Int

    private let db: SQLiteConnection

    private init(db: SQLiteConnection, readOnly: Bool) throws(AuditLogError) {
        self.db = db
        self.path = db.path
        self.isReadOnly = readOnly
        let (version, key) = try AuditLog.readMetadata(db)
        self.schemaVersion = version
        self.recordedCoordinatorKey = key
    }

    // MARK: Opening

    /// Opens an existing log without write access, for show, verify, checkpoint and export.
    ///
    /// - Throws: `.io` when the file does not exist (it is never created), `.notAnAuditLog`,
    ///   `.newerSchema`, `.corrupt`.
    public static func openReadOnly(at path: String) throws(AuditLogError) -> AuditLog {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditLogError(.io, "'\(path)' does not exist")
        }
        let db = try SQLiteConnection(path: path, mode: .readOnly)
        db.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
        try db.execute("PRAGMA query_only = ON; PRAGMA trusted_schema = OFF")
        return try AuditLog(db: db, readOnly: true)
    }

    /// Opens an existing log for appending. - Throws: as ``openReadOnly(at:)``.
    public static func openForAppend(at path: String) throws(AuditLogError) -> AuditLog {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditLogError(.io, "'\(path)' does not exist")
        }
        let db = try SQLiteConnection(path: path, mode: .readWrite(create: false))
        return try configuredForWriting(db)
    }

    /// Creates a new, empty log recording `coordinatorKey`.
    /// - Throws: `.io` if anything already exists at `path` (an existing log is never re-created).
    public static func create(at path: String, coordinatorKey: VerifyingKey) throws(AuditLogError) -> AuditLog {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw AuditLogError(.io, "'\(path)' already exists; refusing to create a log over it")
        }
        return try openOrCreate(at: path, coordinatorKey: coordinatorKey)
    }

    /// Opens the log at `path`, creating it if the file is missing or empty.
    ///
    /// Safe when several processes call it at once: the schema is created inside a
    /// `BEGIN IMMEDIATE` transaction that re-checks that no other process created it first.
    /// - Throws: `.keyMismatch` if the existing log records another coordinator key;
    ///   `.notAnAuditLog` for any other non-empty file (which is left untouched).
    public static func openOrCreate(at path: String, coordinatorKey: VerifyingKey) throws(AuditLogError) -> AuditLog {
        let db = try SQLiteConnection(path: path, mode: .readWrite(create: true))
        db.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
        try db.execute("PRAGMA trusted_schema = OFF")
        if try db.retryingWhileBusy({ () throws(AuditLogError) in try isEmptyDatabase(db) }) {
            try switchToWAL(db)
            try db.retryingWhileBusy { () throws(AuditLogError) in
                try db.immediateTransaction { () throws(AuditLogError) in
                    guard try isEmptyDatabase(db) else { return }  // another process created it meanwhile
                    try db.execute(AuditSchema.createV1)
                    try db.execute(AuditSchema.migrateV1toV2)
                    let insert = try db.prepare("INSERT INTO \(AuditSchema.metaTable) (key, value) VALUES (?1, ?2)")
                    for (k, v) in [
                        ("format", AuditSchema.format), ("coordinator_public_key", coordinatorKey.hex),
                        ("created_at", AuditTime.iso8601(milliseconds: AuditTime.milliseconds(Date()))),
                    ] {
                        try insert.bind(1, k)
                        try insert.bind(2, v)
                        _ = try insert.step()
                        insert.reset()
                    }
                }
            }
        }
        let log = try configuredForWriting(db)
        guard log.recordedCoordinatorKey == coordinatorKey else {
            throw AuditLogError(
                .keyMismatch,
                "'\(path)' records coordinator key \(log.recordedCoordinatorKey.hex), not \(coordinatorKey.hex)")
        }
        return log
    }

    private static func configuredForWriting(_ db: SQLiteConnection) throws(AuditLogError) -> AuditLog {
        db.setBusyTimeout(milliseconds: busyTimeoutMilliseconds)
        try db.execute("PRAGMA trusted_schema = OFF")
        // Validate before touching anything, so a foreign database is left as it was.
        var log = try db.retryingWhileBusy { () throws(AuditLogError) in try AuditLog(db: db, readOnly: false) }
        try switchToWAL(db)
        try db.execute("PRAGMA synchronous = FULL")
        if log.schemaVersion < 2 {
            // Re-checked under the write lock: another writer may have migrated it meanwhile.
            try db.immediateTransaction { () throws(AuditLogError) in
                if try db.scalarInt("PRAGMA user_version") == 1 { try db.execute(AuditSchema.migrateV1toV2) }
            }
            log = try AuditLog(db: db, readOnly: false)
        }
        return log
    }

    /// Puts the log in WAL mode (persistent in the file, so usually already done).
    /// - Throws: `.io` when SQLite keeps another mode; `.busy` past the busy timeout.
    private static func switchToWAL(_ db: SQLiteConnection) throws(AuditLogError) {
        let mode = try db.retryingWhileBusy { () throws(AuditLogError) in try db.scalarText("PRAGMA journal_mode = WAL")
        }
        guard mode == "wal" else {
            throw AuditLogError(.io, "'\(db.path)': cannot switch to WAL mode (got \(mode ?? "nothing"))")
        }
    }

    private static func isEmptyDatabase(_ db: SQLiteConnection) throws(AuditLogError) -> Bool {
        let appID = try db.scalarInt("PRAGMA application_id")
        let version = try db.scalarInt("PRAGMA user_version")
        let objects = try db.scalarInt("SELECT count(*) FROM sqlite_schema")
        return appID == 0 && version == 0 && objects == 0
    }

    /// Checks the application ID, schema version and metadata; returns the version and key.
    private static func readMetadata(_ db: SQLiteConnection) throws(AuditLogError) -> (Int, VerifyingKey) {
        let notOurs = "'\(db.path)' is not a CleanRoom audit log"
        let appID: Int64
        do throws(AuditLogError) { appID = try db.scalarInt("PRAGMA application_id") } catch {
            // An I/O error on a file that is an SQLite database (e.g. no room for the WAL index
            // on a full disk) stays `.io`: calling it "not an audit log" would mislead.
            let isIOOnDatabase = error.code == .io && hasSQLiteHeader(db.path)
            if isIOOnDatabase { throw AuditLogError(.io, "'\(db.path)' cannot be read: \(error.reason)") }
            throw AuditLogError(error.code == .io ? .notAnAuditLog : error.code, "\(notOurs): \(error.reason)")
        }
        guard appID == AuditSchema.applicationID else {
            throw AuditLogError(
                .notAnAuditLog, "\(notOurs) (application_id is \(appID), expected \(AuditSchema.applicationID))")
        }
        let version = try db.scalarInt("PRAGMA user_version")
        guard version <= AuditSchema.version else {
            throw AuditLogError(
                .newerSchema,
                "'\(db.path)' has schema version \(version); this build reads up to \(AuditSchema.version)")
        }
        guard version >= 1 else { throw AuditLogError(.notAnAuditLog, "\(notOurs) (schema version \(version))") }
        let tables = try db.scalarInt(
            """
            SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('\(AuditSchema.table)', '\(AuditSchema.metaTable)')
            """)
        guard tables == 2 else { throw AuditLogError(.notAnAuditLog, "\(notOurs) (its tables are missing)") }
        let format = try db.scalarText("SELECT value FROM \(AuditSchema.metaTable) WHERE key = 'format'")
        guard format == AuditSchema.format else {
            throw AuditLogError(.notAnAuditLog, "\(notOurs) (metadata format is not \(AuditSchema.format))")
        }
        guard
            let keyHex = try db.scalarText(
                "SELECT value FROM \(AuditSchema.metaTable) WHERE key = 'coordinator_public_key'"),
            let key = try? VerifyingKey(hex: keyHex)
        else {
            throw AuditLogError(
                .corrupt, "'\(db.path)': metadata coordinator_public_key is missing or not a valid Ed25519 public key")
        }
        return (Int(version), key)
    }

    /// Whether the file starts with SQLite's 16-byte header string.
    private static func hasSQLiteHeader(_ path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        return (try? h.read(upToCount: 16)) == Data("SQLite format 3\u{0}".utf8)
    }

    // MARK: Appending

    /// Appends one event as the next link of the chain, signed by the coordinator.
    ///
    /// - Parameters:
    ///   - event: validated with ``AuditEvent/validate()`` before anything is written.
    ///   - key: must be the coordinator key recorded in the log.
    ///   - date: the event time (UTC milliseconds are recorded); defaults to now.
    /// - Returns: the entry as stored.
    /// - Throws: `.invalidField`, `.keyMismatch`, `.busy` after the busy timeout; `.chainBroken` or
    ///   `.signatureInvalid` when the current head does not verify (the log refuses to extend a
    ///   forged head); `.io` for a read-only handle. On any error nothing is written.
    public func append(_ event: AuditEvent, signedBy key: SigningKey, at date: Date = Date()) throws(AuditLogError)
        -> AuditEntry
    {
        guard !isReadOnly else { throw AuditLogError(.io, "'\(path)' was opened read-only") }
        try event.validate()
        guard key.verifyingKey == recordedCoordinatorKey else {
            throw AuditLogError(.keyMismatch, "the signing key is not the coordinator key recorded in '\(path)'")
        }
        let ms = AuditTime.milliseconds(date)
        try FieldRules.milliseconds(ms)
        let entryID = Hex.encode(SecureRandom.bytes(16))
        return try db.immediateTransaction { () throws(AuditLogError) -> AuditEntry in
            let head = try lastEntry()
            if let head {
                guard AuditChain.recomputedHash(of: head) == head.entryHash else {
                    throw AuditLogError(
                        .chainBroken, "refusing to append: the head's entry_hash does not match its fields",
                        sequence: head.sequence)
                }
                guard AuditChain.isValidSignature(of: head, key: recordedCoordinatorKey) else {
                    throw AuditLogError(
                        .signatureInvalid, "refusing to append: the head's signature does not verify",
                        sequence: head.sequence)
                }
            }
            let sequence = (head?.sequence ?? 0) + 1
            let previous = head?.entryHash ?? AuditChain.genesisPreviousHash
            let hash = AuditChain.entryHash(
                sequence: sequence, entryID: entryID, recordedAtMilliseconds: ms,
                event: event, previousHash: previous)
            let entry = AuditEntry(
                sequence: sequence, entryID: entryID, recordedAtMilliseconds: ms, event: event,
                previousHash: previous, entryHash: hash, signature: key.signature(for: hash.bytes))
            try insert(entry)
            return entry
        }
    }

    private func insert(_ e: AuditEntry) throws(AuditLogError) {
        let s = try db.prepare(
            "INSERT INTO \(AuditSchema.table) (\(AuditSchema.columns)) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        )
        try s.bind(1, e.sequence)
        try s.bind(2, e.entryID)
        try s.bind(3, e.event.collaborationID)
        try s.bind(4, e.event.runID)
        try s.bind(5, e.event.kind.rawValue)
        try s.bind(6, e.recordedAtMilliseconds)
        try s.bind(7, Int64(e.event.consumerRowsProcessed))
        try s.bind(8, Int64(e.event.consumerIdentifiersProcessed))
        try s.bind(9, Int64(e.event.matchedRowsDelivered))
        try s.bind(10, Int64(e.event.deliveredObjectCount))
        try s.bind(11, e.event.deliveryManifestSHA256?.hex)
        try s.bind(12, e.event.agreementSHA256?.hex)
        try s.bind(13, e.event.protocolVersion)
        try s.bind(14, e.event.normalizationRulesVersion)
        try s.bind(15, e.event.reasonCode)
        try s.bind(16, e.previousHash.hex)
        try s.bind(17, e.entryHash.hex)
        try s.bind(18, Hex.encode(e.signature))
        if let eps = e.event.privacyEpsilonMillis { try s.bind(19, Int64(eps)) } else { try s.bind(19, nil as String?) }
        _ = try s.step()
    }

    // MARK: Reading

    /// Decodes the current row, re-checking every field rule.
    private static func decode(_ s: SQLiteStatement) throws(AuditLogError) -> AuditEntry {
        let sequence = s.int(0)
        func fail(_ e: AuditLogError) -> AuditLogError { AuditLogError(e.code, e.reason, sequence: sequence) }
        func text(_ c: Int32, _ name: String) throws(AuditLogError) -> String {
            guard let t = s.text(c) else { throw AuditLogError(.invalidField, "\(name) is NULL", sequence: sequence) }
            return t
        }
        func int(_ c: Int32, _ name: String) throws(AuditLogError) -> Int64 {
            guard s.isInteger(c) else {
                throw AuditLogError(.invalidField, "\(name) is not an integer", sequence: sequence)
            }
            return s.int(c)
        }
        func digest(_ c: Int32, _ name: String) throws(AuditLogError) -> AuditDigest? {
            guard !s.isNull(c), let t = s.text(c) else { return nil }
            do { return try AuditDigest(hex: t, field: name) } catch { throw fail(error) }
        }
        do throws(AuditLogError) {
            guard let kind = AuditEventKind(rawValue: try text(4, "event_kind")) else {
                throw AuditLogError(
                    .invalidField, "event_kind is not one of delivered, rejected, below_threshold, failed")
            }
            func count(_ c: Int32, _ name: String) throws(AuditLogError) -> Int {
                let v = try int(c, name)
                guard v >= 0 else { throw AuditLogError(.invalidField, "\(name) must be a non-negative integer") }
                return Int(v)
            }
            let event = AuditEvent(
                collaborationID: try text(2, "collaboration_id"), runID: try text(3, "run_id"), kind: kind,
                consumerRowsProcessed: try count(6, "consumer_rows_processed"),
                consumerIdentifiersProcessed: try count(7, "consumer_identifiers_processed"),
                matchedRowsDelivered: try count(8, "matched_rows_delivered"),
                deliveredObjectCount: try count(9, "delivered_object_count"),
                deliveryManifestSHA256: try digest(10, "delivery_manifest_sha256"),
                agreementSHA256: try digest(11, "agreement_sha256"),
                protocolVersion: try text(12, "protocol_version"),
                normalizationRulesVersion: try text(13, "normalization_rules_version"),
                reasonCode: s.isNull(14) ? nil : try text(14, "reason_code"),
                privacyEpsilonMillis: s.isNull(18) ? nil : try count(18, "privacy_epsilon_millis"))
            try event.validate()
            let entryID = try text(1, "entry_id")
            try FieldRules.entryID(entryID)
            let ms = try int(5, "recorded_at_ms")
            try FieldRules.milliseconds(ms)
            guard let previous = try digest(15, "previous_hash"), let hash = try digest(16, "entry_hash") else {
                throw AuditLogError(.invalidField, "previous_hash and entry_hash are required")
            }
            let sigHex = try text(17, "signature")
            guard sigHex.utf8.count == 128, sigHex.utf8.allSatisfy(FieldRules.isLowerHex), let sig = Hex.decode(sigHex)
            else {
                throw AuditLogError(.invalidField, "signature must be 128 lowercase hex characters")
            }
            return AuditEntry(
                sequence: sequence, entryID: entryID, recordedAtMilliseconds: ms, event: event,
                previousHash: previous, entryHash: hash, signature: sig)
        } catch {
            throw error.sequence == nil ? fail(error) : error
        }
    }

    private func query(
        _ whereClause: String, _ binds: [Any?] = [], order: String = "sequence ASC", limit: Int? = nil,
        _ each: (AuditEntry) throws(AuditLogError) -> Void
    ) throws(AuditLogError) {
        var sql = "SELECT \(AuditSchema.selectColumns(version: schemaVersion)) FROM \(AuditSchema.table)"
        if !whereClause.isEmpty { sql += " WHERE \(whereClause)" }
        sql += " ORDER BY \(order)"
        if let limit { sql += " LIMIT \(limit)" }
        let s = try db.prepare(sql)
        for (i, b) in binds.enumerated() {
            if let v = b as? Int64 { try s.bind(Int32(i + 1), v) } else { try s.bind(Int32(i + 1), b as? String) }
        }
        while try s.step() { try each(try AuditLog.decode(s)) }
    }

    private func lastEntry() throws(AuditLogError) -> AuditEntry? {
        var head: AuditEntry?
        try query("", order: "sequence DESC", limit: 1) { head = $0 }
        return head
    }

    /// Every entry in sequence order (read as stored; see ``verify(pinnedKey:checkpoint:)``).
    /// - Throws: `.invalidField` for a row that breaks a field rule, `.corrupt`, `.io`.
    public func entries() throws(AuditLogError) -> [AuditEntry] {
        var out: [AuditEntry] = []
        try query("") { out.append($0) }
        return out
    }

    /// The entries of one collaboration, optionally limited to `[from, to)`, in sequence order.
    public func entries(collaborationID: String, from: Date? = nil, to: Date? = nil) throws(AuditLogError)
        -> [AuditEntry]
    {
        try FieldRules.identifier(collaborationID, field: "collaboration_id")
        var out: [AuditEntry] = []
        let lo = from.map(AuditTime.milliseconds) ?? Int64.min
        let hi = to.map(AuditTime.milliseconds) ?? Int64.max
        try query("collaboration_id = ?1 AND recorded_at_ms >= ?2 AND recorded_at_ms < ?3", [collaborationID, lo, hi]) {
            out.append($0)
        }
        return out
    }

    /// How many entries of each kind a collaboration has recorded since `since` (inclusive), for
    /// frequency caps. Kinds with no entries are present with 0.
    public func eventCounts(collaborationID: String, since: Date) throws(AuditLogError) -> [AuditEventKind: Int] {
        try FieldRules.identifier(collaborationID, field: "collaboration_id")
        var counts = Dictionary(uniqueKeysWithValues: AuditEventKind.allCases.map { ($0, 0) })
        let s = try db.prepare(
            """
            SELECT event_kind, count(*) FROM \(AuditSchema.table)
            WHERE collaboration_id = ?1 AND recorded_at_ms >= ?2 GROUP BY event_kind
            """)
        try s.bind(1, collaborationID)
        try s.bind(2, AuditTime.milliseconds(since))
        while try s.step() {
            guard let k = s.text(0).flatMap(AuditEventKind.init(rawValue:)) else {
                throw AuditLogError(
                    .invalidField, "event_kind is not one of delivered, rejected, below_threshold, failed")
            }
            counts[k] = Int(s.int(1))
        }
        return counts
    }

    /// The ε (thousandths) a collaboration has spent under differential privacy: the sum of
    /// `privacy_epsilon_millis` over all its entries (0 on a version-1 log).
    public func epsilonSpentMillis(collaborationID: String) throws(AuditLogError) -> Int {
        try FieldRules.identifier(collaborationID, field: "collaboration_id")
        guard schemaVersion >= 2 else { return 0 }
        let s = try db.prepare(
            "SELECT coalesce(sum(privacy_epsilon_millis), 0) FROM \(AuditSchema.table) WHERE collaboration_id = ?1")
        try s.bind(1, collaborationID)
        guard try s.step() else { return 0 }
        return Int(s.int(0))
    }

    /// The most recent entry for `runID`, or `nil` when the run was never recorded (so a caller
    /// can refuse to re-run a run that already has an entry).
    public func latestEntry(runID: String) throws(AuditLogError) -> AuditEntry? {
        try FieldRules.identifier(runID, field: "run_id")
        var found: AuditEntry?
        try query("run_id = ?1", [runID], order: "sequence DESC", limit: 1) { found = $0 }
        return found
    }

    /// How many times this handle has waited for another writer's lock (a diagnostic: the
    /// concurrency test uses it to show that two processes really contended).
    public var lockWaits: Int { db.busy.waits }

    /// The number of entries.
    public func count() throws(AuditLogError) -> Int {
        Int(try db.scalarInt("SELECT count(*) FROM \(AuditSchema.table)"))
    }

    /// Streams every entry in sequence order to `body`, without holding the log in memory.
    public func forEachEntry(_ body: (AuditEntry) throws(AuditLogError) -> Void) throws(AuditLogError) {
        try query("", [], body)
    }

    // MARK: Verifying

    /// Verifies the whole log: SQLite's page structure, every field rule, the sequence, every
    /// link of the hash chain, every signature, and (given a checkpoint) that the log still holds
    /// the checkpointed head.
    ///
    /// Key choice: `pinnedKey` if given, else the checkpoint's key, else the key recorded in the
    /// database (the result then has ``AuditVerification/reliedOnDatabaseKeyOnly`` set, because an
    /// attacker who rewrites the whole file can replace that key too).
    /// - Throws: the first failure: `.corrupt`, `.invalidField`, `.keyMismatch`, `.chainBroken`,
    ///   `.signatureInvalid`, `.checkpointMismatch`, `.truncated`, each naming the entry.
    public func verify(pinnedKey: VerifyingKey? = nil, checkpoint: AuditCheckpoint? = nil) throws(AuditLogError)
        -> AuditVerification
    {
        try checkIntegrity()
        var key = recordedCoordinatorKey
        var source = AuditVerification.KeySource.database
        if let checkpoint {
            if let pinnedKey, pinnedKey != checkpoint.coordinatorKey {
                throw AuditLogError(
                    .keyMismatch,
                    "the pinned coordinator key \(pinnedKey.hex) differs from the checkpoint's \(checkpoint.coordinatorKey.hex)"
                )
            }
            key = checkpoint.coordinatorKey
            source = .checkpoint
        }
        if let pinnedKey {
            key = pinnedKey
            source = .pinned
        }
        guard key == recordedCoordinatorKey else {
            throw AuditLogError(
                .keyMismatch,
                "'\(path)' records coordinator key \(recordedCoordinatorKey.hex), but the \(source == .pinned ? "pinned" : "checkpoint's") key is \(key.hex): the log was re-keyed"
            )
        }

        var expected: Int64 = 1
        var previous = AuditChain.genesisPreviousHash
        var checkpointMatched = checkpoint.map { $0.sequence == 0 } ?? false
        if let checkpoint, checkpoint.sequence == 0, checkpoint.headHash != AuditChain.genesisPreviousHash {
            throw AuditLogError(.checkpointMismatch, "a checkpoint of an empty log must have a zero head hash")
        }
        try query("") { (entry: AuditEntry) throws(AuditLogError) in
            guard entry.sequence == expected else {
                throw AuditLogError(
                    .chainBroken,
                    "expected entry \(expected) next but found entry \(entry.sequence): entries were deleted or inserted",
                    sequence: entry.sequence)
            }
            guard entry.previousHash == previous else {
                throw AuditLogError(
                    .chainBroken,
                    "previous_hash does not equal the entry_hash of entry \(expected - 1): entries were removed, inserted or reordered",
                    sequence: entry.sequence)
            }
            guard AuditChain.recomputedHash(of: entry) == entry.entryHash else {
                throw AuditLogError(
                    .chainBroken, "entry_hash does not match the entry's fields: a field was edited",
                    sequence: entry.sequence)
            }
            guard AuditChain.isValidSignature(of: entry, key: key) else {
                throw AuditLogError(
                    .signatureInvalid, "the coordinator's Ed25519 signature over entry_hash does not verify",
                    sequence: entry.sequence)
            }
            if let checkpoint, checkpoint.sequence == entry.sequence {
                guard checkpoint.headHash == entry.entryHash else {
                    throw AuditLogError(
                        .checkpointMismatch,
                        "the checkpoint records head hash \(checkpoint.headHash.hex) for this entry, the log has \(entry.entryHash.hex): the log was rewritten after the checkpoint",
                        sequence: entry.sequence)
                }
                checkpointMatched = true
            }
            previous = entry.entryHash
            expected += 1
        }
        let last = expected - 1
        if let checkpoint, !checkpointMatched {
            throw AuditLogError(
                .truncated,
                "the log ends at entry \(last) but the checkpoint records entry \(checkpoint.sequence): entries were removed from the tail"
            )
        }
        return AuditVerification(
            entryCount: Int(last), headSequence: last, headHash: previous, coordinatorKey: key,
            keySource: source, checkpointSequence: checkpoint?.sequence)
    }

    /// Runs SQLite's `PRAGMA quick_check` over every page (not the chain: see ``verify(pinnedKey:checkpoint:)``).
    /// - Throws: `.corrupt` naming the first problem SQLite reports.
    public func checkIntegrity() throws(AuditLogError) {
        let check = try db.prepare("PRAGMA quick_check")
        if try check.step(), let first = check.text(0), first != "ok" {
            throw AuditLogError(.corrupt, "'\(path)' fails SQLite's quick_check: \(first.prefix(200))")
        }
    }

    /// A checkpoint of the current head, after verifying the log (under `pinnedKey` if given).
    /// - Throws: any ``verify(pinnedKey:checkpoint:)`` failure: a checkpoint is never taken of a log that
    ///   does not verify.
    public func checkpoint(pinnedKey: VerifyingKey? = nil, at date: Date = Date()) throws(AuditLogError)
        -> AuditCheckpoint
    {
        let v = try verify(pinnedKey: pinnedKey)
        return AuditCheckpoint(
            sequence: v.headSequence, headHash: v.headHash, coordinatorKey: v.coordinatorKey,
            createdAtMilliseconds: AuditTime.milliseconds(date))
    }
}

/// The outcome of a successful ``AuditLog/verify(pinnedKey:checkpoint:)``.
public struct AuditVerification: Sendable, Equatable {
    /// Where the coordinator key used for the signatures came from.
    public enum KeySource: String, Sendable {
        /// `--coordinator-key` / the `pinnedKey` argument.
        case pinned
        /// The checkpoint file.
        case checkpoint
        /// Only the key stored in the database itself.
        case database
    }
    /// The number of entries verified (equal to ``headSequence``: sequences have no gaps).
    public let entryCount: Int
    /// The last sequence number (0 for an empty log).
    public let headSequence: Int64
    /// The last entry hash (32 zero bytes for an empty log).
    public let headHash: AuditDigest
    /// The key every signature verified under: always the one the database records, since a
    /// pinned or checkpoint key that differs is `.keyMismatch`.
    public let coordinatorKey: VerifyingKey
    /// Where ``coordinatorKey`` came from; see ``reliedOnDatabaseKeyOnly``.
    public let keySource: KeySource
    /// The checkpoint sequence that was confirmed, if a checkpoint was given.
    public let checkpointSequence: Int64?

    /// True when no pinned or checkpoint key was given: the signatures prove only that whoever
    /// holds the key stored in the file wrote the entries.
    public var reliedOnDatabaseKeyOnly: Bool { keySource == .database }
}
