import Foundation
import RistrettoPSI
import Identifiers
import Activation
import Tabular

/// The coordinator's record of runs: the audit log in production, read for the privacy rules and
/// appended once per run.
public protocol RunLedger {
    func history(collaborationID: String, windowSeconds: Int, now: Date) throws -> RunHistory
    func record(_ event: RunEvent) throws
}

/// One run's outcome as the ledger records it: counts and codes only.
public struct RunEvent: Sendable {
    public enum Kind: String, Sendable { case delivered, rejected, belowThreshold = "below_threshold", failed }
    public let kind: Kind
    public let collaborationID: String
    public let runID: String
    public let agreementHash: [UInt8]
    public let counts: MatchCounts
    public let deliveredObjects: Int
    public let manifestSHA256: [UInt8]?
    public let reasonCode: String?
}

/// Which input columns hold which identifier types (from the CLI's `--email-column` etc.).
public struct ColumnSpec: Sendable {
    public var byType: [(IdentifierType, String)]
    public init(_ byType: [(IdentifierType, String)]) { self.byType = byType }

    func resolve(_ header: Header) throws(Error) -> [IdentifierColumn] {
        guard !byType.isEmpty else { throw WorkflowError(.input, "\(header.file): name at least one identifier column") }
        var out: [IdentifierColumn] = []
        for (t, name) in byType { out.append(IdentifierColumn(index: try header.require(name), name: name, type: t)) }
        return out
    }
}

/// Stage-by-stage progress for long inputs (the CLI prints it on stderr). Carries counts and
/// file names only.
public typealias ProgressReporter = @Sendable (String) -> Void

/// Each role's step with its file I/O: what the CLI and the demo call.
/// - SeeAlso: `Protocol/SPEC.md` §6; README.md "Running a collaboration".
public enum Steps {
    public static func loadAgreement(_ path: String, now: Date = Date()) throws(Error) -> VerifiedAgreement {
        try SignedAgreement(json: Data(try Files.read(path))).verified(now: now)
    }

    public struct PrepareResult: Sendable {
        public let runID: String
        public let summary: PrepareSummary
        public let skipped: [SkippedValue]
        public let written: [String]
    }

    /// Round 1 (provider).
    public static func providerPrepare(agreement: VerifiedAgreement, identity: PartyIdentity, input: String, columns: ColumnSpec,
                                       audienceKeyColumn: String, runID: String, exchange: Exchange, state: StateStore,
                                       policy: InvalidValuePolicy, progress: ProgressReporter? = nil) throws(Error) -> PrepareResult {
        let provider = try Provider(agreement: agreement, identity: identity)
        progress?("reading \(input)")
        let (header, rows) = try CSVInput.load(input)
        progress?("read \(rows.count) rows; normalizing, hashing to the group and blinding")
        let audience = ProviderAudience(source: header.file, rows: rows, identifierColumns: try columns.resolve(header),
                                        audienceKeyColumn: (try header.require(audienceKeyColumn), audienceKeyColumn),
                                        invalidValues: policy)
        let p = try provider.prepare(runID: runID, audience: audience)
        progress?("blinded \(p.summary.elements) elements; writing the round-1 messages")
        state.clearAbandonedPrepare(agreement, run: runID, role: .provider, published: exchange.path(agreement, run: runID, .providerBlinded),
                                    unpublished: [exchange.path(agreement, run: runID, .providerPayload)])
        try state.save(p.state, agreement)
        do {
            try exchange.write(p.forCoordinator.message, agreement, run: runID)
            try exchange.write(p.forConsumer.message, agreement, run: runID)
        } catch {
            state.delete(agreement, run: runID, role: .provider)
            throw error
        }
        return PrepareResult(runID: runID, summary: p.summary, skipped: p.skipped,
                             written: [exchange.path(agreement, run: runID, .providerBlinded), exchange.path(agreement, run: runID, .providerPayload)])
    }

    /// Round 2 (consumer): the activation query.
    public static func consumerPrepare(agreement: VerifiedAgreement, signingKey: SigningKey, input: String, columns: ColumnSpec,
                                       filters: [(column: String, values: [String])], consent: [String], memberIDColumn: String?,
                                       segmentID: String, segmentName: String, runID: String, exchange: Exchange,
                                       state: StateStore, policy: InvalidValuePolicy, progress: ProgressReporter? = nil) throws(Error) -> PrepareResult {
        let consumer = try Consumer(agreement: agreement, signingKey: signingKey)
        progress?("reading \(input)")
        let (header, rows) = try CSVInput.load(input)
        progress?("read \(rows.count) rows; selecting, normalizing, hashing to the group and blinding")
        var fs: [ConsumerQuery.Filter] = []
        for f in filters { fs.append(.init(index: try header.require(f.column), name: f.column, values: Set(f.values.map { Array($0.utf8) }))) }
        var cs: [(index: Int, name: String)] = []
        for c in consent { cs.append((try header.require(c), c)) }
        let member: (index: Int, name: String)? = try memberIDColumn.map { (try header.require($0), $0) }
        let query = ConsumerQuery(source: header.file, rows: rows, identifierColumns: try columns.resolve(header), filters: fs,
                                  consentColumns: cs, memberIDColumn: member, segmentID: segmentID, segmentName: segmentName,
                                  invalidValues: policy)
        let c = try consumer.prepare(runID: runID, query: query)
        progress?("blinded \(c.summary.elements) elements; writing the round-2 message")
        state.clearAbandonedPrepare(agreement, run: runID, role: .consumer, published: exchange.path(agreement, run: runID, .consumerBlinded))
        try state.save(c.state, agreement)
        do { try exchange.write(c.forProvider.message, agreement, run: runID) } catch {
            state.delete(agreement, run: runID, role: .consumer)
            throw error
        }
        return PrepareResult(runID: runID, summary: c.summary, skipped: c.skipped,
                             written: [exchange.path(agreement, run: runID, .consumerBlinded)])
    }

