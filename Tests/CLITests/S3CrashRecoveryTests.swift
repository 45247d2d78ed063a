import Activation
import AuditLog
import Foundation
import RistrettoPSI
import S3Delivery
import TestSupport
import Testing
import Workflow

/// The crash window between an S3 delivery's manifest and its audit entry, made deterministic as
/// in `CoordinatorRecoveryTests` (a ledger that dies instead of recording the delivery), against
/// the real local S3 server: the coordinator's role can only write there, so a retry relies on
/// its write-ahead intent record, never on a read. See `S3Server` for how the server is found.
@Suite(
    "Crash recovery with an S3 destination", .serialized,
    .enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct S3CrashRecoveryTests {
    typealias Room = PrivacyGuardsTests.Room

    /// A room whose agreement delivers to a freshly provisioned bucket through the provider's role.
    static func room() throws -> (Room, S3Server.Provisioned) {
        let collab = AgreementTerms.newID()
        let external = AgreementTerms.newID()
        let p = try S3Server.provision(collaborationID: collab, externalID: external)
        let room = try Room(
            .init(minConsumerRows: 10, minMatchedRows: 5), collaborationID: collab, externalID: external,
            destination: .init(
                kind: "s3", bucket: p.location.bucket, prefix: p.location.prefix, region: S3Server.region,
                roleARN: p.roleARN))
        return (room, p)
    }

    static func destination(_ room: Room, _ p: S3Server.Provisioned) throws -> DeliveryDestination {
        try Steps.destination(for: room.agreement, environment: AWSEnvironment(p.coordinatorEnvironment))
    }

    static func match(
        _ room: Room, _ p: S3Server.Provisioned, _ run: String, ledger: (AuditLedger) -> RunLedger = { $0 }
    ) throws -> Steps.MatchResult {
        let real = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
        return try Steps.coordinatorMatch(
            agreement: room.agreement, identity: room.coordinator, runID: run, exchange: room.exchange,
            destination: try destination(room, p), ledger: ledger(real), store: room.store)
    }

    /// The first attempt: objects and manifest written, killed before the audit entry.
    static func crashAfterManifest(_ room: Room, _ p: S3Server.Provisioned, _ run: String) throws {
        #expect(throws: CoordinatorRecoveryTests.DiesBeforeRecordingDelivery.Died.self) {
            try match(room, p, run, ledger: { CoordinatorRecoveryTests.DiesBeforeRecordingDelivery(real: $0) })
        }
        #expect(try room.entry(run) == nil, "killed before the audit entry")
        #expect(
            try S3Server.keys(p.location.bucket, prefix: p.location.key(p.collaborationID, run)).contains(
                manifestKey(p, run)))
    }

    static func manifestKey(_ p: S3Server.Provisioned, _ run: String) -> String {
        p.location.key(p.collaborationID, run, "manifest.json")
    }
    static func intentPath(_ room: Room, _ run: String) -> String {
        "\(room.store.root)/\(room.collaboration)/\(run).intent"
    }

    static func expectOpens(_ room: Room, _ p: S3Server.Provisioned, _ run: String) throws {
        let source = try Steps.destination(
            for: room.agreement, access: .provider, environment: AWSEnvironment(S3Server.providerEnvironment))
        let n = try Steps.providerOpen(
            agreement: room.agreement, identity: room.provider, runID: run, source: source,
            output: "\(room.root)/matched-\(run).csv")
        #expect(n == room.data.expectedAudienceKeys.count)
    }

    @Test func retryRecordsTheCommittedDeliveryFromItsIntentRecord() throws {
        let (room, p) = try Self.room()
        let run = try room.prepare()
        try Self.crashAfterManifest(room, p, run)
        let keysBefore = try S3Server.keys(p.location.bucket, prefix: p.location.key(p.collaborationID, run))
        let manifest = try S3Server.object(p.location.bucket, key: Self.manifestKey(p, run))

        // The intent record: private (0600), names no identifier, holds the committed manifest's hash.
        let intentPath = Self.intentPath(room, run)
        let attrs = try FileManager.default.attributesOfItem(atPath: intentPath)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let intent = try String(contentsOfFile: intentPath, encoding: .utf8)
        #expect(intent.contains(Hex.encode(SHA256.hash(manifest))))
        for key in room.data.expectedAudienceKeys.prefix(20) { #expect(!intent.contains(key)) }
        #expect(!intent.contains("@"), "no e-mail address")

        let retry = try Self.match(room, p, run)
        #expect(retry.kind == .delivered)
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .delivered)
        #expect(
            e.event.deliveryManifestSHA256?.bytes == SHA256.hash(manifest),
            "the entry names the manifest actually committed")
        #expect(
            try S3Server.keys(p.location.bucket, prefix: p.location.key(p.collaborationID, run)) == keysBefore,
            "nothing re-delivered")
        #expect(
            try S3Server.object(p.location.bucket, key: Self.manifestKey(p, run)) == manifest,
            "the manifest is untouched")
        #expect(!FileManager.default.fileExists(atPath: intentPath), "the intent is dropped once recorded")
        #expect(try room.verifies() == 1)
        try Self.expectOpens(room, p, run)
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
        // A third attempt is refused: the run has its entry now.
        #expect(throws: ActivationError(.runAlreadyUsed, "")) { try Self.match(room, p, run) }
    }

    /// Killed after the intent record but before the manifest PUT: every object is in the bucket,
    /// no manifest. The retry's objects are byte-identical, so its manifest commits the delivery.
    @Test func retryCommitsTheManifestAKilledAttemptNeverWrote() throws {
        let (room, p) = try Self.room()
        let run = try room.prepare()
        try Self.crashAfterManifest(room, p, run)
        // as if the kill came just before it
        try S3Server.deleteObject(p.location.bucket, key: Self.manifestKey(p, run))

        #expect(try Self.match(room, p, run).kind == .delivered)
        let manifest = try S3Server.object(p.location.bucket, key: Self.manifestKey(p, run))
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .delivered)
        #expect(e.event.deliveryManifestSHA256?.bytes == SHA256.hash(manifest))
        try Self.expectOpens(room, p, run)
    }

    /// Objects in the run's place with no intent record of this coordinator: someone else's, or
    /// a record lost with the coordinator's disk. Refused and recorded, nothing written.
    @Test func withoutAnIntentRecordTheRetryIsRefused() throws {
        let (room, p) = try Self.room()
        let run = try room.prepare()
        try Self.crashAfterManifest(room, p, run)
        try FileManager.default.removeItem(atPath: Self.intentPath(room, run))
        let manifest = try S3Server.object(p.location.bucket, key: Self.manifestKey(p, run))
        #expect(throws: AWSError(.alreadyExists, "")) { try Self.match(room, p, run) }
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .failed && e.event.reasonCode == "aws.s3.already_exists")
        #expect(try S3Server.object(p.location.bucket, key: Self.manifestKey(p, run)) == manifest)
    }

    /// An intent whose objects differ from this attempt's: no manifest may be written, and whether
    /// one exists cannot be learnt without a read. Refused with its own code.
    @Test func anIntentForOtherObjectsIsRefusedAsUnconfirmed() throws {
        let (room, p) = try Self.room()
        let run = try room.prepare()
        try Self.crashAfterManifest(room, p, run)
        try S3Server.deleteObject(p.location.bucket, key: Self.manifestKey(p, run))
        let path = Self.intentPath(room, run)
        var record =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        record["objectsDigest"] = String(repeating: "0", count: 64)
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))
        #expect(throws: WorkflowError(.deliveryUnconfirmed, "")) { try Self.match(room, p, run) }
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .failed && e.event.reasonCode == "workflow.delivery_unconfirmed")
        #expect(
            !(try S3Server.keys(p.location.bucket, prefix: p.location.key(p.collaborationID, run)).contains(
                Self.manifestKey(p, run))),
            "no manifest was written for objects it does not describe")
    }
}
