import AuditLog
import CSQLite
import Foundation
import RistrettoPSI
import Testing

/// Schema version 2 (the differential-privacy budget column): a version-1 log is read as is,
/// migrated when opened for writing, and keeps every old hash.
@Suite("Audit log: schema 2 and the migration from 1")
struct MigrationTests {
    /// A version-1 log made the way the previous build made it: this build's log with the
    /// version-2 column dropped and the version set back to 1.
    func versionOneLog(_ scratch: Scratch, key: SigningKey) throws -> (String, [AuditEntry]) {
        let path = scratch.path("audit.db")
        let entries = try Fixture.log(at: path, key: key, count: 4)
        let r = RawSQL.exec(
            path, "ALTER TABLE clean_room_audit_log DROP COLUMN privacy_epsilon_millis; PRAGMA user_version = 1")
        #expect(r.rc == SQLITE_OK, "\(r.message)")
        return (path, entries)
    }

    @Test("a version-1 log is read without change, then migrated by the first writer; old hashes hold")
    func migratesVersionOne() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let (path, entries) = try versionOneLog(scratch, key: key)

        let old = try AuditLog.openReadOnly(at: path)
        #expect(old.schemaVersion == 1)
        #expect(try old.verify(pinnedKey: key.verifyingKey).entryCount == 4)
        #expect(try old.entries().allSatisfy { $0.event.privacyEpsilonMillis == nil })
        #expect(try old.epsilonSpentMillis(collaborationID: Fixture.collaboration) == 0)
        #expect(RawSQL.int(path, "PRAGMA user_version") == 1, "a reader never migrates")

        let log = try AuditLog.openForAppend(at: path)
        #expect(log.schemaVersion == 2)
        #expect(RawSQL.int(path, "PRAGMA user_version") == 2)
        #expect(try log.entries().map(\.entryHash) == entries.map(\.entryHash))
        var e = Fixture.event(run: "run-dp")
        e.privacyEpsilonMillis = 500
        _ = try log.append(e, signedBy: key)
        _ = try log.append(e.with(run: "run-dp-2"), signedBy: key)
        #expect(try log.epsilonSpentMillis(collaborationID: Fixture.collaboration) == 1000)
        #expect(try AuditLog.openReadOnly(at: path).verify(pinnedKey: key.verifyingKey).entryCount == 6)
        // Opening again does not migrate twice.
        #expect(try AuditLog.openForAppend(at: path).schemaVersion == 2)
    }

    @Test("ε is part of the signed hash: editing it breaks the chain")
    func epsilonIsHashed() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let path = scratch.path("audit.db")
        let log = try AuditLog.create(at: path, coordinatorKey: key.verifyingKey)
        var e = Fixture.event(run: "run-dp")
        e.privacyEpsilonMillis = 250
        let entry = try log.append(e, signedBy: key)
        var plain = e
        plain.privacyEpsilonMillis = nil
        #expect(
            AuditChain.canonicalBytes(
                sequence: 1, entryID: entry.entryID, recordedAtMilliseconds: entry.recordedAtMilliseconds,
                event: plain, previousHash: .zero
            ).count + 12
                == AuditChain.canonicalBytes(
                    sequence: 1, entryID: entry.entryID, recordedAtMilliseconds: entry.recordedAtMilliseconds,
                    event: e, previousHash: .zero
                ).count)
        RawSQL.tamper(path, "UPDATE clean_room_audit_log SET privacy_epsilon_millis = 1")
        #expect(throws: AuditLogError(.chainBroken)) {
            try AuditLog.openReadOnly(at: path).verify(pinnedKey: key.verifyingKey)
        }
        #expect(RawSQL.exec(path, "UPDATE clean_room_audit_log SET privacy_epsilon_millis = NULL").rc == SQLITE_OK)
        #expect(throws: AuditLogError(.chainBroken)) {
            try AuditLog.openReadOnly(at: path).verify(pinnedKey: key.verifyingKey)
        }
    }

    @Test("a non-positive ε is refused before anything is written")
    func invalidEpsilon() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let log = try AuditLog.create(at: scratch.path("audit.db"), coordinatorKey: key.verifyingKey)
        var e = Fixture.event()
        e.privacyEpsilonMillis = 0
        #expect(throws: AuditLogError(.invalidField)) { try log.append(e, signedBy: key) }
        #expect(try log.count() == 0)
    }
}

extension AuditEvent {
    func with(run: String) -> AuditEvent {
        var e = self
        e.runID = run
        return e
    }
}