    /// Round 3 (provider): re-blind the consumer's set; the run's scalar is shredded afterwards.
    public static func providerRespond(agreement: VerifiedAgreement, identity: PartyIdentity, runID: String, exchange: Exchange,
                                       state: StateStore, progress: ProgressReporter? = nil) throws(Error) -> (elements: Int, written: String) {
        let provider = try Provider(agreement: agreement, identity: identity)
        progress?("verifying the consumer's set and re-blinding it")
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        let s = try state.load(agreement, run: runID, role: .provider)
        let inPath = exchange.path(agreement, run: runID, .consumerBlinded)
        let set = try ConsumerBlindedSet(parsing: try Files.read(inPath), agreement: agreement, run: run, source: inPath)
        let out = try provider.respond(to: set, state: s)
        do { try exchange.write(out.message, agreement, run: runID) } catch {
            // A crashed attempt already published this answer: the scalar has no further use.
            if error.code == .alreadyExists { state.delete(agreement, run: runID, role: .provider) }
            throw error
        }
        state.delete(agreement, run: runID, role: .provider)
        return (out.message.count, exchange.path(agreement, run: runID, .consumerReblinded))
    }

    /// Round 4 (consumer): re-blind the provider's set; the run's scalar is shredded afterwards.
    public static func consumerRespond(agreement: VerifiedAgreement, signingKey: SigningKey, runID: String, exchange: Exchange,
                                       state: StateStore, progress: ProgressReporter? = nil) throws(Error) -> (elements: Int, written: String) {
        let consumer = try Consumer(agreement: agreement, signingKey: signingKey)
        progress?("verifying the provider's set and re-blinding it")
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        let s = try state.load(agreement, run: runID, role: .consumer)
        let inPath = exchange.path(agreement, run: runID, .providerBlinded)
        let set = try ProviderBlindedSet(parsing: try Files.read(inPath), agreement: agreement, run: run, source: inPath)
        let out = try consumer.respond(to: set, state: s)
        do { try exchange.write(out.message, agreement, run: runID) } catch {
            // A crashed attempt already published this answer: the scalar has no further use.
            if error.code == .alreadyExists { state.delete(agreement, run: runID, role: .consumer) }
            throw error
        }
        state.delete(agreement, run: runID, role: .consumer)
        return (out.message.count, exchange.path(agreement, run: runID, .providerReblinded))
    }

    public struct MatchResult: Sendable {
        public let kind: RunEvent.Kind
        public let counts: MatchCounts
        public let objects: Int
    }

