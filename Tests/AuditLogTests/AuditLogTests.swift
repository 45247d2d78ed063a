import AuditLog
import CSQLite
import Foundation
import RistrettoPSI
import Testing

@Suite("Audit log: append, read, query, validate")
struct AuditLogBasicsTests {
    @Test("append and read back: every field, the chain links and the signatures")
    func appendAndReadBack() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let db = scratch.path("audit.db")
        let written = try Fixture.log(at: db, key: key, count: 4)
        let log = try AuditLog.openReadOnly(at: db)
        let read = try log.entries()
        #expect(read == written)
        #expect(read.map(\.sequence) == [1, 2, 3, 4])
        #expect(read[0].previousHash == AuditChain.genesisPreviousHash)
        for i in 1..<read.count { #expect(read[i].previousHash == read[i - 1].entryHash) }
        for e in read {
            #expect(AuditChain.recomputedHash(of: e) == e.entryHash)
            #expect(key.verifyingKey.isValidSignature(e.signature, for: e.entryHash.bytes))
        }
        #expect(read[1].event.kind == .rejected && read[1].event.reasonCode == "agreement.expired")
        #expect(read[0].recordedAtISO8601 == "2026-05-28T20:26:40.000Z")
        #expect(log.recordedCoordinatorKey == key.verifyingKey)
        #expect(log.schemaVersion == 2)
        let v = try log.verify(pinnedKey: key.verifyingKey)
        #expect(v.entryCount == 4 && v.headSequence == 4 && v.headHash == read[3].entryHash && v.keySource == .pinned)
        #expect(!v.reliedOnDatabaseKeyOnly)
        #expect(try log.verify().reliedOnDatabaseKeyOnly)
    }

