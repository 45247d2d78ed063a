import Foundation
import RistrettoPSI
import Gzip

/// What the coordinator knows of earlier runs of this collaboration (read from the audit log at
/// the edge, so the role itself does no I/O).
public struct RunHistory: Sendable {
    /// Run IDs that already have an audit entry, whatever its outcome: a run ID is used once.
    public var usedRunIDs: Set<String>
    /// Runs of this collaboration inside the agreement's window, for frequency capping.
    public var runsInWindow: Int
    /// ε (in thousandths) this collaboration has spent so far, summed from the audit log.
    public var epsilonSpentMillis: Int
    /// Sketches of earlier runs' matched sets, from the coordinator-private store.
    public var sketches: [RunSketch]
    public init(usedRunIDs: Set<String> = [], runsInWindow: Int = 0, epsilonSpentMillis: Int = 0, sketches: [RunSketch] = []) {
        self.usedRunIDs = usedRunIDs; self.runsInWindow = runsInWindow
        self.epsilonSpentMillis = epsilonSpentMillis; self.sketches = sketches
    }
}

/// Counts of one run: all the consumer ever learns (through the audit log).
public struct MatchCounts: Sendable, Equatable {
    public var consumerRows = 0
    public var consumerIdentifiers = 0
    public var providerElements = 0
    public var matchedElements = 0
    public var matchedRows = 0
    /// Under differential privacy: the noisy matched count, the only one the consumer may see.
    public var noisyMatchedRows: Int?
    /// Under differential privacy: the ε (thousandths) this run spent.
    public var epsilonMillis: Int?
    /// The run's matched-set sketch, for the coordinator-private store (never the audit log).
    public var sketch: RunSketch?
    public init() {}

    /// The matched count the audit log may show the consumer: noisy under differential privacy.
    public var consumerVisibleMatchedRows: Int { noisyMatchedRows ?? matchedRows }
}

/// The coordinator's decision for a run.
public enum MatchOutcome: Sendable {
    /// At least k provider rows matched: deliver these objects, then the manifest.
    case deliver(DeliveryPlan, MatchCounts)
    /// Fewer than k provider rows matched: nothing is delivered.
    case belowThreshold(MatchCounts)
}

/// The coordinator: verifies every message, intersects doubly-blinded values, and builds the
/// provider's delivery. Does no I/O.
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5.
public struct Coordinator: Sendable {
    public let agreement: VerifiedAgreement
    let identity: PartyIdentity
    /// Records per delivered object.
    public var recordsPerObject = 1_000_000

    public init(agreement: VerifiedAgreement, identity: PartyIdentity) throws(ActivationError) {
        guard identity.signingKey.verifyingKey == agreement.coordinatorKey,
              identity.sealingKey.publicKey == agreement.coordinatorSealingKey else {
            throw ActivationError(.agreementSignatureInvalid, "this identity is not the coordinator named in the agreement")
        }
        self.agreement = agreement
        self.identity = identity
    }

