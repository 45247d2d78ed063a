import AuditLog
import CSQLite
import Foundation
import RistrettoPSI
import TestSupport
import Testing

/// Every tampering an attacker with write access to the file can do, and the check that catches it.
@Suite("Audit log: tamper evidence")
struct TamperTests {
    let scratch: Scratch
    let key = SigningKey.generate()
    let db: String
    let entries: [AuditEntry]

    init() throws {
        scratch = try Scratch()
        db = scratch.path("audit.db")
        entries = try Fixture.log(at: db, key: key, count: 5)
    }

    func verify(pinned: Bool = true, checkpoint: AuditCheckpoint? = nil) throws -> AuditVerification {
        try AuditLog.openReadOnly(at: db).verify(pinnedKey: pinned ? key.verifyingKey : nil, checkpoint: checkpoint)
    }

    @Test("an edited field (trigger dropped, value changed) breaks the entry hash")
    func editedField() throws {
        defer { scratch.expectNoMarkers() }
        RawSQL.tamper(
            db,
            "UPDATE clean_room_audit_log SET matched_rows_delivered = 0, delivered_object_count = 0, consumer_rows_processed = 1 WHERE sequence = 3"
        )
        let error = #expect(throws: AuditLogError(.chainBroken)) { _ = try verify() }
        #expect(error?.sequence == 3)
        #expect(error?.reason.contains("edited") == true)
    }

    @Test("a deleted row leaves a sequence gap")
    func deletedRow() throws {
        defer { scratch.expectNoMarkers() }
        RawSQL.tamper(db, "DELETE FROM clean_room_audit_log WHERE sequence = 3")
        let error = #expect(throws: AuditLogError(.chainBroken)) { _ = try verify() }
        #expect(error?.sequence == 4)
    }

    @Test("a deleted row with the later rows renumbered breaks the previous-hash link")
    func deletedAndRenumbered() throws {
        defer { scratch.expectNoMarkers() }
        RawSQL.tamper(
            db,
            """
            DELETE FROM clean_room_audit_log WHERE sequence = 3;
            UPDATE clean_room_audit_log SET sequence = sequence + 100 WHERE sequence > 3;
            UPDATE clean_room_audit_log SET sequence = sequence - 101 WHERE sequence > 100;
            """)
        let error = #expect(throws: AuditLogError(.chainBroken)) { _ = try verify() }
        #expect(error?.sequence == 3)
    }

    @Test("a row inserted in the middle breaks the chain even when signed with the real key")
    func insertedInMiddle() throws {
        defer { scratch.expectNoMarkers() }
        let forged = forgedEntry(
            sequence: 3, event: Fixture.event(.delivered, run: "run-backdated"), previous: entries[1].entryHash,
            key: key)
        RawSQL.tamper(
            db,
            """
            UPDATE clean_room_audit_log SET sequence = sequence + 100 WHERE sequence >= 3;
            UPDATE clean_room_audit_log SET sequence = sequence - 99 WHERE sequence > 100;
            \(RawSQL.insertSQL(forged))
            """)
        #expect(RawSQL.int(db, "SELECT count(*) FROM clean_room_audit_log") == 6)
        let error = #expect(throws: AuditLogError(.chainBroken)) { _ = try verify() }
        #expect(error?.sequence == 4)
    }