    @Test("the log is durable WAL with synchronous=FULL, and carries its application ID and version")
    func pragmas() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let db = scratch.path("audit.db")
        try Fixture.log(at: db, key: SigningKey.generate(), count: 1)
        #expect(RawSQL.int(db, "PRAGMA application_id") == 0x434C_524D)
        #expect(RawSQL.int(db, "PRAGMA user_version") == 2)
        // journal_mode=WAL is persistent in the file header (bytes 18 and 19 are 2).
        let header = [UInt8](FileManager.default.contents(atPath: db)!.prefix(20))
        #expect(header[18] == 2 && header[19] == 2)
    }

    @Test("queries: window by collaboration, counts by kind since a time, latest entry of a run")
    func queries() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let db = scratch.path("audit.db")
        let log = try AuditLog.create(at: db, coordinatorKey: key.verifyingKey)
        let t0 = Date(timeIntervalSince1970: 1_790_000_000)
        _ = try log.append(Fixture.event(.rejected, run: "run-a"), signedBy: key, at: t0)
        _ = try log.append(Fixture.event(.delivered, run: "run-a"), signedBy: key, at: t0.addingTimeInterval(3600))
        _ = try log.append(
            Fixture.event(.delivered, collaboration: "collab-other", run: "run-b"), signedBy: key,
            at: t0.addingTimeInterval(3700))
        _ = try log.append(Fixture.event(.belowThreshold, run: "run-c"), signedBy: key, at: t0.addingTimeInterval(7200))

        let window = try log.entries(
            collaborationID: Fixture.collaboration, from: t0.addingTimeInterval(1), to: t0.addingTimeInterval(7200))
        #expect(window.map(\.event.runID) == ["run-a"])
        #expect(window.first?.event.kind == .delivered)
        #expect(try log.entries(collaborationID: Fixture.collaboration).count == 3)

        let counts = try log.eventCounts(collaborationID: Fixture.collaboration, since: t0.addingTimeInterval(1))
        #expect(counts == [.delivered: 1, .belowThreshold: 1, .rejected: 0, .failed: 0])
        #expect(try log.eventCounts(collaborationID: "collab-none", since: t0).values.allSatisfy { $0 == 0 })

        #expect(try log.latestEntry(runID: "run-a")?.sequence == 2)
        #expect(try log.latestEntry(runID: "run-a")?.event.kind == .delivered)
        #expect(try log.latestEntry(runID: "run-zzz") == nil)
        #expect(try log.count() == 4)
    }

    /// One invalid event per rule; `field` is what the error reason must name.
    enum BadEvent: String, CaseIterable, Sendable {
        case emailAsCollaboration, phoneAsRun, longRun, emptyRun, pathAsRun, emailAsReason, freeTextReason
        case missingReason, freeTextVersion, negativeCount, deliveredWithoutManifest, belowThresholdWithDelivery

        var field: String {
            switch self {
            case .emailAsCollaboration: "collaboration_id"
            case .phoneAsRun, .longRun, .emptyRun, .pathAsRun: "run_id"
            case .emailAsReason, .freeTextReason, .missingReason: "reason_code"
            case .freeTextVersion: "protocol_version"
            case .negativeCount: "consumer_rows_processed"
            case .deliveredWithoutManifest: "delivery_manifest_sha256"
            case .belowThresholdWithDelivery: "matched_rows_delivered"
            }
        }

        func apply(_ e: inout AuditEvent) {
            func failed(_ reason: String?) {
                e.kind = .failed
                e.matchedRowsDelivered = 0
                e.deliveredObjectCount = 0
                e.deliveryManifestSHA256 = nil
                e.reasonCode = reason
            }
            switch self {
            case .emailAsCollaboration: e.collaborationID = Marker.email
            case .phoneAsRun: e.runID = Marker.phone
            case .longRun: e.runID = String(repeating: "a", count: 65)
            case .emptyRun: e.runID = ""
            case .pathAsRun: e.runID = "../etc/passwd"
            case .emailAsReason: failed(Marker.email)
            case .freeTextReason: failed("Free text")
            case .missingReason: failed(nil)
            case .freeTextVersion: e.protocolVersion = "v1 (beta)"
            case .negativeCount: e.consumerRowsProcessed = -1
            case .deliveredWithoutManifest: e.deliveryManifestSHA256 = nil
            case .belowThresholdWithDelivery:
                e.kind = .belowThreshold
                e.deliveryManifestSHA256 = nil
            }
        }
    }

    @Test(
        "field validation rejects what could carry personal data or free text, and writes nothing",
        arguments: BadEvent.allCases)
    func validation(bad: BadEvent) throws {
        let field = bad.field
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let db = scratch.path("audit.db")
        let log = try AuditLog.create(at: db, coordinatorKey: key.verifyingKey)
        _ = try log.append(Fixture.event(), signedBy: key)
        var event = Fixture.event(run: "run-2")
        bad.apply(&event)
        let error = #expect(throws: AuditLogError(.invalidField)) { _ = try log.append(event, signedBy: key) }
        #expect(error?.reason.contains(field) == true, "reason should name \(field): \(error?.reason ?? "")")
        for m in Marker.all { #expect(error?.description.contains(m) == false) }
        #expect(try log.count() == 1)
    }

    @Test("append refuses a key other than the recorded coordinator key; read-only handles cannot append")
    func appendKeyAndMode() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let db = scratch.path("audit.db")
        try Fixture.log(at: db, key: key, count: 1)
        let log = try AuditLog.openForAppend(at: db)
        #expect(throws: AuditLogError(.keyMismatch)) {
            _ = try log.append(Fixture.event(run: "run-9"), signedBy: SigningKey.generate())
        }
        #expect(throws: AuditLogError(.keyMismatch)) {
            _ = try AuditLog.openOrCreate(at: db, coordinatorKey: SigningKey.generate().verifyingKey)
        }
        let ro = try AuditLog.openReadOnly(at: db)
        #expect(throws: AuditLogError(.io)) { _ = try ro.append(Fixture.event(run: "run-9"), signedBy: key) }
        #expect(throws: AuditLogError(.io)) { _ = try AuditLog.create(at: db, coordinatorKey: key.verifyingKey) }
        #expect(try log.append(Fixture.event(run: "run-9"), signedBy: key).sequence == 2)
    }

    @Test("the schema's triggers refuse UPDATE and DELETE, on entries and on metadata")
    func triggersRefuseChanges() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let key = SigningKey.generate()
        let db = scratch.path("audit.db")
        try Fixture.log(at: db, key: key, count: 3)
        let before = fileDigest(db)
        for sql in [
            "UPDATE clean_room_audit_log SET consumer_rows_processed = 1 WHERE sequence = 2",
            "DELETE FROM clean_room_audit_log WHERE sequence = 3",
            "DELETE FROM clean_room_audit_log",
            "UPDATE clean_room_audit_meta SET value = 'x' WHERE key = 'coordinator_public_key'",
            "DELETE FROM clean_room_audit_meta",
        ] {
            let r = RawSQL.exec(db, sql)
            #expect(r.rc == SQLITE_CONSTRAINT, "\(sql) was not refused")
            #expect(r.message.contains("append-only"))
        }
        #expect(fileDigest(db) == before)
        #expect(try AuditLog.openReadOnly(at: db).verify(pinnedKey: key.verifyingKey).entryCount == 3)
    }

    @Test("canonical encoding, entry hash and signature match the spec's worked example")
    func workedExample() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Protocol/vectors/audit-entry-v1.json")
        let data = try #require(FileManager.default.contents(atPath: url.path))
        let vectors = try JSONDecoder().decode(AuditVectorFile.self, from: data).vectors
        #expect(vectors.count == 2)
        for vector in vectors { try check(vector) }
    }

    func check(_ vector: AuditVector) throws {
        var seed = try #require(Hex.decode(vector.coordinator_seed))
        let key = try seed.withUnsafeBytes { try SigningKey(seed: $0) }
        #expect(key.verifyingKey.hex == vector.coordinator_public_key)
        let event = AuditEvent(
            collaborationID: vector.collaboration_id, runID: vector.run_id,
            kind: try #require(AuditEventKind(rawValue: vector.event_kind)),
            consumerRowsProcessed: vector.consumer_rows_processed,
            consumerIdentifiersProcessed: vector.consumer_identifiers_processed,
            matchedRowsDelivered: vector.matched_rows_delivered, deliveredObjectCount: vector.delivered_object_count,
            deliveryManifestSHA256: try vector.delivery_manifest_sha256.map { try AuditDigest(hex: $0) },
            agreementSHA256: try vector.agreement_sha256.map { try AuditDigest(hex: $0) },
            protocolVersion: vector.protocol_version, normalizationRulesVersion: vector.normalization_rules_version,
            reasonCode: vector.reason_code)
        try event.validate()
        let previous = try AuditDigest(hex: vector.previous_hash)
        let bytes = AuditChain.canonicalBytes(
            sequence: vector.sequence, entryID: vector.entry_id,
            recordedAtMilliseconds: vector.recorded_at_ms, event: event, previousHash: previous)
        #expect(Hex.encode(bytes) == vector.canonical_bytes)
        let hash = AuditChain.entryHash(
            sequence: vector.sequence, entryID: vector.entry_id,
            recordedAtMilliseconds: vector.recorded_at_ms, event: event, previousHash: previous)
        #expect(hash.hex == vector.entry_hash)
        #expect(Hex.encode(key.signature(for: hash.bytes)) == vector.signature)  // Ed25519 is deterministic
        SecureBytes.zero(&seed)
    }
}

