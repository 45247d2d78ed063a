import Activation
import AuditLog
import Foundation
import RistrettoPSI

/// The coordinator's ledger backed by the `Clean_Room_Audit_Log` (SQLite): run history for the
/// privacy rules, and one signed, hash-chained entry per run.
/// - SeeAlso: `Protocol/AUDIT_LOG.md`; `Protocol/SPEC.md` §6 round 5.
public final class AuditLedger: RunLedger {
    let log: AuditLog
    let signingKey: SigningKey
    let rulesVersion: String

    /// Opens (or creates, recording the coordinator's public key) the audit database at `path`.
    public init(path: String, signingKey: SigningKey, agreement: VerifiedAgreement) throws(AuditLogError) {
        log = try AuditLog.openOrCreate(at: path, coordinatorKey: signingKey.verifyingKey)
        guard log.recordedCoordinatorKey == signingKey.verifyingKey else {
            throw AuditLogError(.signatureInvalid, "'\(path)' belongs to another coordinator key")
        }
        self.signingKey = signingKey
        self.rulesVersion = "norm-\(agreement.terms.matching.rulesVersion)"
    }

    /// Reads the collaboration's entries for the privacy rules: every run ID used, the runs of the
    /// last `windowSeconds` before `now` that count toward the cap (every outcome but a refusal;
    /// a near-duplicate refusal counts too), and the ε spent.
    /// - Throws: `AuditLogError` when the log cannot be read.
    /// - SeeAlso: `Protocol/SPEC.md` §9.1.
    public func history(collaborationID: String, windowSeconds: Int, now: Date) throws -> RunHistory {
        // Every run that reached matching counts toward the cap, refused ones do not; except a
        // near-duplicate refusal, which is decided on the matched set: counting it stops a
        // consumer from probing the similarity threshold for free (SPEC §9.1).
        let since = now.addingTimeInterval(-Double(windowSeconds))
        var runs = 0
        var used = Set<String>()
        for e in try log.entries(collaborationID: collaborationID) {
            used.insert(e.event.runID)
            guard e.recordedAt >= since else { continue }
            if e.event.kind != .rejected || e.event.reasonCode == ActivationError.Code.nearDuplicateRun.rawValue {
                runs += 1
            }
        }
        return RunHistory(
            usedRunIDs: used, runsInWindow: runs,
            epsilonSpentMillis: try log.epsilonSpentMillis(collaborationID: collaborationID))
    }

    /// Appends the run's entry, signed with the coordinator's key. Only a delivery records matched
    /// rows, and under differential privacy only the noisy count.
    /// - Throws: `AuditLogError` (e.g. `audit.invalid_field` for a field outside its rule, nothing
    ///   appended; `audit.io`).
    /// - SeeAlso: `Protocol/AUDIT_LOG.md`; `Protocol/SPEC.md` §6 round 5.
    public func record(_ e: RunEvent) throws {
        let kind: AuditEventKind
        switch e.kind {
        case .delivered: kind = .delivered
        case .rejected: kind = .rejected
        case .belowThreshold: kind = .belowThreshold
        case .failed: kind = .failed
        }
        let event = AuditEvent(
            collaborationID: e.collaborationID, runID: e.runID, kind: kind,
            consumerRowsProcessed: e.counts.consumerRows, consumerIdentifiersProcessed: e.counts.consumerIdentifiers,
            // Under differential privacy the consumer-visible count is the noisy one: the exact
            // count never reaches the log (SPEC §9.1).
            matchedRowsDelivered: e.kind == .delivered ? e.counts.consumerVisibleMatchedRows : 0,
            deliveredObjectCount: e.deliveredObjects,
            deliveryManifestSHA256: try e.manifestSHA256.map { try AuditDigest(bytes: $0) },
            agreementSHA256: try AuditDigest(bytes: e.agreementHash),
            protocolVersion: "\(DomainSeparation.protocolName)-\(DomainSeparation.protocolVersion)",
            normalizationRulesVersion: rulesVersion, reasonCode: e.reasonCode,
            privacyEpsilonMillis: e.counts.epsilonMillis)
        _ = try log.append(event, signedBy: signingKey)
    }

    /// The consumer's view of a collaboration: one line per run, counts and statuses only.
    public func consumerView(collaborationID: String) throws -> String {
        try log.entries(collaborationID: collaborationID).map { e in
            "  #\(e.sequence) \(e.recordedAtISO8601) run \(e.event.runID): \(e.event.kind.rawValue), \(e.event.consumerRowsProcessed) consumer rows, \(e.event.consumerIdentifiersProcessed) identifiers, \(e.event.matchedRowsDelivered) matched rows delivered in \(e.event.deliveredObjectCount) objects"
                + (e.event.reasonCode.map { " (\($0))" } ?? "")
                + (e.event.privacyEpsilonMillis.map { ", noisy count, ε \(PrivacyGuards.epsilonText($0)) spent" } ?? "")
        }.joined(separator: "\n")
    }
}
