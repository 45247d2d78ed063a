import Activation
import Foundation
import Identifiers
import RistrettoPSI
import S3Delivery
import Tabular

/// The coordinator's record of runs: the audit log in production, read for the privacy rules and
/// appended once per run.
public protocol RunLedger {
    /// What the privacy rules need from the collaboration's earlier runs: run IDs used, runs in
    /// the window of `windowSeconds` before `now`, ε spent.
    func history(collaborationID: String, windowSeconds: Int, now: Date) throws -> RunHistory
    /// Records one run's outcome: a delivery, a refusal or a failure.
    func record(_ event: RunEvent) throws
}

/// One run's outcome as the ledger records it: counts and codes only.
public struct RunEvent: Sendable {
    /// How the run ended; the raw values are the audit log's event kinds.
    public enum Kind: String, Sendable {
        case delivered, rejected
        case belowThreshold = "below_threshold"
        case failed
    }
    /// How the run ended.
    public let kind: Kind
    /// The collaboration the run belongs to.
    public let collaborationID: String
    /// The run's ID.
    public let runID: String
    /// The hash of the agreement the run ran under.
    public let agreementHash: [UInt8]
    /// The match's counts; all zero for a refused run.
    public let counts: MatchCounts
    /// The number of objects delivered; 0 unless delivered.
    public let deliveredObjects: Int
    /// The SHA-256 of the delivery's manifest; nil unless delivered.
    public let manifestSHA256: [UInt8]?
    /// The stable code of a refusal, a failure or a below-threshold run; nil for a delivery.
    public let reasonCode: String?
}

/// Which input columns hold which identifier types (from the CLI's `--email-column` etc.).
public struct ColumnSpec: Sendable {
    /// Each identifier type with the name of the column holding it.
    public var byType: [(IdentifierType, String)]
    /// A mapping as given; an empty one is refused (`workflow.input`) when an input is read.
    public init(_ byType: [(IdentifierType, String)]) { self.byType = byType }

