import AuditLog
import CSQLite
import Foundation
import RistrettoPSI
import Testing

/// Personal-data markers. They are fed to the log only through inputs that must be rejected, and
/// every audit database a test writes is scanned for them (``Scratch/expectNoMarkers()``).
enum Marker {
    static let email = "jane.doe@example.com"
    static let phone = "+1 555 0100 jane"
    static let all = [email, phone]
}

/// A per-test scratch directory. Its name contains the e-mail marker, so a log that recorded
/// a file path of a party would fail the marker scan.
final class Scratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("cleanroom-audit-tests")
            .appendingPathComponent("party-\(Marker.email)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Scans every file of the directory that SQLite wrote (`*.db`, `-wal`, `-shm`) for the markers.
    func expectNoMarkers(sourceLocation: SourceLocation = #_sourceLocation) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        var scanned = 0
        for name in names where name.contains(".db") {
            guard let data = FileManager.default.contents(atPath: path(name)) else { continue }
            scanned += 1
            for m in Marker.all {
                #expect(data.range(of: Data(m.utf8)) == nil, "marker found in \(name)", sourceLocation: sourceLocation)
            }
        }
        #expect(scanned > 0, "no audit database was scanned", sourceLocation: sourceLocation)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Test fixtures.
enum Fixture {
    static let collaboration = "collab-2026-q4"
    static let agreement = AuditDigest.sha256(of: Array("agreement v1".utf8))

    static func event(
        _ kind: AuditEventKind = .delivered, collaboration: String = Fixture.collaboration,
        run: String = "run-1", rows: Int = 1000
    ) -> AuditEvent {
        AuditEvent(
            collaborationID: collaboration, runID: run, kind: kind,
            consumerRowsProcessed: rows, consumerIdentifiersProcessed: rows * 2,
            matchedRowsDelivered: kind == .delivered ? rows / 4 : 0,
            deliveredObjectCount: kind == .delivered ? 2 : 0,
            deliveryManifestSHA256: kind == .delivered ? AuditDigest.sha256(of: Array("manifest \(run)".utf8)) : nil,
            agreementSHA256: agreement, protocolVersion: "CLEANROOM-V01", normalizationRulesVersion: "norm-1",
            reasonCode: kind == .rejected ? "agreement.expired" : kind == .failed ? "delivery.s3_unavailable" : nil)
    }

    /// A log at `path` with `count` entries (kinds cycling), closed before returning.
    @discardableResult
    static func log(at path: String, key: SigningKey, count: Int, collaboration: String = Fixture.collaboration) throws
        -> [AuditEntry]
    {
        let log = try AuditLog.create(at: path, coordinatorKey: key.verifyingKey)
        var out: [AuditEntry] = []
        for i in 0..<count {
            let kind = AuditEventKind.allCases[i % AuditEventKind.allCases.count]
            out.append(
                try log.append(
                    event(kind, collaboration: collaboration, run: "run-\(i + 1)", rows: 100 + i), signedBy: key,
                    at: Date(timeIntervalSince1970: 1_780_000_000 + Double(i) * 60)))
        }
        return out
    }
}

/// Direct SQLite access, as an attacker with write access to the file would have.
enum RawSQL {
    struct Outcome {
        let rc: Int32
        let message: String
    }

    @discardableResult
    static func exec(_ path: String, _ sql: String) -> Outcome {
        var db: OpaquePointer?
        // A failed open still allocates a handle (it carries the error message): close it too.
        defer { sqlite3_close_v2(db) }
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, db != nil else {
            return Outcome(rc: -1, message: "cannot open")
        }
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        let message = err.map { String(cString: $0) } ?? ""
        sqlite3_free(err)
        return Outcome(rc: rc, message: message)
    }

    /// Runs `sql` after dropping the append-only triggers, as a tamperer would.
    static func tamper(_ path: String, _ sql: String) {
        let r = exec(
            path,
            """
            DROP TRIGGER clean_room_audit_log_no_update; DROP TRIGGER clean_room_audit_log_no_delete;
            DROP TRIGGER clean_room_audit_meta_no_update; DROP TRIGGER clean_room_audit_meta_no_delete;
            \(sql)
            """)
        #expect(r.rc == SQLITE_OK, "tamper SQL failed: \(r.message)")
    }

    static func int(_ path: String, _ sql: String) -> Int64 {
        var db: OpaquePointer?
        defer { sqlite3_close_v2(db) }
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, nil) == SQLITE_OK, db != nil else { return -1 }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { return -1 }
        defer { sqlite3_finalize(stmt) }
        return sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1
    }

    /// The SQL text of an entry row as an INSERT (for forging rows).
    static func insertSQL(_ e: ForgedEntry) -> String {
        func q(_ s: String?) -> String { s.map { "'\($0)'" } ?? "NULL" }
        let ev = e.event
        return """
            INSERT INTO clean_room_audit_log VALUES (\(e.sequence), \(q(e.entryID)), \(q(ev.collaborationID)), \(q(ev.runID)),
            \(q(ev.kind.rawValue)), \(e.recordedAtMilliseconds), \(ev.consumerRowsProcessed), \(ev.consumerIdentifiersProcessed),
            \(ev.matchedRowsDelivered), \(ev.deliveredObjectCount), \(q(ev.deliveryManifestSHA256?.hex)), \(q(ev.agreementSHA256?.hex)),
            \(q(ev.protocolVersion)), \(q(ev.normalizationRulesVersion)), \(q(ev.reasonCode)), \(q(e.previousHash.hex)),
            \(q(e.entryHash.hex)), \(q(Hex.encode(e.signature))), \(ev.privacyEpsilonMillis.map(String.init) ?? "NULL"));
            """
    }
}

/// A chain entry computed outside the log (the public API has no way to build an `AuditEntry`).
struct ForgedEntry {
    let sequence: Int64
    let entryID: String
    let recordedAtMilliseconds: Int64
    let event: AuditEvent
    let previousHash: AuditDigest
    let entryHash: AuditDigest
    let signature: [UInt8]
}

/// A correctly linked entry signed by any key (for forging rows).
func forgedEntry(
    sequence: Int64, event: AuditEvent, previous: AuditDigest, key: SigningKey, ms: Int64 = 1_780_999_000_000
) -> ForgedEntry {
    let id = Hex.encode(SecureRandom.bytes(16))
    let hash = AuditChain.entryHash(
        sequence: sequence, entryID: id, recordedAtMilliseconds: ms, event: event, previousHash: previous)
    return ForgedEntry(
        sequence: sequence, entryID: id, recordedAtMilliseconds: ms, event: event, previousHash: previous,
        entryHash: hash, signature: key.signature(for: hash.bytes))
}

func fileDigest(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map { SHA256.hash([UInt8]($0)) }
}