/// `Protocol/vectors/audit-entry-v1.json`.
struct AuditVectorFile: Decodable {
    let source: String
    let vectors: [AuditVector]
}

struct AuditVector: Decodable {
    let coordinator_seed: String
    let coordinator_public_key: String
    let sequence: Int64
    let entry_id: String
    let collaboration_id: String
    let run_id: String
    let event_kind: String
    let recorded_at_ms: Int64
    let consumer_rows_processed: Int
    let consumer_identifiers_processed: Int
    let matched_rows_delivered: Int
    let delivered_object_count: Int
    let delivery_manifest_sha256: String?
    let agreement_sha256: String?
    let protocol_version: String
    let normalization_rules_version: String
    let reason_code: String?
    let previous_hash: String
    let canonical_bytes: String
    let entry_hash: String
    let signature: String
}

@Suite("Audit log: secrets")
struct AuditSecretTests {
    @Test("a coordinator key's description, debug description and reflection reveal nothing of the seed")
    func keyDescriptions() throws {
        let key = SigningKey.generate()
        let seedHex = key.withSeed { Hex.encode($0) }
        var dumped = ""
        dump(key, to: &dumped)
        for text in [String(describing: key), String(reflecting: key), dumped, "\(key)"] {
            #expect(!text.contains(seedHex))
            #expect(!text.contains(String(seedHex.prefix(16))))
            #expect(text.contains("redacted"))
        }
    }

    @Test("the key file is 0600, round-trips, and a group-readable file is refused without echoing the seed")
    func keyFile() throws {
        let scratch = try Scratch()
        let path = scratch.path("coordinator.key")
        let key = SigningKey.generate()
        try CoordinatorKeyFile.write(key, to: path)
        let mode = try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        #expect(try CoordinatorKeyFile.read(from: path).verifyingKey == key.verifyingKey)
        #expect(throws: AuditLogError(.io)) { try CoordinatorKeyFile.write(key, to: path) }  // never overwritten
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        let error = #expect(throws: AuditLogError(.invalidKey)) { _ = try CoordinatorKeyFile.read(from: path) }
        let seedHex = key.withSeed { Hex.encode($0) }
        #expect(error?.description.contains(seedHex) == false)
    }
}