    func resolve(_ header: Header) throws(Error) -> [IdentifierColumn] {
        guard !byType.isEmpty else {
            throw WorkflowError(.input, "\(header.file): name at least one identifier column")
        }
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
    /// Reads the signed agreement at `path` and verifies it as of `now`.
    /// - Throws: `workflow.not_found` or `workflow.io` for the file; `ActivationError` when it does not
    ///   parse or verify.
    /// - SeeAlso: `Protocol/SPEC.md` §8.
    public static func loadAgreement(_ path: String, now: Date = Date()) throws(Error) -> VerifiedAgreement {
        try SignedAgreement(json: Data(try Files.read(path))).verified(now: now)
    }

    /// What a prepare (round 1 or 2) published.
    public struct PrepareResult: Sendable {
        /// The run the round was published for.
        public let runID: String
        /// The prepare's counts (rows read and selected, identifiers, duplicates, skips, elements).
        public let summary: PrepareSummary
        /// The first values left out under `--skip-invalid` (at most
        /// ``SkippedValues/keptInMemory``); every one of them (`summary.skippedValues`) is listed
        /// in ``skippedReport``.
        public let skipped: [SkippedValue]
        /// The file listing every skipped value by row, column and rule: nil when none was skipped.
        /// - SeeAlso: ``StateStore/skipReportPath(_:run:role:)``.
        public let skippedReport: String?
        /// The messages written, as ``Exchange/path(_:run:_:)`` names them (round 1: the blinded set
        /// first, then the payload).
        public let written: [String]
    }

    /// Publishes a prepare's round with the run state and the report of its skipped values.
    ///
    /// `write` writes the round's messages, calling `save` with the run state once their bodies
    /// are written (before the one that publishes the round is linked into place); on any failure
    /// a saved state is shredded. The report is written and synced under a hidden temporary name
    /// first (so a full disk refuses the step before anything is published), and renamed into
    /// place only once `write` has succeeded: a report appears only beside a round this attempt
    /// published, and an attempt that fails (the run already published, a write error, a
    /// concurrent prepare of the same run) never touches the report that is there. Killed
    /// between the two, the round is published without its report and a hidden temporary file
    /// stays in the private state directory.
    static func publishPrepare(
        _ skipped: SkippedValues, state: StateStore, _ a: VerifiedAgreement, run: String, role: Role,
        _ write: (_ save: (RunState) throws -> Void) throws -> Void
    ) throws -> String? {
        let report = try state.stageSkipReport(skipped, a, run: run, role: role)
        var saved = false
        do {
            try write { s in
                try state.save(s, a)
                saved = true
            }
        } catch {
            if saved { state.delete(a, run: run, role: role) }
            report?.abandon()
            throw error
        }
        guard let report else { return nil }
        do { try report.commit() } catch {
            throw WorkflowError(.io, "round published, but its skip report could not be made visible: \(error)")
        }
        return report.path
    }

    /// Round 1 (provider), in bounded memory: the CSV streams through the provider's stage
    /// (spilling to `<state-dir>/scratch`), then the two messages are written to the exchange.
    ///
    /// Order (as before streaming): every input refusal comes before anything is written; then an
    /// abandoned earlier attempt of this run is cleared, the run state saved once both bodies
    /// are written, and the payload linked into place before the blinded set, which publishes
    /// the round. On a write failure the sinks are abandoned and the state shredded.
    ///
    /// `defaultCountryCallingCode` reads the provider's own national-format phone numbers with
    /// that country code instead of the agreement's (``ProviderAudience/defaultCountryCallingCode``).
    public static func providerPrepare(
        agreement: VerifiedAgreement, identity: PartyIdentity, input: String, columns: ColumnSpec,
        audienceKeyColumn: String, runID: String, exchange: Exchange, state: StateStore,
        policy: InvalidValuePolicy, defaultCountryCallingCode: String? = nil, progress: ProgressReporter? = nil
    ) throws(Error) -> PrepareResult {
        let provider = try Provider(agreement: agreement, identity: identity)
        progress?("reading \(input); normalizing, hashing to the group and blinding as it streams")
        let rows = try CSVInput.open(input)
        let header = rows.header
        let audience = ProviderAudience(
            source: header.file, rows: rows, identifierColumns: try columns.resolve(header),
            audienceKeyColumn: (try header.require(audienceKeyColumn), audienceKeyColumn),
            invalidValues: policy, defaultCountryCallingCode: defaultCountryCallingCode)
        var staged = try provider.stage(
            runID: runID, audience: audience, scratch: try state.scratch(),
            progress: progress.map { p in { n in p("read \(n) rows") } })
        progress?("blinded \(staged.summary.elements) elements; writing the round-1 messages")
        try state.clearAbandonedPrepare(
            agreement, run: runID, role: .provider, exchange: exchange, published: .providerBlinded,
            unpublished: [.providerPayload])
        let report = try publishPrepare(staged.skipped, state: state, agreement, run: runID, role: .provider) { save in
            let payload = try exchange.sink(agreement, run: runID, .providerPayload)
            let blinded = try exchange.sink(agreement, run: runID, .providerBlinded)
            _ = try staged.write(forConsumer: blinded, forCoordinator: payload, beforePublishing: save)
        }
        return PrepareResult(
            runID: runID, summary: staged.summary, skipped: staged.skipped.earliest, skippedReport: report,
            written: [
                exchange.path(agreement, run: runID, .providerBlinded),
                exchange.path(agreement, run: runID, .providerPayload),
            ])
    }

    /// Round 2 (consumer): the activation query, in bounded memory as round 1 (one message).
    /// `defaultCountryCallingCode` as in ``providerPrepare(agreement:identity:input:columns:audienceKeyColumn:runID:exchange:state:policy:defaultCountryCallingCode:progress:)``.
    public static func consumerPrepare(
        agreement: VerifiedAgreement, signingKey: SigningKey, input: String, columns: ColumnSpec,
        filters: [(column: String, values: [String])], consent: [String], memberIDColumn: String?,
        segmentID: String, segmentName: String, runID: String, exchange: Exchange,
        state: StateStore, policy: InvalidValuePolicy, defaultCountryCallingCode: String? = nil,
        progress: ProgressReporter? = nil
    ) throws(Error) -> PrepareResult {
        let consumer = try Consumer(agreement: agreement, signingKey: signingKey)
        progress?("reading \(input); selecting, normalizing, hashing to the group and blinding as it streams")
        let rows = try CSVInput.open(input)
        let header = rows.header
        var fs: [ConsumerQuery.Filter] = []
        for f in filters {
            fs.append(
                .init(index: try header.require(f.column), name: f.column, values: Set(f.values.map { Array($0.utf8) }))
            )
        }
        var cs: [(index: Int, name: String)] = []
        for c in consent { cs.append((try header.require(c), c)) }
        let member: (index: Int, name: String)? = try memberIDColumn.map { (try header.require($0), $0) }
        let query = ConsumerQuery(
            source: header.file, rows: rows, identifierColumns: try columns.resolve(header), filters: fs,
            consentColumns: cs, memberIDColumn: member, segmentID: segmentID, segmentName: segmentName,
            invalidValues: policy, defaultCountryCallingCode: defaultCountryCallingCode)
        var staged = try consumer.stage(
            runID: runID, query: query, scratch: try state.scratch(),
            progress: progress.map { p in { n in p("read \(n) rows") } })
        progress?("blinded \(staged.summary.elements) elements; writing the round-2 message")
        try state.clearAbandonedPrepare(
            agreement, run: runID, role: .consumer, exchange: exchange, published: .consumerBlinded)
        let report = try publishPrepare(staged.skipped, state: state, agreement, run: runID, role: .consumer) { save in
            _ = try staged.write(
                forProvider: try exchange.sink(agreement, run: runID, .consumerBlinded), beforePublishing: save)
        }
        return PrepareResult(
            runID: runID, summary: staged.summary, skipped: staged.skipped.earliest, skippedReport: report,
            written: [exchange.path(agreement, run: runID, .consumerBlinded)])
    }

    /// Round 3 (provider): re-blind the consumer's set; the run's scalar is shredded afterwards.
    ///
    /// Streamed (SPEC §9 "Bounded memory"): the consumer's set is read from the exchange in
    /// chunks, the answer goes to a hidden temporary file linked into place only once the input's
    /// checksum and every check passed, and the shuffle and duplicate check spill to the provider's
    /// private scratch directory. A refused input keeps the state (the run can complete once the
    /// right file arrives); an answer already published (a crashed attempt's) shreds it.
    public static func providerRespond(
        agreement: VerifiedAgreement, identity: PartyIdentity, runID: String, exchange: Exchange,
        state: StateStore, progress: ProgressReporter? = nil,
        availableBytes: @escaping (String) -> Int? = ScratchPreflight.availableBytes(at:)
    )
        throws(Error) -> (elements: Int, written: String)
    {
        let provider = try Provider(agreement: agreement, identity: identity)
        progress?("verifying the consumer's set and re-blinding it")
        return try respondStep(
            agreement: agreement, runID: runID, exchange: exchange, state: state, role: .provider,
            input: .consumerBlinded, output: .consumerReblinded, availableBytes: availableBytes
        ) { source, name, s, sink, scratch, check in
            try provider.respond(
                consumerSet: source, name: name, state: s, into: sink, scratch: scratch, beforeBody: check)
        }
    }

    /// Round 4 (consumer): re-blind the provider's set; the run's scalar is shredded afterwards.
    ///
    /// Streamed like round 3 (the answer keeps the provider's order, so records go to the
    /// temporary file as they are re-blinded; only the duplicate check spills).
    public static func consumerRespond(
        agreement: VerifiedAgreement, signingKey: SigningKey, runID: String, exchange: Exchange,
        state: StateStore, progress: ProgressReporter? = nil,
        availableBytes: @escaping (String) -> Int? = ScratchPreflight.availableBytes(at:)
    )
        throws(Error) -> (elements: Int, written: String)
    {
        let consumer = try Consumer(agreement: agreement, signingKey: signingKey)
        progress?("verifying the provider's set and re-blinding it")
        return try respondStep(
            agreement: agreement, runID: runID, exchange: exchange, state: state, role: .consumer,
            input: .providerBlinded, output: .providerReblinded, availableBytes: availableBytes
        ) { source, name, s, sink, scratch, check in
            try consumer.respond(
                providerSet: source, name: name, state: s, into: sink, scratch: scratch, beforeBody: check)
        }
    }

    /// The edge rounds 3 and 4 share: the party's run state, the input streamed from the exchange,
    /// the answer to a temporary file linked into place only when complete, spills to the party's
    /// scratch directory. The run's scalar is shredded once the answer is published, and also
    /// when a crashed attempt already published it (it has no further use); a refused input keeps
    /// the state, so the run can complete once the right file arrives.
    ///
    /// Free space (SPEC §9, rounds 3 and 4, step 1): once the received header is verified and
    /// before its body is read, the answer and the spilled scratch are checked against what their
    /// file systems have (`availableBytes`, `statvfs` unless a test injects it); too little stops
    /// the step with `workflow.disk_space`, nothing written and the state kept.
    static func respondStep(
        agreement: VerifiedAgreement, runID: String, exchange: Exchange, state: StateStore, role: Role,
        input: MessageKind, output: MessageKind, availableBytes: @escaping (String) -> Int?,
        _ answer: (
            any ByteSource, String, RunState, any MessageSink, any ScratchSpace,
            (RespondFootprint) throws -> Void
        ) throws -> RespondSummary
    )
        throws(Error) -> (elements: Int, written: String)
    {
        _ = try UUIDBytes.runID(runID)
        let s = try state.load(agreement, run: runID, role: role)
        let answered: RespondSummary
        do {
            let scratch = try state.scratch()
            let source = try exchange.source(agreement, run: runID, input)
            let sink = try exchange.sink(agreement, run: runID, output)
            let answerDirectory =
                exchange.isS3
                ? exchange.scratchDirectory
                : (exchange.path(agreement, run: runID, output) as NSString).deletingLastPathComponent
            let check = { (f: RespondFootprint) throws in
                try ScratchPreflight.checkRespond(
                    f, scratchDirectory: scratch.directory, answerDirectory: answerDirectory,
                    available: availableBytes)
            }
            answered = try answer(source, exchange.path(agreement, run: runID, input), s, sink, scratch, check)
        } catch {
            if isAlreadyExists(error) { state.delete(agreement, run: runID, role: role) }
            throw error
        }
        state.delete(agreement, run: runID, role: role)
        return (answered.count, exchange.path(agreement, run: runID, output))
    }

    /// Round 5's outcome when the run was not refused: delivered or below the threshold.
    public struct MatchResult: Sendable {
        /// `delivered` or `belowThreshold` (a refused or failed run throws instead).
        public let kind: RunEvent.Kind
        /// The match's counts.
        public let counts: MatchCounts
        /// The number of objects delivered; 0 below the threshold.
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
    /// Before any body is read, the headers, as the match's first step
    /// (``Coordinator/open(runID:payload:consumerSet:providerSet:history:names:)``) verified them
    /// once, give the scratch space the match certainly needs (``ScratchPreflight``); fewer bytes
    /// available there (`availableScratchBytes`, `statvfs` unless a test injects it; measured
    /// after an S3 exchange's downloads, which the match holds) refuse the run with
    /// `workflow.disk_space`, recording nothing, so the same run ID can run once there is room.
    /// On an S3 exchange the run's own checks (reuse, cap, budget) come before the downloads, and
    /// a message too large for the room left to download it is refused the same way.
    /// - SeeAlso: `Protocol/SPEC.md` §9.1, §9.2.
    public static func coordinatorMatch(
        agreement: VerifiedAgreement, identity: PartyIdentity, runID: String, exchange: Exchange,
        destination: DeliveryDestination, ledger: RunLedger, store: CoordinatorStore? = nil,
        now: Date = Date(), progress: ProgressReporter? = nil,
        availableScratchBytes: (String) -> Int? = ScratchPreflight.availableBytes(at:)
    ) throws(Error) -> MatchResult {
        let coordinator = try Coordinator(agreement: agreement, identity: identity)
        let collab = agreement.terms.collaborationID
        func record(
            _ kind: RunEvent.Kind, _ counts: MatchCounts, objects: Int = 0, manifest: [UInt8]? = nil,
            reason: String? = nil
        ) throws(Error) {
            try ledger.record(
                RunEvent(
                    kind: kind, collaborationID: collab, runID: runID, agreementHash: agreement.hash, counts: counts,
                    deliveredObjects: objects, manifestSHA256: manifest, reasonCode: reason))
        }
        _ = try UUIDBytes.runID(runID)
        let lock = try store?.lock(collaborationID: collab, runID: runID)
        defer { lock?.release() }
        var history = try ledger.history(
            collaborationID: collab, windowSeconds: agreement.terms.privacy.windowSeconds, now: now)
        if let store { history.sketches = try store.sketches(collaborationID: collab) }
        let outcome: MatchOutcome
        progress?("verifying the three messages, decoding and intersecting")
        // Scratch for the streamed match, private to the coordinator; the delivery objects live in
        // it, so it is kept until the destination has written them (its files are unlinked already).
        let scratchDirectory: String
        var temporaryScratch: String?
        if let store {
            scratchDirectory = store.scratchDirectory
        } else {
            scratchDirectory = (NSTemporaryDirectory() as NSString).appendingPathComponent(
                "cleanroom-coordinator-\(getpid())-\(Hex.encode(SecureRandom.bytes(8)))")
            temporaryScratch = scratchDirectory
        }
        defer { if let temporaryScratch { try? FileManager.default.removeItem(atPath: temporaryScratch) } }
        // A refusal is recorded once (a reused run ID already has its entry), then rethrown.
        func refuse(_ error: any Swift.Error) throws(Error) -> Never {
            if let e = error as? ActivationError {
                if e.code != .runAlreadyUsed { try record(.rejected, MatchCounts(), reason: e.code.rawValue) }
                throw e
            } else if let e = error as? WorkflowError {
                try record(.rejected, MatchCounts(), reason: e.code.rawValue)
                throw e
            } else if let e = error as? AWSError {
                // An s3:// exchange that cannot be read: refused, and recorded like a missing file.
                try record(.rejected, MatchCounts(), reason: e.code.rawValue)
                throw e
            }
            throw error
        }
        // First step: the run's checks and the three headers and signatures, verified once.
        let inputs: Coordinator.MatchInputs
        do {
            // The run's own checks before anything is fetched: on an S3 exchange a reused run ID
            // or an exhausted cap or budget is refused (and recorded) without downloading.
            _ = try coordinator.checkRun(runID: runID, history: history)
            let payload: any ByteSource
            let consumerSet: any ByteSource
            let providerSet: any ByteSource
            do {
                payload = try exchange.source(agreement, run: runID, .providerPayload)
                consumerSet = try exchange.source(agreement, run: runID, .consumerReblinded)
                providerSet = try exchange.source(agreement, run: runID, .providerReblinded)
            } catch let e as WorkflowError where e.code == .diskSpace {
                // An S3 message larger than the room left to download it: nothing was processed,
                // so nothing is recorded and the run ID stays usable (SPEC §12.7).
                throw e
            }
            inputs = try coordinator.open(
                runID: runID, payload: payload, consumerSet: consumerSet, providerSet: providerSet, history: history,
                names: Coordinator.InputNames(
                    payload: exchange.path(agreement, run: runID, .providerPayload),
                    consumerSet: exchange.path(agreement, run: runID, .consumerReblinded),
                    providerSet: exchange.path(agreement, run: runID, .providerReblinded)))
        } catch let e as WorkflowError where e.code == .diskSpace {
            throw e
        } catch { try refuse(error) }
        // Free space, from those verified headers, before any body is processed: a run that cannot
        // fit is refused here without an audit entry, so its run ID stays usable (SPEC §9, round 5).
        // An S3 exchange's downloads are on disk already and held through the match, so what is
        // available now is what the match has.
        try ScratchPreflight.check(
            need: ScratchPreflight.coordinatorNeed(ScratchPreflight.CoordinatorInputs(inputs)),
            available: availableScratchBytes(scratchDirectory), directory: scratchDirectory)
        do {
            outcome = try coordinator.match(
                inputs, scratch: try DirectoryScratch(directory: scratchDirectory), now: now)
        } catch { try refuse(error) }
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
            let s3 = destination as? S3Destination
            do {
                if let s3, let store, lock != nil {
                    let intent = DeliveryIntent(plan, agreement: agreement, runID: runID)
                    // Write-ahead: the coordinator cannot read the bucket back after a crash.
                    try s3.deliver(
                        plan, collaborationID: collab, runID: runID,
                        beforeManifest: { () throws in try store.saveIntent(intent, collaborationID: collab) })
                } else {
                    try destination.deliver(plan, collaborationID: collab, runID: runID)
                }
            } catch {
                if isAlreadyExists(error), lock != nil {
                    if let committed = committedDelivery(agreement: agreement, runID: runID, destination: destination) {
                        // A crashed attempt of this run committed it but died before its audit entry.
                        try record(.delivered, counts, objects: committed.objects, manifest: committed.sha256)
                        return MatchResult(kind: .delivered, counts: counts, objects: committed.objects)
                    }
                    if let s3, let store {
                        let adopted: (sha256: [UInt8], objects: Int)?
                        do {
                            adopted = try adoptFromIntent(
                                s3, store: store, plan: plan,
                                intent: DeliveryIntent(plan, agreement: agreement, runID: runID),
                                agreement: agreement, runID: runID)
                        } catch {
                            try record(.failed, counts, reason: reasonCode(error))
                            throw error
                        }
                        if let adopted {
                            try record(.delivered, counts, objects: adopted.objects, manifest: adopted.sha256)
                            store.removeIntent(collaborationID: collab, runID: runID)
                            return MatchResult(kind: .delivered, counts: counts, objects: adopted.objects)
                        }
                    }
                }
                try record(.failed, counts, reason: reasonCode(error))
                throw error
            }
            try record(.delivered, counts, objects: plan.objects.count, manifest: plan.manifest.sha256)
            if s3 != nil { store?.removeIntent(collaborationID: collab, runID: runID) }
            return MatchResult(kind: .delivered, counts: counts, objects: plan.objects.count)
        }
    }

    /// The stable code an audit entry records for a failed delivery.
    static func reasonCode(_ error: Error) -> String {
        switch error {
        case let e as AWSError: e.code.rawValue
        case let e as WorkflowError: e.code.rawValue
        default: WorkflowError.Code.destination.rawValue
        }
    }

    /// Whether a write was refused because its target exists (local file or S3 object).
    static func isAlreadyExists(_ error: Error) -> Bool {
        (error as? WorkflowError)?.code == .alreadyExists || (error as? AWSError)?.code == .alreadyExists
    }

    /// A delivery already committed for `runID` whose manifest this coordinator signed for this
    /// agreement and run, or nil. Only consulted under the collaboration's lock and with no audit entry.
    static func committedDelivery(
        agreement: VerifiedAgreement, runID: String,
        destination: DeliveryDestination
    ) -> (sha256: [UInt8], objects: Int)? {
        guard let d = try? destination.read(collaborationID: agreement.terms.collaborationID, runID: runID),
            let m = try? JSONDecoder().decode(SignedManifest.self, from: Data(d.manifestBytes)),
            m.isSigned(by: agreement.coordinatorKey), m.manifest.runID == runID,
            m.manifest.collaborationID == agreement.terms.collaborationID,
            m.manifest.agreementHash == Hex.encode(agreement.hash)
        else { return nil }
        return (SHA256.hash(d.manifestBytes), m.manifest.objects.count)
    }

    /// A retry's S3 delivery found its objects taken: with this coordinator's write-ahead intent
    /// record for the run, a killed attempt wrote every object and was about to write (or wrote)
    /// the manifest. Returns the delivery to record, or nil without an intent (someone else's
    /// objects: refused as before). Never re-delivers an object and never reads the bucket.
    ///
    /// - When this attempt's objects are byte-identical to the recorded ones (same digest), its
    ///   manifest describes what is in the bucket: it is written with `If-None-Match: *`; 412
    ///   means the killed attempt's manifest is there (its recorded hash is the one recorded),
    ///   success means the kill came before the manifest and this one commits the delivery.
    /// - Otherwise no manifest may be written (it would not describe the objects) and whether one
    ///   exists cannot be learnt without a read: `workflow.delivery_unconfirmed`.
    /// - SeeAlso: `Protocol/SPEC.md` §12.8 "Crash after the manifest".
    static func adoptFromIntent(
        _ s3: S3Destination, store: CoordinatorStore, plan: DeliveryPlan, intent: DeliveryIntent,
        agreement: VerifiedAgreement, runID: String
    ) throws -> (sha256: [UInt8], objects: Int)? {
        let collab = agreement.terms.collaborationID
        guard let recorded = try store.intent(collaborationID: collab, runID: runID) else { return nil }
        guard recorded.agreementHash == intent.agreementHash, recorded.objectsDigest == intent.objectsDigest,
            let recordedSHA = Hex.decode(recorded.manifestSHA256)
        else {
            throw WorkflowError(
                .deliveryUnconfirmed,
                "run \(runID): a killed attempt wrote its objects to \(s3.location)/\(collab)/\(runID)/, "
                    + "but this attempt's objects differ and the coordinator cannot read the bucket to learn whether that attempt's "
                    + "manifest was written; nothing was written now. Ask the provider whether manifest.json exists there "
                    + "(its SHA-256 should be \(recorded.manifestSHA256))")
        }
        if try s3.commitManifest(plan, collaborationID: collab, runID: runID) {
            return (plan.manifest.sha256, plan.objects.count)
        }
        return (recordedSHA, recorded.objects)
    }

    /// Round 6 (provider): verify the delivery and write the plain CSV for a DSP upload.
    public static func providerOpen(
        agreement: VerifiedAgreement, identity: PartyIdentity, runID: String,
        source: DeliveryDestination, output: String, progress: ProgressReporter? = nil
    ) throws(Error) -> Int {
        // Before any path is built from it: the run ID names the delivery's directory or S3 prefix.
        _ = try UUIDBytes.runID(runID)
        let provider = try Provider(agreement: agreement, identity: identity)
        progress?("reading run \(runID)'s delivery manifest")
        // Objects that must be copied to be read in pieces (S3) go to a private scratch directory
        // beside the output (mode 0700, files 0600 unlinked at once): sealed records, next to
        // where their plaintext is going anyway, and on the output's disk rather than a tmpfs.
        let dir = (output as NSString).deletingLastPathComponent
        let prefix = ".\((output as NSString).lastPathComponent).scratch-\(Files.hostTag)-"
        // A killed open leaves its (empty: files are unlinked at once) directory: remove those of
        // dead processes on this host, as Files does for temporaries.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir)) ?? []
        where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            if let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0, kill(pid, 0) == -1,
                errno == ESRCH
            {
                rmdir((dir.isEmpty ? "." : dir) + "/" + name)
            }
        }
        let scratchDir = (dir.isEmpty ? "." : dir) + "/" + prefix + "\(getpid())-\(Hex.encode(SecureRandom.bytes(4)))"
        let scratch = try DirectoryScratch(directory: scratchDir)
        defer { rmdir(scratchDir) }
        let sink = try AtomicOutputFile(path: output, mode: 0o600)
        do {
            var delivery = try source.read(
                collaborationID: agreement.terms.collaborationID, runID: runID, scratch: scratch)
            // Whatever the destination set: the manifest must be this run's (not one copied here).
            delivery.expectedRunID = runID
            progress?("manifest read; verifying each object against it and opening its sealed records into \(output)")
            let n = try provider.open(delivery, into: sink)
            try sink.commit()
            return n
        } catch {
            sink.abandon()
            throw error
        }
    }