    /// Round 5: match one run.
    /// - Throws: ``ActivationError`` for any message that fails a check, a reused run ID, a run
    ///   over the frequency cap, or too few consumer identifiers; nothing is delivered then.
    public func match(runID: String, payload: ProviderPayload, consumerSet: ConsumerReblindedSet,
                      providerSet: ProviderReblindedSet, history: RunHistory, now: Date = Date()) throws(ActivationError) -> MatchOutcome {
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        guard !history.usedRunIDs.contains(runID) else {
            throw ActivationError(.runAlreadyUsed, "run \(runID) already has an audit entry; a run ID is used once")
        }
        guard history.runsInWindow < agreement.terms.privacy.maxRunsPerWindow else {
            throw ActivationError(.runLimitReached, "\(history.runsInWindow) runs in the last \(agreement.terms.privacy.windowSeconds) s; the agreement allows \(agreement.terms.privacy.maxRunsPerWindow)")
        }
        try PrivacyGuards.checkBudget(agreement.terms.privacy, spentMillis: history.epsilonSpentMillis)
        for (m, name) in [(payload.message, "provider-payload"), (consumerSet.message, "consumer-reblinded"), (providerSet.message, "provider-reblinded")] {
            guard m.runUUID == run else { throw ActivationError(.messageWrongRun, "\(name) belongs to another run") }
        }
        // Rounds 1 and 4 both name round 1's body: the consumer re-blinded exactly what the provider sent.
        guard providerSet.message.reference == payload.message.reference else {
            throw ActivationError(.messageReferenceMismatch, "provider-reblinded does not answer the provider set this payload belongs to")
        }
        guard providerSet.message.count == payload.message.count else {
            throw ActivationError(.messageCountMismatch, "provider-reblinded has \(providerSet.message.count) elements, the payload \(payload.message.count)")
        }
        let consumerElements = try Layout.elements(of: consumerSet.message, source: "consumer-reblinded")
        let providerElements = try Layout.elements(of: providerSet.message, source: "provider-reblinded")
        // One partitioned hash join finds duplicates on both sides and the matches (RistrettoPSI.ElementJoin).
        let join = ElementJoin.intersect(consumerElements, providerElements)
        try Layout.refuseDuplicate(join.duplicateInA, source: "consumer-reblinded")
        try Layout.refuseDuplicate(join.duplicateInB, source: "provider-reblinded")

        var counts = MatchCounts()
        counts.consumerIdentifiers = consumerElements.count
        counts.consumerRows = Int(consumerSet.message.metadata["consumerRows"] ?? "") ?? 0
        counts.providerElements = providerElements.count
        guard consumerElements.count >= agreement.terms.privacy.minConsumerRows else {
            throw ActivationError(.belowMinimumConsumerRows, "the consumer set has \(consumerElements.count) identifiers; the agreement requires at least \(agreement.terms.privacy.minConsumerRows)")
        }

        // provider row → (lowest matching consumer element, its index): deterministic choice of
        // which consumer attributes accompany a row when several consumer identifiers match it.
        var matched = [UInt64: (element: RistrettoElement, consumerIndex: Int, providerIndex: Int)]()
        for (i, ci) in join.matches {
            let e = providerElements[i]
            counts.matchedElements += 1
            let row = BE.read64(payload.message.record(i).prefix(Layout.rowIndexSize))
            if let existing = matched[row], !Self.less(e, existing.element) { continue }
            matched[row] = (e, ci, i)
        }
        counts.matchedRows = matched.count
        // Differencing: compare this run's matched provider rows with earlier runs' (SPEC §9.1).
        let sketch = RunSketch.make(runID: runID, rows: matched.keys, coordinator: identity.signingKey,
                                    collaborationUUID: agreement.collaborationUUID)
        try PrivacyGuards.checkNearDuplicate(sketch, against: history.sketches, percent: agreement.terms.privacy.effectiveRunSimilarityPercent)
        counts.sketch = sketch
        var deliverable = counts.matchedRows >= agreement.terms.privacy.minMatchedRows
        if let noise = agreement.terms.privacy.noise {
            // The consumer sees only the noisy count, and the outcome is decided on it (plus a
            // margin), so the outcome is post-processing of a differentially private release.
            let noisy = max(0, counts.matchedRows + GeometricNoise.sample(epsilonMillis: noise.epsilonMillis, sensitivity: noise.sensitivity))
            counts.noisyMatchedRows = noisy
            counts.epsilonMillis = noise.epsilonMillis
            deliverable = deliverable && noisy >= agreement.terms.privacy.minMatchedRows + PrivacyGuards.thresholdMargin(noise)
        }
        guard deliverable else { return .belowThreshold(counts) }

        let plan = try buildDelivery(run: run, matched: matched.sorted { $0.key < $1.key }.map(\.value), payload: payload,
                                     consumerSet: consumerSet, now: now)
        return .deliver(plan, counts)
    }