    /// Round 5 (coordinator): verify, match, deliver, then record the outcome in the ledger. A
    /// refused or failed run is recorded too (with its reason code) before the error is rethrown.
    ///
    /// With a `store` (the CLI always passes one) the collaboration is locked first, so a second
    /// coordinator on it stops with `activation.run_in_progress` and records nothing; earlier runs'
    /// sketches feed the near-duplicate check and this run's sketch is stored before delivery; a
    /// retry after a crash removes stale staging, and adopts a delivery the crashed attempt had
    /// already committed (signed by this coordinator, same run) instead of failing on it.
    /// - SeeAlso: `Protocol/SPEC.md` §9.1, §9.2.
    public static func coordinatorMatch(agreement: VerifiedAgreement, identity: PartyIdentity, runID: String, exchange: Exchange,
                                        destination: DeliveryDestination, ledger: RunLedger, store: CoordinatorStore? = nil,
                                        now: Date = Date(), progress: ProgressReporter? = nil) throws(Error) -> MatchResult {
        let coordinator = try Coordinator(agreement: agreement, identity: identity)
        let collab = agreement.terms.collaborationID
        func record(_ kind: RunEvent.Kind, _ counts: MatchCounts, objects: Int = 0, manifest: [UInt8]? = nil, reason: String? = nil) throws(Error) {
            try ledger.record(RunEvent(kind: kind, collaborationID: collab, runID: runID, agreementHash: agreement.hash, counts: counts,
                                       deliveredObjects: objects, manifestSHA256: manifest, reasonCode: reason))
        }
        guard let run = UUIDBytes.parse(runID) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        let lock = try store?.lock(collaborationID: collab, runID: runID)
        defer { lock?.release() }
        var history = try ledger.history(collaborationID: collab, windowSeconds: agreement.terms.privacy.windowSeconds, now: now)
        if let store { history.sketches = try store.sketches(collaborationID: collab) }
        let outcome: MatchOutcome
        progress?("verifying the three messages, decoding and intersecting")
        do {
            let p = exchange.path(agreement, run: runID, .providerPayload)
            let c = exchange.path(agreement, run: runID, .consumerReblinded)
            let q = exchange.path(agreement, run: runID, .providerReblinded)
            outcome = try coordinator.match(
                runID: runID,
                payload: try ProviderPayload(parsing: try Files.read(p), agreement: agreement, run: run, source: p),
                consumerSet: try ConsumerReblindedSet(parsing: try Files.read(c), agreement: agreement, run: run, source: c),
                providerSet: try ProviderReblindedSet(parsing: try Files.read(q), agreement: agreement, run: run, source: q),
                history: history, now: now)
        } catch let e as ActivationError {
            // A reused run ID already has its entry; every other refusal is recorded once.
            if e.code != .runAlreadyUsed { try record(.rejected, MatchCounts(), reason: e.code.rawValue) }
            throw e
        } catch let e as WorkflowError {
            try record(.rejected, MatchCounts(), reason: e.code.rawValue)
            throw e
        }
        switch outcome {
        case .belowThreshold(let counts), .deliver(_, let counts):
            // Stored before anything is released, so a crash cannot lose a run's sketch.
            if let store, let sketch = counts.sketch {
                do { try store.save(sketch, collaborationID: collab) } catch {
                    try record(.failed, counts, reason: error.code.rawValue)
                    throw error
                }
            }
        }
        switch outcome {
        case .belowThreshold(let counts):
            try record(.belowThreshold, counts, reason: ActivationError.Code.belowThreshold.rawValue)
            return MatchResult(kind: .belowThreshold, counts: counts, objects: 0)
        case .deliver(let plan, let counts):
            progress?("delivering \(counts.matchedRows) records in \(plan.objects.count) objects, manifest last")
            if lock != nil, let local = destination as? LocalDirectoryDestination {
                local.removeStaleStaging(collaborationID: collab, runID: runID)
            }
            do { try destination.deliver(plan, collaborationID: collab, runID: runID) } catch {
                if error.code == .alreadyExists, lock != nil,
                   let committed = committedDelivery(agreement: agreement, runID: runID, destination: destination) {
                    // A crashed attempt of this run committed it but died before its audit entry.
                    try record(.delivered, counts, objects: committed.objects, manifest: committed.sha256)
                    return MatchResult(kind: .delivered, counts: counts, objects: committed.objects)
                }
                try record(.failed, counts, reason: error.code.rawValue)
                throw error
            }
            try record(.delivered, counts, objects: plan.objects.count, manifest: plan.manifest.sha256)
            return MatchResult(kind: .delivered, counts: counts, objects: plan.objects.count)
        }
    }

    /// A delivery already committed for `runID` whose manifest this coordinator signed for this
    /// agreement and run, or nil. Only consulted under the collaboration's lock and with no audit entry.
    static func committedDelivery(agreement: VerifiedAgreement, runID: String,
                                  destination: DeliveryDestination) -> (sha256: [UInt8], objects: Int)? {
        guard let d = try? destination.read(collaborationID: agreement.terms.collaborationID, runID: runID),
              let m = try? JSONDecoder().decode(SignedManifest.self, from: Data(d.manifestBytes)),
              m.isSigned(by: agreement.coordinatorKey), m.manifest.runID == runID,
              m.manifest.collaborationID == agreement.terms.collaborationID,
              m.manifest.agreementHash == Hex.encode(agreement.hash) else { return nil }
        return (SHA256.hash(d.manifestBytes), m.manifest.objects.count)
    }

    /// Round 6 (provider): verify the delivery and write the plain CSV for a DSP upload.
    public static func providerOpen(agreement: VerifiedAgreement, identity: PartyIdentity, runID: String,
                                    source: DeliveryDestination, output: String) throws(Error) -> Int {
        let provider = try Provider(agreement: agreement, identity: identity)
        let delivery = try source.read(collaborationID: agreement.terms.collaborationID, runID: runID)
        let records = try provider.open(delivery)
        try Files.writeAtomically(ReceivedDelivery.plainCSV(records), to: output, mode: 0o600)
        return records.count
    }

    /// The destination the agreement names (local directories today; `s3` arrives with the S3 issue).
    public static func destination(for agreement: VerifiedAgreement) throws(WorkflowError) -> DeliveryDestination {
        guard let d = agreement.terms.destination else { throw WorkflowError(.destination, "the agreement names no destination") }
        switch d.kind {
        case "local":
            guard let dir = d.directory else { throw WorkflowError(.destination, "a local destination needs a directory") }
            return LocalDirectoryDestination(directory: dir)
        default:
            throw WorkflowError(.destination, "destination kind '\(d.kind)' is not supported by this build")
        }
    }
}