    /// Whose access a destination is opened with.
    public enum DestinationAccess: Sendable {
        /// Write-only: for S3, the agreement's role assumed per run with the External ID.
        case coordinator
        /// The provider's own credentials, to read its delivery back.
        case provider
    }

    /// The destination the agreement names: a local directory, or the provider's S3 path (AWS
    /// settings from `environment`: credentials chain, endpoint overrides; the agreement's region
    /// wins over `AWS_REGION`).
    public static func destination(
        for agreement: VerifiedAgreement, access: DestinationAccess = .coordinator,
        environment: AWSEnvironment = AWSEnvironment()
    ) throws -> DeliveryDestination {
        guard let d = agreement.terms.destination else {
            throw WorkflowError(.destination, "the agreement names no destination")
        }
        switch d.kind {
        case "local":
            guard let dir = d.directory else {
                throw WorkflowError(.destination, "a local destination needs a directory")
            }
            return LocalDirectoryDestination(directory: dir)
        case "s3":
            guard let bucket = d.bucket else { throw WorkflowError(.destination, "an s3 destination needs a bucket") }
            let location = try S3Location(bucket: bucket, prefix: d.prefix ?? "")
            let endpoints = try AWSEndpoints.resolve(environment, region: d.region)
            let http = AWSHTTP.fromEnvironment(environment)
            let credentials = try CredentialChain.resolve(environment, endpoints: endpoints, http: http)
            switch access {
            case .coordinator:
                guard let role = d.roleARN else {
                    throw WorkflowError(.destination, "an s3 destination needs the provider's role ARN")
                }
                return S3Destination(
                    coordinator: credentials, roleARN: role, externalID: agreement.terms.externalID,
                    location: location, endpoints: endpoints, http: http)
            case .provider:
                return S3Destination(provider: credentials, location: location, endpoints: endpoints, http: http)
            }
        default:
            throw WorkflowError(.destination, "destination kind '\(d.kind)' is not supported by this build")
        }
    }
}