    @Test("a row appended at the end by someone without the coordinator key fails its signature")
    func insertedAtEnd() throws {
        defer { scratch.expectNoMarkers() }
        let forged = forgedEntry(
            sequence: 6, event: Fixture.event(.delivered, run: "run-forged"), previous: entries[4].entryHash,
            key: SigningKey.generate())
        RawSQL.tamper(db, RawSQL.insertSQL(forged))  // triggers do not refuse INSERT; the signature does
        let error = #expect(throws: AuditLogError(.signatureInvalid)) { _ = try verify() }
        #expect(error?.sequence == 6)
        // …and the coordinator refuses to extend the forged head.
        let log = try AuditLog.openForAppend(at: db)
        #expect(throws: AuditLogError(.signatureInvalid)) {
            _ = try log.append(Fixture.event(run: "run-7"), signedBy: key)
        }
    }

    @Test("swapping two rows is detected")
    func reordered() throws {
        defer { scratch.expectNoMarkers() }
        RawSQL.tamper(
            db,
            """
            UPDATE clean_room_audit_log SET sequence = 100 WHERE sequence = 2;
            UPDATE clean_room_audit_log SET sequence = 2 WHERE sequence = 3;
            UPDATE clean_room_audit_log SET sequence = 3 WHERE sequence = 100;
            """)
        let error = #expect(throws: AuditLogError(.chainBroken)) { _ = try verify() }
        #expect(error?.sequence == 2)
    }

    @Test("removing the tail passes the chain alone but fails against a saved checkpoint")
    func truncatedTail() throws {
        defer { scratch.expectNoMarkers() }
        let checkpoint = try AuditLog.openReadOnly(at: db).checkpoint(pinnedKey: key.verifyingKey)
        #expect(checkpoint.sequence == 5 && checkpoint.headHash == entries[4].entryHash)
        // The checkpoint survives its JSON file.
        let path = scratch.path("checkpoint.json")
        try checkpoint.write(to: path)
        let reread = try AuditCheckpoint.read(from: path)
        #expect(
            reread.sequence == 5 && reread.headHash == checkpoint.headHash && reread.coordinatorKey == key.verifyingKey)
        #expect(try verify(checkpoint: reread).checkpointSequence == 5)

        RawSQL.tamper(db, "DELETE FROM clean_room_audit_log WHERE sequence >= 4")
        #expect(try verify().entryCount == 3)  // a valid prefix: the chain alone cannot see a removed tail
        let error = #expect(throws: AuditLogError(.truncated)) { _ = try verify(pinned: false, checkpoint: reread) }
        #expect(error?.reason.contains("entry 3") == true && error?.reason.contains("entry 5") == true)
    }

    @Test("a log rewritten by the key holder after a checkpoint fails the checkpoint's head hash")
    func rewrittenAfterCheckpoint() throws {
        defer { scratch.expectNoMarkers() }
        let checkpoint = try AuditLog.openReadOnly(at: db).checkpoint()
        // The coordinator replays a different history under the same key.
        let other = scratch.path("rewritten.db")
        try Fixture.log(at: other, key: key, count: 6)
        let error = #expect(throws: AuditLogError(.checkpointMismatch)) {
            _ = try AuditLog.openReadOnly(at: other).verify(checkpoint: checkpoint)
        }
        #expect(error?.sequence == 5)
    }

    @Test("replacing the stored key and re-signing passes only without a pinned key, and says so")
    func replacedKeyAndResigned() throws {
        defer { scratch.expectNoMarkers() }
        let checkpoint = try AuditLog.openReadOnly(at: db).checkpoint(pinnedKey: key.verifyingKey)
        let attacker = SigningKey.generate()
        // Edit entry 2, then rebuild the chain from there and re-sign everything with the attacker's key.
        var sql =
            "UPDATE clean_room_audit_meta SET value = '\(attacker.verifyingKey.hex)' WHERE key = 'coordinator_public_key';\n"
        var previous = AuditChain.genesisPreviousHash
        for e in entries {
            var event = e.event
            if e.sequence == 2 { event.consumerRowsProcessed = 1 }
            let hash = AuditChain.entryHash(
                sequence: e.sequence, entryID: e.entryID, recordedAtMilliseconds: e.recordedAtMilliseconds,
                event: event, previousHash: previous)
            sql += """
                UPDATE clean_room_audit_log SET consumer_rows_processed = \(event.consumerRowsProcessed), previous_hash = '\(previous.hex)',
                entry_hash = '\(hash.hex)', signature = '\(Hex.encode(attacker.signature(for: hash.bytes)))' WHERE sequence = \(e.sequence);

                """
            previous = hash
        }
        RawSQL.tamper(db, sql)

        let unpinned = try verify(pinned: false)
        #expect(unpinned.reliedOnDatabaseKeyOnly)
        #expect(unpinned.coordinatorKey == attacker.verifyingKey)
        #expect(throws: AuditLogError(.keyMismatch)) { _ = try verify(pinned: true) }
        #expect(throws: AuditLogError(.keyMismatch)) { _ = try verify(pinned: false, checkpoint: checkpoint) }
    }

    @Test("a re-signed log that kept the original stored key fails every signature")
    func resignedKeepingStoredKey() throws {
        defer { scratch.expectNoMarkers() }
        let attacker = SigningKey.generate()
        let e = entries[4]
        RawSQL.tamper(
            db,
            "UPDATE clean_room_audit_log SET signature = '\(Hex.encode(attacker.signature(for: e.entryHash.bytes)))' WHERE sequence = 5"
        )
        let error = #expect(throws: AuditLogError(.signatureInvalid)) { _ = try verify(pinned: false) }
        #expect(error?.sequence == 5)
    }
}