    static func less(_ a: RistrettoElement, _ b: RistrettoElement) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }

    private func buildDelivery(run: [UInt8], matched: [(element: RistrettoElement, consumerIndex: Int, providerIndex: Int)],
                               payload: ProviderPayload, consumerSet: ConsumerReblindedSet, now: Date) throws(ActivationError) -> DeliveryPlan {
        let sealed = agreement.terms.output.sealed
        let member = agreement.terms.output.deliverMemberID
        let segmentID = consumerSet.message.metadata["segmentID"] ?? ""
        let segmentName = consumerSet.message.metadata["segmentName"] ?? ""
        guard Consumer.isSafeLabel(segmentID), Consumer.isSafeLabel(segmentName) else {
            throw ActivationError(.messageMalformed, "consumer-reblinded: segment labels missing or unsafe")
        }
        var outer: RecordOpener?
        if member {
            do {
                let key = try SealingPublicKey(bytes: consumerSet.message.sealingKey)
                outer = try RecordOpener(recipient: identity.sealingKey, ephemeralPublicKey: key, context: Layout.outerContext(agreement, run))
            } catch { throw ActivationError(.messageMalformed, "consumer-reblinded: the attribute sealing key is invalid") }
        }
        let columns = DeliveryPlan.columns(sealed: sealed, memberID: member)
        var objects: [DeliveryPlan.Object] = []
        var current = Array((columns.joined(separator: ",") + "\n").utf8)
        var inCurrent = 0
        let gzip = agreement.terms.output.gzip
        var compressionFailure: Gzip.Error?
        func flush() {
            var bytes = current
            if gzip {
                do { bytes = try Gzip.compress(current) } catch { compressionFailure = error }
            }
            objects.append(DeliveryPlan.Object(name: String(format: "part-%05d.csv", objects.count) + (gzip ? ".gz" : ""), bytes: bytes, records: inCurrent))
            current = Array((columns.joined(separator: ",") + "\n").utf8)
            inCurrent = 0
        }
        for (n, m) in matched.enumerated() {
            let rec = Array(payload.message.record(m.providerIndex).dropFirst(Layout.rowIndexSize))
            var fields: [String] = []
            if sealed {
                fields.append(Base64.encode(rec))
            } else {
                guard let key = Layout.unpadded(rec) else { throw ActivationError(.messageMalformed, "provider-payload: malformed audience key record") }
                fields.append(CSVField.quote(key))
            }
            fields += [segmentID, segmentName]
            if let outer {
                let sealedAttr = Array(consumerSet.message.record(m.consumerIndex).dropFirst(Layout.elementSize))
                do { fields.append(Base64.encode(try outer.open(sealedAttr))) } catch {
                    throw ActivationError(.messageMalformed, "consumer-reblinded: element \(m.consumerIndex)'s sealed attributes do not open")
                }
            }
            let line = Array((fields.joined(separator: ",") + "\n").utf8)
            if inCurrent == 0 {
                // Lines of one run have (nearly) one length: reserving the object up front avoids
                // growing it by doubling, which briefly holds the old and the new buffer together
                // (hundreds of megabytes at 1M; SPEC §9 "Bounded memory").
                current.reserveCapacity(current.count + (line.count + 8) * min(matched.count - n, recordsPerObject))
            }
            current += line
            inCurrent += 1
            if inCurrent == recordsPerObject { flush() }
        }
        if inCurrent > 0 || objects.isEmpty { flush() }
        if let compressionFailure { throw ActivationError(.cryptoFailure, "compressing the delivery failed: \(compressionFailure.code.rawValue)") }
        let manifest = Manifest(
            collaborationID: agreement.terms.collaborationID, runID: UUIDBytes.string(run), agreementHash: Hex.encode(agreement.hash),
            createdAt: ISO8601.format(now), sealed: sealed, compression: gzip ? "gzip" : nil, columns: columns, records: matched.count,
            objects: objects.map { Manifest.Object(name: $0.name, sha256: Hex.encode($0.sha256), bytes: $0.size, records: $0.records) },
            payloadSealingKey: sealed ? Hex.encode(payload.message.sealingKey) : nil,
            memberSealingKey: member ? consumerSet.message.metadata["innerSealingKey"] : nil)
        return DeliveryPlan(objects: objects, manifest: SignedManifest.sign(manifest, with: identity.signingKey))
    }
}
