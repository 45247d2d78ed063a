/// The database schema, written once.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Schema".
enum AuditSchema {
    /// `PRAGMA application_id`: ASCII "CLRM", so `file(1)` and this module can tell an audit log
    /// from any other SQLite database.
    static let applicationID: Int64 = 0x434C_524D
    /// `PRAGMA user_version`: the schema version this build writes and reads. Version 2 added
    /// `privacy_epsilon_millis` (the differential-privacy budget); a version-1 log is migrated
    /// when opened for writing (``migrateV1toV2``) and read as is by read-only handles.
    static let version: Int64 = 2
    /// The `format` value in the metadata table.
    static let format = "CLEANROOM-AUDIT-V1"
    static let table = "clean_room_audit_log"
    static let metaTable = "clean_room_audit_meta"

    /// Column order used by every `INSERT` and by `SELECT`s on a version-2 log.
    static let columns = v1Columns + ", privacy_epsilon_millis"

    /// The columns a `SELECT` reads on a log of `version`; a version-1 log (read-only, not yet
    /// migrated) reads NULL for the column it lacks, which is what migration would give it.
    static func selectColumns(version: Int) -> String { version >= 2 ? columns : v1Columns + ", NULL" }

    private static let v1Columns = """
        sequence, entry_id, collaboration_id, run_id, event_kind, recorded_at_ms, \
        consumer_rows_processed, consumer_identifiers_processed, matched_rows_delivered, \
        delivered_object_count, delivery_manifest_sha256, agreement_sha256, protocol_version, \
        normalization_rules_version, reason_code, previous_hash, entry_hash, signature
        """

    /// Version 1 → 2: the ε (thousandths) a run spent under differential privacy, NULL when the
    /// run drew no noise. Old entries keep NULL, so their canonical bytes and hashes are unchanged.
    /// Run inside a `BEGIN IMMEDIATE` transaction; creation runs `createV1` then this.
    static let migrateV1toV2 = """
        ALTER TABLE \(table) ADD COLUMN privacy_epsilon_millis INTEGER
            CHECK (privacy_epsilon_millis IS NULL OR privacy_epsilon_millis >= 1);
        PRAGMA user_version = 2;
        """

    private static func hex(_ column: String, _ length: Int, nullable: Bool = false) -> String {
        let check = "length(\(column)) = \(length) AND \(column) NOT GLOB '*[^0-9a-f]*'"
        return nullable
            ? "\(column) TEXT CHECK (\(column) IS NULL OR (\(check)))" : "\(column) TEXT NOT NULL CHECK (\(check))"
    }

    private static func safeText(_ column: String, _ max: Int, nullable: Bool = false) -> String {
        let check = "length(\(column)) BETWEEN 1 AND \(max) AND \(column) NOT GLOB '*[^A-Za-z0-9._-]*'"
        return nullable
            ? "\(column) TEXT CHECK (\(column) IS NULL OR (\(check)))" : "\(column) TEXT NOT NULL CHECK (\(check))"
    }

    /// Creates version 1. Run inside the creating transaction.
    static let createV1 = """
        CREATE TABLE \(metaTable) (
            key TEXT PRIMARY KEY NOT NULL,
            value TEXT NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE TABLE \(table) (
            sequence INTEGER PRIMARY KEY CHECK (sequence >= 1),
            \(hex("entry_id", 32)) UNIQUE,
            \(safeText("collaboration_id", FieldRules.maxIdentifierLength)),
            \(safeText("run_id", FieldRules.maxIdentifierLength)),
            event_kind TEXT NOT NULL CHECK (event_kind IN ('delivered', 'rejected', 'below_threshold', 'failed')),
            recorded_at_ms INTEGER NOT NULL CHECK (recorded_at_ms >= 0),
            consumer_rows_processed INTEGER NOT NULL CHECK (consumer_rows_processed >= 0),
            consumer_identifiers_processed INTEGER NOT NULL CHECK (consumer_identifiers_processed >= 0),
            matched_rows_delivered INTEGER NOT NULL CHECK (matched_rows_delivered >= 0),
            delivered_object_count INTEGER NOT NULL CHECK (delivered_object_count >= 0),
            \(hex("delivery_manifest_sha256", 64, nullable: true)),
            \(hex("agreement_sha256", 64, nullable: true)),
            \(safeText("protocol_version", FieldRules.maxVersionLength)),
            \(safeText("normalization_rules_version", FieldRules.maxVersionLength)),
            reason_code TEXT CHECK (reason_code IS NULL OR (length(reason_code) BETWEEN 3 AND \(FieldRules.maxReasonCodeLength) AND reason_code NOT GLOB '*[^a-z0-9_.]*')),
            \(hex("previous_hash", 64)),
            \(hex("entry_hash", 64)) UNIQUE,
            \(hex("signature", 128))
        ) STRICT;
        CREATE INDEX \(table)_by_collaboration ON \(table) (collaboration_id, recorded_at_ms);
        CREATE INDEX \(table)_by_run ON \(table) (run_id, sequence);
        CREATE TRIGGER \(table)_no_update BEFORE UPDATE ON \(table)
            BEGIN SELECT RAISE(ABORT, '\(table) is append-only: UPDATE refused'); END;
        CREATE TRIGGER \(table)_no_delete BEFORE DELETE ON \(table)
            BEGIN SELECT RAISE(ABORT, '\(table) is append-only: DELETE refused'); END;
        CREATE TRIGGER \(metaTable)_no_update BEFORE UPDATE ON \(metaTable)
            BEGIN SELECT RAISE(ABORT, '\(metaTable) is append-only: UPDATE refused'); END;
        CREATE TRIGGER \(metaTable)_no_delete BEFORE DELETE ON \(metaTable)
            BEGIN SELECT RAISE(ABORT, '\(metaTable) is append-only: DELETE refused'); END;
        PRAGMA application_id = \(applicationID);
        PRAGMA user_version = \(version);
        """
}