/// Files that are not (usable) audit logs: a clear error with its code, and the file unchanged.
@Suite("Audit log: bad input")
struct BadInputTests {
    /// Runs the library's read-only open + verify and the CLI's `audit verify`, and checks both
    /// fail with `code` and leave the file's bytes unchanged.
    func expectRejected(_ path: String, _ code: AuditLogError.Code, sourceLocation: SourceLocation = #_sourceLocation)
        throws
    {
        let before = try #require(fileDigest(path))
        let error = #expect(throws: AuditLogError(code), sourceLocation: sourceLocation) {
            _ = try AuditLog.openReadOnly(at: path).verify()
        }
        #expect(
            error?.reason.contains(URL(fileURLWithPath: path).lastPathComponent) == true || error?.sequence != nil,
            "the reason should name the file or the entry: \(error?.description ?? "")", sourceLocation: sourceLocation)
        let cli = try CLI.run(["audit", "verify", "--db", path])
        #expect(cli.status == 1, sourceLocation: sourceLocation)
        #expect(cli.stderr.contains(code.rawValue), "stderr: \(cli.stderr)", sourceLocation: sourceLocation)
        // show verifies first; export checks page integrity only (a tampered log stays exportable).
        let readers =
            code == .chainBroken
            ? [["show", "--collaboration", "c1"]]
            : [["show", "--collaboration", "c1"], ["export", "--format", "csv"]]
        for sub in readers {
            #expect(
                try CLI.run(["audit", sub[0], "--db", path] + sub.dropFirst()).status == 1,
                sourceLocation: sourceLocation)
        }
        #expect(fileDigest(path) == before, "the file was modified", sourceLocation: sourceLocation)
    }

    @Test("a file that is not a database")
    func notADatabase() throws {
        let scratch = try Scratch()
        let path = scratch.path("notes.db")
        try Data(String(repeating: "this is not a database\n", count: 400).utf8).write(to: URL(fileURLWithPath: path))
        try expectRejected(path, .notAnAuditLog)
        // A coordinator opening it for append must not convert it either.
        let before = fileDigest(path)
        #expect(throws: AuditLogError(.notAnAuditLog)) {
            _ = try AuditLog.openOrCreate(at: path, coordinatorKey: SigningKey.generate().verifyingKey)
        }
        #expect(fileDigest(path) == before)
    }

    @Test("an SQLite database that is not an audit log")
    func foreignDatabase() throws {
        let scratch = try Scratch()
        let path = scratch.path("other.db")
        #expect(RawSQL.exec(path, "").rc != SQLITE_OK)  // RawSQL never creates files
        var handle: OpaquePointer?
        #expect(sqlite3_open(path, &handle) == SQLITE_OK)
        #expect(
            sqlite3_exec(
                handle, "CREATE TABLE customers (email TEXT); INSERT INTO customers VALUES ('x')", nil, nil, nil)
                == SQLITE_OK)
        sqlite3_close(handle)
        try expectRejected(path, .notAnAuditLog)
        let before = fileDigest(path)
        #expect(throws: AuditLogError(.notAnAuditLog)) {
            _ = try AuditLog.openOrCreate(at: path, coordinatorKey: SigningKey.generate().verifyingKey)
        }
        #expect(fileDigest(path) == before)
    }

    @Test("a log from a newer schema version")
    func newerSchema() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let path = scratch.path("audit.db")
        try Fixture.log(at: path, key: SigningKey.generate(), count: 2)
        #expect(RawSQL.exec(path, "PRAGMA user_version = 3").rc == SQLITE_OK)
        try expectRejected(path, .newerSchema)
        #expect(throws: AuditLogError(.newerSchema)) { _ = try AuditLog.openForAppend(at: path) }
    }

    @Test("a corrupted page")
    func corruptedPage() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let path = scratch.path("audit.db")
        try Fixture.log(at: path, key: SigningKey.generate(), count: 40)
        let root = RawSQL.int(path, "SELECT rootpage FROM sqlite_schema WHERE name = 'clean_room_audit_log'")
        let pageSize = RawSQL.int(path, "PRAGMA page_size")
        #expect(root > 1 && pageSize > 0)
        // Scribble over the entries table's root page, as a failing disk might.
        var bytes = try #require(FileManager.default.contents(atPath: path))
        let start = Int((root - 1) * pageSize)
        bytes.replaceSubrange(start..<(start + Int(pageSize)), with: [UInt8](repeating: 0xA5, count: Int(pageSize)))
        try bytes.write(to: URL(fileURLWithPath: path))
        try expectRejected(path, .corrupt)
    }

    @Test("a broken chain makes verify exit 1 naming the entry, and leaves the file unchanged")
    func brokenChain() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let path = scratch.path("audit.db")
        try Fixture.log(at: path, key: SigningKey.generate(), count: 3)
        RawSQL.tamper(path, "UPDATE clean_room_audit_log SET consumer_identifiers_processed = 7 WHERE sequence = 2")
        try expectRejected(path, .chainBroken)
        let cli = try CLI.run(["audit", "verify", "--db", path])
        #expect(cli.stderr.contains("entry 2"))
    }

    @Test("read commands never create a database")
    func missingFile() throws {
        let scratch = try Scratch()
        let path = scratch.path("missing.db")
        #expect(throws: AuditLogError(.io)) { _ = try AuditLog.openReadOnly(at: path) }
        #expect(throws: AuditLogError(.io)) { _ = try AuditLog.openForAppend(at: path) }
        for args in [
            ["verify"], ["show", "--collaboration", "c1"], ["export", "--format", "jsonl"],
            ["checkpoint", "--out", scratch.path("cp.json")],
        ] {
            #expect(try CLI.run(["audit", args[0], "--db", path] + args.dropFirst()).status == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: scratch.path("cp.json")))
    }

    @Test(
        "a malformed checkpoint file is refused with its own code",
        arguments: [
            "{}", "not json",
            #"{"format":"CLEANROOM-AUDIT-CHECKPOINT-V1","sequence":-1,"head_hash":"00","coordinator_public_key":"00"}"#,
        ])
    func badCheckpoint(text: String) throws {
        #expect(throws: AuditLogError(.invalidCheckpoint)) { _ = try AuditCheckpoint(jsonData: Data(text.utf8)) }
    }

    /// A checkpoint read back equals the one written, its creation time included (it used to be
    /// read as 0); one without a readable `created_at` is refused.
    @Test(arguments: [Int64(0), 1_733_400_000_123, 1_733_400_000_999, 253_402_300_799_999])
    func checkpointRoundTrip(createdAt: Int64) throws {
        let written = AuditCheckpoint(
            sequence: 7, headHash: try AuditDigest(hex: String(repeating: "ab", count: 32), field: "head_hash"),
            coordinatorKey: SigningKey.generate().verifyingKey, createdAtMilliseconds: createdAt)
        let read = try AuditCheckpoint(jsonData: written.jsonData())
        #expect(read == written)
        var object = try JSONSerialization.jsonObject(with: written.jsonData()) as! [String: Any]
        object["created_at"] = "yesterday"
        let e = #expect(throws: AuditLogError.self) {
            _ = try AuditCheckpoint(jsonData: try JSONSerialization.data(withJSONObject: object))
        }
        #expect(e?.code == .invalidCheckpoint && e?.reason.contains("created_at") == true)
    }
}
