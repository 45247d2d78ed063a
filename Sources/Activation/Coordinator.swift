import Foundation
import Gzip
import RistrettoPSI

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
    /// A history; the defaults describe a collaboration with no earlier run.
    public init(
        usedRunIDs: Set<String> = [], runsInWindow: Int = 0, epsilonSpentMillis: Int = 0, sketches: [RunSketch] = []
    ) {
        self.usedRunIDs = usedRunIDs
        self.runsInWindow = runsInWindow
        self.epsilonSpentMillis = epsilonSpentMillis
        self.sketches = sketches
    }
}

/// Counts of one run: all the consumer ever learns (through the audit log).
public struct MatchCounts: Sendable, Equatable {
    /// Consumer rows selected, as the consumer set's metadata reports them (0 when absent).
    public var consumerRows = 0
    /// Distinct consumer identifiers: the consumer set's element count.
    public var consumerIdentifiers = 0
    /// The provider set's element count.
    public var providerElements = 0
    /// Matching element pairs, before deduplication by provider row.
    public var matchedElements = 0
    /// Distinct provider rows matched: the exact count, which k is checked against.
    public var matchedRows = 0
    /// Under differential privacy: the noisy matched count, the only one the consumer may see.
    public var noisyMatchedRows: Int?
    /// Under differential privacy: the ε (thousandths) this run spent.
    public var epsilonMillis: Int?
    /// The run's matched-set sketch, for the coordinator-private store (never the audit log).
    public var sketch: RunSketch?
    /// All counts zero, no noise, no sketch.
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
    /// The verified agreement this coordinator acts under.
    public let agreement: VerifiedAgreement
    let identity: PartyIdentity
    /// Records per delivered object.
    public var recordsPerObject = 1_000_000

    /// The coordinator named in `agreement`: throws `activation.agreement.signature_invalid` when
    /// `identity`'s signing or sealing key is not the one the agreement names.
    public init(agreement: VerifiedAgreement, identity: PartyIdentity) throws(ActivationError) {
        guard identity.signingKey.verifyingKey == agreement.coordinatorKey,
            identity.sealingKey.publicKey == agreement.coordinatorSealingKey
        else {
            throw ActivationError(
                .agreementSignatureInvalid, "this identity is not the coordinator named in the agreement")
        }
        self.agreement = agreement
        self.identity = identity
    }

    /// Round 5: match one run held in memory: a thin wrapper over the streaming
    /// ``match(runID:payload:consumerSet:providerSet:scratch:history:now:names:)`` (each message's
    /// bytes as a ``BytesSource``, scratch in memory), so tests, vectors, fuzzers and the benchmark
    /// exercise the streaming code and get the same delivered bytes.
    /// - Throws: ``ActivationError`` for any message that fails a check, a reused run ID, a run
    ///   over the frequency cap, or too few consumer identifiers; nothing is delivered then.
    public func match(
        runID: String, payload: ProviderPayload, consumerSet: ConsumerReblindedSet,
        providerSet: ProviderReblindedSet, history: RunHistory, now: Date = Date()
    ) throws(ActivationError) -> MatchOutcome {
        do {
            return try match(
                runID: runID, payload: BytesSource(payload.message.serialized()),
                consumerSet: BytesSource(consumerSet.message.serialized()),
                providerSet: BytesSource(providerSet.message.serialized()),
                scratch: MemoryScratch(), history: history, now: now)
        } catch let e as ActivationError {
            throw e
        } catch {
            // In-memory sources and scratch throw nothing else.
            throw ActivationError(.messageMalformed, "matching in memory failed: \(error)")
        }
    }

    /// How the three inputs are named in errors (their paths at the edge).
    public struct InputNames: Sendable {
        /// Each input's name, as errors show it.
        public var payload: String, consumerSet: String, providerSet: String
        /// Names for the payload, the consumer set and the provider set.
        public init(payload: String, consumerSet: String, providerSet: String) {
            self.payload = payload
            self.consumerSet = consumerSet
            self.providerSet = providerSet
        }
        /// The names used when the caller gives none.
        public static let standard = InputNames(
            payload: "provider-payload", consumerSet: "consumer-reblinded", providerSet: "provider-reblinded")
    }

    /// Round 5 in bounded memory: streams each message once, joins the two sides partition by
    /// partition, and writes the delivery objects to `scratch` (the plan's objects read from there,
    /// so the scratch space must live until the destination has written them).
    ///
    /// Contract: every check of SPEC §6 round 5, in order: run ID (reuse, cap, ε budget), each
    /// message's header and signature (run, record size), reference and count between payload and
    /// provider-reblinded, empty sets, strict decoding of every element (absolute index), the body
    /// checksum of every input (``MessageReader/endPass()``) before anything read from it is used
    /// or reported, duplicates on each side, the consumer minimum, then the matched rows
    /// (deduplicated by provider row, the lowest matching element's consumer attributes),
    /// near-duplicate guard, noise and k. Memory: the spill budget for one partition pair, one
    /// sorted run of matches, and the provider rows (or a file of them); the payload and the
    /// consumer's sealed attributes are copied into private scratch files as they stream, so the
    /// delivery reads verified copies, never the exchange again.
    /// - Throws: ``ActivationError`` as the in-memory API, or the sources' and scratch's own errors.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 5, §9 "Bounded memory", "Coordinator".
    public func match(
        runID: String, payload: any ByteSource, consumerSet: any ByteSource, providerSet: any ByteSource,
        scratch: any ScratchSpace, history: RunHistory, now: Date = Date(),
        names: InputNames = .standard
    ) throws -> MatchOutcome {
        try match(
            runID: runID, payload: payload, consumerSet: consumerSet, providerSet: providerSet, scratch: scratch,
            history: history, now: now, names: names, budget: SpillBudget.bytes)
    }

    /// Records per chunk read from a message (ElementBatch validates a chunk on every core).
    static let chunkRecords = 4_096

    /// How round 5 spreads its work. Production uses ``standard``; tests shrink the chunks and
    /// blocks and force either path, to show both give the same bytes and the same first error.
    struct Tuning: Sendable {
        /// Records per chunk read from a set (validated on every core while the next is read).
        var chunk = Coordinator.chunkRecords
        /// Delivered rows formatted per block (reads, opening and formatting on every core).
        var block = 4096
        /// Bytes read through between two records of a block rather than reading each alone
        /// (``RecordGather``); tests set 0 (a read per record) and a large gap (one span per block).
        var gap = RecordGather.gapBytes
        /// `nil`: pipelined whenever batches run on more than one thread (``Parallel/workerCount``,
        /// so `CLEANROOM_THREADS=1` keeps the whole round on the calling thread).
        var pipelined: Bool?
        static let standard = Tuning()
        var isPipelined: Bool { pipelined ?? (Parallel.workerCount > 1) }
    }

    /// `budget` is a parameter so the tests can force many partitions and sorted runs.
    func match(
        runID: String, payload: any ByteSource, consumerSet: any ByteSource, providerSet: any ByteSource,
        scratch: any ScratchSpace, history: RunHistory, now: Date, names: InputNames, budget: Int,
        tuning: Tuning = .standard
    ) throws -> MatchOutcome {
        let inputs = try open(
            runID: runID, payload: payload, consumerSet: consumerSet, providerSet: providerSet,
            history: history, names: names)
        return try match(inputs, scratch: scratch, now: now, budget: budget, tuning: tuning)
    }

    /// Round 5's inputs, opened and their headers verified, no body byte read yet: what
    /// ``open(runID:payload:consumerSet:providerSet:history:names:)`` returns and
    /// ``match(_:scratch:now:)`` consumes, so that a caller can act on the verified headers
    /// (the free-space preflight) without opening and verifying them a second time.
    /// - Warning: match one value once: the readers stream their bodies.
    public struct MatchInputs {
        let runID: String
        let run: [UInt8]
        let history: RunHistory
        let names: InputNames
        var payload: MessageReader
        var consumerSet: MessageReader
        var providerSet: MessageReader
        /// The payload's verified header (signature, run, record size, reference and counts checked).
        public var payloadHeader: MessageHeader { payload.header }
        /// The consumer set's verified header (signature, run and record size checked, not empty).
        public var consumerSetHeader: MessageHeader { consumerSet.header }
        /// The provider set's verified header (signature, run and record size checked; the payload's
        /// reference and count, not empty).
        public var providerSetHeader: MessageHeader { providerSet.header }
    }

    /// The checks of round 5's first step that need no message at all, in order: the run ID's
    /// form, its reuse, the run cap and the ε budget (what an S3 exchange's coordinator asks
    /// before downloading anything; ``open(runID:payload:consumerSet:providerSet:history:names:)``
    /// starts with them too). Returns the run ID's bytes.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 5, §9.1.
    public func checkRun(runID: String, history: RunHistory) throws(ActivationError) -> [UInt8] {
        let run = try UUIDBytes.runID(runID)
        guard !history.usedRunIDs.contains(runID) else {
            throw ActivationError(.runAlreadyUsed, "run \(runID) already has an audit entry; a run ID is used once")
        }
        guard history.runsInWindow < agreement.terms.privacy.maxRunsPerWindow else {
            throw ActivationError(
                .runLimitReached,
                "\(history.runsInWindow) runs in the last \(agreement.terms.privacy.windowSeconds) s; the agreement allows \(agreement.terms.privacy.maxRunsPerWindow)"
            )
        }
        try PrivacyGuards.checkBudget(agreement.terms.privacy, spentMillis: history.epsilonSpentMillis)
        return run
    }

    /// Round 5's first step: every check of SPEC §6 round 5 that needs no body, in order: run ID
    /// (reuse, cap, ε budget), each message's header and signature (run, record size), reference
    /// and count between payload and provider-reblinded, empty sets. Reads only the headers.
    /// - Throws: ``ActivationError`` as ``match(runID:payload:consumerSet:providerSet:scratch:history:now:names:)``
    ///   for these checks, or the sources' own errors.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 5, §9 "Coordinator (round 5)".
    public func open(
        runID: String, payload: any ByteSource, consumerSet: any ByteSource, providerSet: any ByteSource,
        history: RunHistory, names: InputNames = .standard
    ) throws -> MatchInputs {
        let run = try checkRun(runID: runID, history: history)
        // Headers and signatures first (nothing of a body is read yet); the run is checked there.
        func open(_ source: any ByteSource, _ kind: MessageKind, _ name: String, recordSize: Int) throws
            -> MessageReader
        {
            let r = try MessageReader(source, expecting: kind, agreement: agreement, run: run, name: name)
            guard r.recordSize == recordSize else {
                throw ActivationError(
                    .messageMalformed, "\(name): record size \(r.recordSize), the agreement implies \(recordSize)")
            }
            return r
        }
        let p = try open(payload, .providerPayload, names.payload, recordSize: Layout.payloadRecordSize(agreement))
        let c = try open(
            consumerSet, .consumerReblinded, names.consumerSet, recordSize: Layout.consumerRecordSize(agreement))
        let q = try open(providerSet, .providerReblinded, names.providerSet, recordSize: Layout.elementSize)
        // Rounds 1 and 4 both name round 1's body: the consumer re-blinded exactly what the provider sent.
        guard q.header.reference == p.header.reference else {
            throw ActivationError(
                .messageReferenceMismatch, "provider-reblinded does not answer the provider set this payload belongs to"
            )
        }
        guard q.count == p.count else {
            throw ActivationError(
                .messageCountMismatch, "provider-reblinded has \(q.count) elements, the payload \(p.count)")
        }
        // Honest parties never send an empty set (prepare refuses one); an empty set can only
        // probe the next step, so it is refused by name rather than matched as "nothing".
        guard c.count > 0 else { throw ActivationError(.emptySet, "consumer-reblinded: the set has no elements") }
        guard q.count > 0 else { throw ActivationError(.emptySet, "provider-reblinded: the set has no elements") }
        return MatchInputs(
            runID: runID, run: run, history: history, names: names, payload: p, consumerSet: c, providerSet: q)
    }

    /// Round 5 after ``open(runID:payload:consumerSet:providerSet:history:names:)``: the bodies
    /// streamed, joined and delivered, with the contract and errors of
    /// ``match(runID:payload:consumerSet:providerSet:scratch:history:now:names:)`` from the
    /// strict decoding on.
    public func match(_ inputs: MatchInputs, scratch: any ScratchSpace, now: Date = Date()) throws -> MatchOutcome {
        try match(inputs, scratch: scratch, now: now, budget: SpillBudget.bytes, tuning: .standard)
    }

    func match(_ inputs: MatchInputs, scratch: any ScratchSpace, now: Date, budget: Int, tuning: Tuning) throws
        -> MatchOutcome
    {
        let run = inputs.run
        let runID = inputs.runID
        let history = inputs.history
        var p = inputs.payload
        var c = inputs.consumerSet
        var q = inputs.providerSet

        // Pass over the payload: a private copy of its records and the row of every position.
        // With more than one thread it runs on a job beside the consumer's pass (it only reads
        // the payload and writes its own copy and rows); it is joined before anything after it
        // is reported, so its failure comes first, as when it ran first.
        let payloadPass = PayloadPass(
            reader: p, copy: try scratch.makeFile(),
            rows: try RowTable(count: p.count, budget: budget, scratch: scratch), chunk: tuning.chunk)
        var payloadJob: Parallel.Job<PayloadPass>?
        if tuning.isPipelined {
            payloadJob = Parallel.Job {
                try payloadPass.run()
                return payloadPass
            }
        } else {
            try payloadPass.run()
        }

        // Passes over both sets: each element validated, then partitioned with its position; the
        // consumer's sealed attributes copied privately. Partition p of both sides meet.
        let partitionCount = SpillBudget.pieces(
            count: c.count + q.count, recordSize: ElementPartitions.recordSize, budget: budget)
        var consumerParts: ElementPartitions
        var providerParts: ElementPartitions
        let attributeSize = c.recordSize - Layout.elementSize
        let attributeCopy: (any ScratchFile)?
        do {
            consumerParts = try ElementPartitions(expectedCount: c.count, scratch: scratch, partitions: partitionCount)
            providerParts = try ElementPartitions(expectedCount: q.count, scratch: scratch, partitions: partitionCount)
            attributeCopy = attributeSize > 0 ? try scratch.makeFile() : nil
            try Self.stream(
                &c, source: "consumer-reblinded", into: &consumerParts, attributes: attributeCopy, tuning: tuning)
        } catch {
            if let job = payloadJob { _ = try job.join() }
            throw error
        }
        if let job = payloadJob { _ = try job.join() }
        p = payloadPass.reader
        var rows = payloadPass.rows
        let payloadCopy = payloadPass.copy
        try Self.stream(&q, source: "provider-reblinded", into: &providerParts, attributes: nil, tuning: tuning)

        // The partitioned join: duplicates on each side (the first a sequential scan finds, as
        // in memory: smallest second position) and the matched pairs, sorted by (row, element).
        var duplicateConsumer: (first: Int, second: Int)?
        var duplicateProvider: (first: Int, second: Int)?
        var sorter = MatchSorter(scratch: scratch, budget: budget, expected: min(c.count, q.count))
        try ElementPartitions.drainPairs(&consumerParts, &providerParts) { a, b in
            let join = a.elements.withUnsafeBytes { ra in
                b.elements.withUnsafeBytes { rb in ElementJoin.intersect(records: ra, rb) }
            }
            if let d = join.duplicateInA, duplicateConsumer.map({ Int(a.positions[d.second]) < $0.second }) ?? true {
                duplicateConsumer = (Int(a.positions[d.first]), Int(a.positions[d.second]))
            }
            if let d = join.duplicateInB, duplicateProvider.map({ Int(b.positions[d.second]) < $0.second }) ?? true {
                duplicateProvider = (Int(b.positions[d.first]), Int(b.positions[d.second]))
            }
            // A run with a duplicate is refused: its matches are not worth keeping.
            guard duplicateConsumer == nil && duplicateProvider == nil else { return }
            try b.elements.withUnsafeBytes { rb in
                for (i, j) in join.matches {
                    let position = b.positions[i]
                    try sorter.append(
                        MatchRecord(
                            row: try rows.row(position), element: rb.baseAddress! + i * Layout.elementSize,
                            consumerPosition: a.positions[j], providerPosition: position))
                }
            }
        }
        rows = try RowTable(count: 0, budget: budget, scratch: scratch)
        try Layout.refuseDuplicate(duplicateConsumer, source: "consumer-reblinded")
        try Layout.refuseDuplicate(duplicateProvider, source: "provider-reblinded")

        var counts = MatchCounts()
        counts.consumerIdentifiers = c.count
        counts.consumerRows = Int(c.header.metadata["consumerRows"] ?? "") ?? 0
        counts.providerElements = q.count
        guard c.count >= agreement.terms.privacy.minConsumerRows else {
            throw ActivationError(
                .belowMinimumConsumerRows,
                "the consumer set has \(c.count) identifiers; the agreement requires at least \(agreement.terms.privacy.minConsumerRows)"
            )
        }

        // Provider rows in order, each once with its lowest matching element (the first of its
        // row in the sorted stream): (consumer position, provider position) per delivered row.
        let winners = try scratch.makeFile()
        var staged = [UInt8]()
        var sketch = RunSketch.Builder(
            runID: runID, coordinator: identity.signingKey, collaborationUUID: agreement.collaborationUUID)
        var lastRow: UInt64?
        var sketchRows: [UInt64] = []
        counts.matchedElements = sorter.count
        try sorter.drain { m in
            guard m.row != lastRow else { return }
            lastRow = m.row
            counts.matchedRows += 1
            // Tagged in blocks on every core (a SHA-256 per row), kept in row order as one by one.
            sketchRows.append(m.row)
            if sketchRows.count == 4096 {
                sketch.add(rows: sketchRows)
                sketchRows.removeAll(keepingCapacity: true)
            }
            withUnsafeBytes(of: m.consumerPosition.littleEndian) { staged.append(contentsOf: $0) }
            withUnsafeBytes(of: m.providerPosition.littleEndian) { staged.append(contentsOf: $0) }
            if staged.count >= 64 << 10 {
                try staged.withUnsafeBytes { try winners.append($0) }
                staged.removeAll(keepingCapacity: true)
            }
        }
        try staged.withUnsafeBytes { try winners.append($0) }
        staged = []
        // Differencing: compare this run's matched provider rows with earlier runs' (SPEC §9.1).
        sketch.add(rows: sketchRows)
        sketchRows = []
        let runSketch = sketch.finish()
        try PrivacyGuards.checkNearDuplicate(
            runSketch, against: history.sketches, percent: agreement.terms.privacy.effectiveRunSimilarityPercent)
        counts.sketch = runSketch
        var deliverable = counts.matchedRows >= agreement.terms.privacy.minMatchedRows
        if let noise = agreement.terms.privacy.noise {
            // The consumer sees only the noisy count, and the outcome is decided on it (plus a
            // margin), so the outcome is post-processing of a differentially private release.
            let noisy = max(
                0,
                counts.matchedRows
                    + GeometricNoise.sample(epsilonMillis: noise.epsilonMillis, sensitivity: noise.sensitivity))
            counts.noisyMatchedRows = noisy
            counts.epsilonMillis = noise.epsilonMillis
            deliverable =
                deliverable && noisy >= agreement.terms.privacy.minMatchedRows + PrivacyGuards.thresholdMargin(noise)
        }
        guard deliverable else { return .belowThreshold(counts) }

        let plan = try buildDelivery(
            run: run, winners: winners, rows: counts.matchedRows, payload: p.header, payloadCopy: payloadCopy,
            consumer: c.header, attributeCopy: attributeCopy, scratch: scratch, now: now, tuning: tuning)
        return .deliver(plan, counts)
    }

    /// One chunk of a set, validated: its records' bytes after the element (the sealed
    /// attributes, when the record has any) and its first invalid element (index in the chunk, code).
    struct ValidatedChunk: Sendable {
        var rest: [UInt8] = []
        var invalid: (index: Int?, code: String)?
    }

    /// Splits a chunk's records into elements and the rest, and strictly decodes the elements (on
    /// every core, `ElementBatch(validating:)`). Runs on a pipeline job or inline.
    static func validate(_ chunk: [UInt8], recordSize size: Int) -> ValidatedChunk {
        var out = ValidatedChunk()
        let n = chunk.count / size
        var elements: [UInt8]
        if size == Layout.elementSize {
            elements = chunk
        } else {
            elements = [UInt8](repeating: 0, count: n * Layout.elementSize)
            out.rest = [UInt8](repeating: 0, count: n * (size - Layout.elementSize))
            let restSize = size - Layout.elementSize
            chunk.withUnsafeBytes { b in
                elements.withUnsafeMutableBytes { e in
                    out.rest.withUnsafeMutableBytes { r in
                        for i in 0..<n {
                            (e.baseAddress! + i * Layout.elementSize).copyMemory(
                                from: b.baseAddress! + i * size, byteCount: Layout.elementSize)
                            (r.baseAddress! + i * restSize).copyMemory(
                                from: b.baseAddress! + i * size + Layout.elementSize, byteCount: restSize)
                        }
                    }
                }
            }
        }
        do { _ = try ElementBatch(validating: elements) } catch { out.invalid = (error.index, error.code.rawValue) }
        return out
    }

    /// One pass over a set: each chunk's elements validated (the first invalid one remembered
    /// with its absolute position and reported only once the pass verified the body's checksum,
    /// so a changed byte is reported as what it is), then partitioned; the records' bytes after
    /// the element appended to `attributes` when given.
    ///
    /// Pipelined (more than one thread): chunk k is validated on a ``Parallel/Job`` (itself on
    /// every core) while this thread reads and hashes chunk k+1 and partitions chunk k-1, so one
    /// chunk is in flight beside the one read. Chunks are joined and partitioned in order, and no
    /// chunk after the first invalid one is partitioned, so partitions, attributes and the error
    /// are those of the one-thread path. A read failure first completes the chunk before it (its
    /// scratch failure, if any, comes first, as it would on one thread).
    private static func stream(
        _ reader: inout MessageReader, source: String, into parts: inout ElementPartitions,
        attributes: (any ScratchFile)?, tuning: Tuning
    ) throws {
        let size = reader.recordSize
        let pipelined = tuning.isPipelined
        var invalid: ActivationError?
        // A chunk read and hashed, not yet partitioned: its bytes, first position and validation.
        var pending: (chunk: [UInt8], first: Int, job: Parallel.Job<ValidatedChunk>?, done: ValidatedChunk?)?
        var spare = [UInt8]()
        func complete() throws {
            guard let p = pending else { return }
            pending = nil
            let v = try p.job?.join() ?? p.done!
            defer { spare = p.chunk }
            guard invalid == nil else { return }
            if let bad = v.invalid {
                invalid = ActivationError(
                    .invalidElement,
                    "\(source): element \(bad.index.map { String(p.first + $0) } ?? "?") rejected: \(bad.code)")
                return
            }
            try p.chunk.withUnsafeBytes { try parts.append(elementsOf: $0, recordSize: size, firstPosition: p.first) }
            if let attributes { try v.rest.withUnsafeBytes { try attributes.append($0) } }
        }
        while true {
            let first = reader.position
            var chunk = spare
            spare = []
            let n: Int
            do { n = try reader.next(tuning.chunk, into: &chunk) } catch {
                try complete()
                throw error
            }
            if pipelined {
                // Start chunk k's validation before partitioning chunk k-1, so the two overlap.
                let previous = pending
                pending = nil
                if n > 0 && invalid == nil {
                    let bytes = chunk
                    pending = (chunk, first, Parallel.Job { Self.validate(bytes, recordSize: size) }, nil)
                }
                let started = pending
                pending = previous
                try complete()
                pending = started
            } else {
                try complete()
                if n > 0 && invalid == nil { pending = (chunk, first, nil, Self.validate(chunk, recordSize: size)) }
            }
            if n == 0 { break }
        }
        try complete()
        try reader.endPass()
        if let invalid { throw invalid }
    }

    /// Writes the delivery objects for the winners (consumer position, provider position) in
    /// provider-row order, reading the private copies of the payload and of the attributes.
    private func buildDelivery(
        run: [UInt8], winners: any ScratchFile, rows: Int, payload: MessageHeader, payloadCopy: any ScratchFile,
        consumer: MessageHeader, attributeCopy: (any ScratchFile)?, scratch: any ScratchSpace,
        now: Date, tuning: Tuning
    ) throws -> DeliveryPlan {
        let sealed = agreement.terms.output.sealed
        let member = agreement.terms.output.deliverMemberID
        let segmentID = consumer.metadata["segmentID"] ?? ""
        let segmentName = consumer.metadata["segmentName"] ?? ""
        guard Consumer.isSafeLabel(segmentID), Consumer.isSafeLabel(segmentName) else {
            throw ActivationError(.messageMalformed, "consumer-reblinded: segment labels missing or unsafe")
        }
        let outer: RecordOpener?
        if member {
            do {
                let key = try SealingPublicKey(bytes: consumer.sealingKey)
                outer = try RecordOpener(
                    recipient: identity.sealingKey, ephemeralPublicKey: key,
                    context: Layout.outerContext(agreement, run))
            } catch {
                throw ActivationError(.messageMalformed, "consumer-reblinded: the attribute sealing key is invalid")
            }
        } else {
            outer = nil
        }
        let columns = DeliveryPlan.columns(sealed: sealed, memberID: member)
        let headerLine = Array((columns.joined(separator: ",") + "\n").utf8)
        let gzip = agreement.terms.output.gzip
        var objects: [DeliveryPlan.Object] = []
        var current: DeliveryObjectWriter?
        func startObject() throws -> DeliveryObjectWriter {
            let w = try DeliveryObjectWriter(
                name: String(format: "part-%05d.csv", objects.count) + (gzip ? ".gz" : ""), gzip: gzip, scratch: scratch
            )
            try w.write(headerLine)
            return w
        }
        let payloadSize = payload.recordSize
        let attributeSize = consumer.recordSize - Layout.elementSize
        // The copies are complete: one read here flushes what a file still buffers, so the reads
        // of the blocks below (from several threads) only read (ScratchFile's contract).
        var probe: UInt8 = 0
        if payloadCopy.size > 0 { try withUnsafeMutableBytes(of: &probe) { try payloadCopy.read(at: 0, into: $0) } }
        if let attributeCopy, attributeCopy.size > 0 {
            try withUnsafeMutableBytes(of: &probe) { try attributeCopy.read(at: 0, into: $0) }
        }
        let formatter = RowFormatter(
            payloadCopy: payloadCopy, attributeCopy: attributeCopy, outer: outer, sealed: sealed,
            fixed: Array(("," + segmentID + "," + segmentName).utf8), payloadSize: payloadSize,
            attributeSize: attributeSize, gapBytes: tuning.gap)
        func write(_ lines: [Result<[UInt8], any Error>]) throws {
            for r in lines {
                let line = try r.get()
                if current == nil { current = try startObject() }
                try current!.line(line)
                if current!.records == recordsPerObject {
                    objects.append(try current!.finish())
                    current = nil
                }
            }
        }
        // Blocks of winners formatted on every core; with more than one thread block k+1 is
        // formatted on a job while this thread writes (hashes, compresses) block k. Blocks are
        // written in order and a failing row is thrown after the rows before it, so the objects
        // and the first error are those of one row after another.
        let block = max(1, tuning.block)
        let pipelined = tuning.isPipelined
        var pairs = [UInt64](repeating: 0, count: 2 * block)
        var inFlight: Parallel.Job<[Result<[UInt8], any Error>]>?
        var done = 0
        while done < rows {
            let n = min(block, rows - done)
            do {
                try pairs.withUnsafeMutableBytes {
                    try winners.read(at: done * 16, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(n * 16)]))
                }
            } catch {
                if let job = inFlight { try write(try job.join()) }
                throw error
            }
            let these = Array(pairs[0..<(2 * n)])
            if pipelined {
                let job = Parallel.Job { formatter.lines(these) }
                if let previous = inFlight { try write(try previous.join()) }
                inFlight = job
            } else {
                try write(formatter.lines(these))
            }
            done += n
        }
        if let job = inFlight { try write(try job.join()) }
        if let w = current { objects.append(try w.finish()) }
        if objects.isEmpty { objects.append(try startObject().finish()) }
        let manifest = Manifest(
            collaborationID: agreement.terms.collaborationID, runID: UUIDBytes.string(run),
            agreementHash: Hex.encode(agreement.hash),
            createdAt: ISO8601.format(now), sealed: sealed, compression: gzip ? "gzip" : nil, columns: columns,
            records: rows,
            objects: objects.map {
                Manifest.Object(name: $0.name, sha256: Hex.encode($0.sha256), bytes: $0.size, records: $0.records)
            },
            payloadSealingKey: sealed ? Hex.encode(payload.sealingKey) : nil,
            memberSealingKey: member ? consumer.metadata["innerSealingKey"] : nil)
        return DeliveryPlan(objects: objects, manifest: SignedManifest.sign(manifest, with: identity.signingKey))
    }
}

/// Formats delivered rows (round 5's delivery): each row's payload record and, with member IDs,
/// its sealed attributes read back from the private copies by position, the outer seal opened,
/// and the CSV line laid out. `@unchecked Sendable` because the copies are scratch files: they are
/// complete and were read once before a formatter is made, so from then on they are only read,
/// which ``ScratchFile`` allows from several threads.
///
/// A block's records are gathered first (``RecordGather``): its positions sorted, and records
/// closer than ``RecordGather/gapBytes`` read with one `pread` as a span, so a dense block costs
/// a few syscalls instead of one or two per row. The lines are then laid out from the gathered
/// bytes; a span whose read fails is read again record by record, so the rows, the delivery and
/// the row an I/O error (EIO: positions lie inside the file by construction) stops it at are
/// exactly those of each row reading its own records.
struct RowFormatter: @unchecked Sendable {
    let payloadCopy: any ScratchFile
    let attributeCopy: (any ScratchFile)?
    let outer: RecordOpener?
    let sealed: Bool
    /// `,segment_id,segment_name`.
    let fixed: [UInt8]
    let payloadSize: Int
    let attributeSize: Int
    let gapBytes: Int

    /// The lines of the winners `pairs` (consumer position, provider position, little-endian),
    /// formatted on every core, each row into its own slot, in order.
    func lines(_ pairs: [UInt64]) -> [Result<[UInt8], any Error>] {
        let n = pairs.count / 2
        let payload = RecordGather(
            file: payloadCopy, recordSize: payloadSize, gapBytes: gapBytes,
            positions: (0..<n).map { Int(UInt64(littleEndian: pairs[2 * $0 + 1])) })
        let attributes = attributeCopy.flatMap { copy in
            outer == nil
                ? nil
                : RecordGather(
                    file: copy, recordSize: attributeSize, gapBytes: gapBytes,
                    positions: (0..<n).map { Int(UInt64(littleEndian: pairs[2 * $0])) })
        }
        var out = [Result<[UInt8], any Error>](repeating: .success([]), count: n)
        out.withUnsafeMutableBufferPointer { slots in
            Parallel.forEachRange(count: n) { range in
                for k in range {
                    slots[k] = Result {
                        try line(
                            k, consumerIndex: Int(UInt64(littleEndian: pairs[2 * k])), payload: payload,
                            attributes: attributes)
                    }
                }
            }
        }
        return out
    }

    /// One delivered line (slot `k` of the gathered records), bytes identical to joining the
    /// fields with commas (SPEC §6 round 5); errors in the order of reading the payload record,
    /// checking it, reading the sealed attributes, opening them.
    private func line(_ k: Int, consumerIndex: Int, payload: RecordGather, attributes: RecordGather?) throws -> [UInt8]
    {
        if let e = payload.failures[k] { throw e }
        let record = payload.records[(k * payloadSize)..<((k + 1) * payloadSize)]
        var line: [UInt8] = []
        line.reserveCapacity(4 * (payloadSize + attributeSize) / 3 + fixed.count + 8)
        if sealed {
            Base64.append(record.dropFirst(Layout.rowIndexSize), to: &line)
        } else {
            guard let key = Layout.unpadded(Array(record.dropFirst(Layout.rowIndexSize))) else {
                throw ActivationError(.messageMalformed, "provider-payload: malformed audience key record")
            }
            line += CSVField.quoted(key)
        }
        line += fixed
        if let outer, let attributes {
            if let e = attributes.failures[k] { throw e }
            let opened: [UInt8]
            do {
                opened = try outer.open(Array(attributes.records[(k * attributeSize)..<((k + 1) * attributeSize)]))
            } catch {
                throw ActivationError(
                    .messageMalformed, "consumer-reblinded: element \(consumerIndex)'s sealed attributes do not open")
            }
            line.append(0x2c)
            Base64.append(opened[...], to: &line)
        }
        line.append(0x0a)
        return line
    }
}

/// The records of a scratch file at a block's positions, gathered with few reads: the positions
/// sorted, and records whose gap is at most ``gapBytes`` read as one span (at most ``spanBytes``),
/// the spans read on every core. Memory: the block's records plus one span buffer per worker.
///
/// Contract: slot k holds the record at `positions[k]`, or `failures[k]` the error of reading
/// that record alone (a span that fails is read again record by record; positions must lie
/// inside the file; the file must only be read meanwhile, as ``ScratchFile`` allows from several
/// threads once complete).
/// - SeeAlso: `Protocol/SPEC.md` §9 "Coordinator (round 5)".
struct RecordGather: @unchecked Sendable {
    /// Bytes between two wanted records worth reading through rather than paying another
    /// syscall: a `pread` here costs about what copying a few KiB from the page cache costs.
    static let gapBytes = 8 << 10
    /// The longest span read at once (bounds each worker's buffer).
    static let spanBytes = 256 << 10
    private(set) var records: [UInt8]
    private(set) var failures: [(any Error)?]

    init(file: any ScratchFile, recordSize size: Int, gapBytes: Int, positions: [Int]) {
        let n = positions.count
        records = [UInt8](repeating: 0, count: n * size)
        failures = [(any Error)?](repeating: nil, count: n)
        guard n > 0 else { return }
        // Slots in position order: (position, slot) packed in one integer sorts without a closure.
        let order: [Int]
        if n < 1 << 24, positions.allSatisfy({ $0 < 1 << 40 }) {
            var keys = positions.enumerated().map { UInt64($0.element) << 24 | UInt64($0.offset) }
            keys.sort()
            order = keys.map { Int($0 & (1 << 24 - 1)) }
        } else {
            order = (0..<n).sorted { positions[$0] < positions[$1] }
        }
        // Spans as ranges of `order`: each extends while the next record starts within the gap.
        var spans: [Range<Int>] = []
        var start = 0
        for i in 1..<n {
            let end = (positions[order[i - 1]] + 1) * size
            let next = positions[order[i]] * size
            if next - end > gapBytes || next + size - positions[order[start]] * size > Self.spanBytes {
                spans.append(start..<i)
                start = i
            }
        }
        spans.append(start..<n)
        records.withUnsafeMutableBytes { out in
            failures.withUnsafeMutableBufferPointer { failed in
                Parallel.forEachRange(count: spans.count) { range in
                    var buffer = [UInt8]()
                    for s in range {
                        let span = spans[s]
                        let first = positions[order[span.lowerBound]] * size
                        let length = (positions[order[span.upperBound - 1]] + 1) * size - first
                        if buffer.count < length { buffer = [UInt8](repeating: 0, count: length) }
                        do {
                            try buffer.withUnsafeMutableBytes {
                                try file.read(at: first, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<length]))
                            }
                        } catch {
                            // Read again record by record, so that only records whose own read
                            // fails are failed: a delivery stops at the row one read per record
                            // would have stopped at, not a few rows earlier.
                            for i in span {
                                let k = order[i]
                                do {
                                    try file.read(
                                        at: positions[k] * size,
                                        into: UnsafeMutableRawBufferPointer(
                                            start: out.baseAddress! + k * size, count: size))
                                } catch {
                                    failed[k] = error
                                }
                            }
                            continue
                        }
                        buffer.withUnsafeBytes { b in
                            for i in span {
                                let k = order[i]
                                (out.baseAddress! + k * size).copyMemory(
                                    from: b.baseAddress! + (positions[k] * size - first), byteCount: size)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Round 5's pass over the payload: a private copy of its records and the provider row of every
/// position, checked against the body's hash at the end. A class, `@unchecked Sendable`, so that
/// it can run on a pipeline job and be mutated in place there (a struct handed to the job would
/// copy the row table on its first append): from the job's start to its join only the job
/// touches the reader, the copy and the rows.
final class PayloadPass: @unchecked Sendable {
    private(set) var reader: MessageReader
    let copy: any ScratchFile
    private(set) var rows: RowTable
    let chunk: Int

    init(reader: MessageReader, copy: any ScratchFile, rows: RowTable, chunk: Int) {
        self.reader = reader
        self.copy = copy
        self.rows = rows
        self.chunk = chunk
    }

    func run() throws {
        var buffer = [UInt8]()
        while try reader.next(chunk, into: &buffer) > 0 {
            try buffer.withUnsafeBytes { b in
                try copy.append(b)
                try rows.append(records: b, recordSize: reader.recordSize)
            }
        }
        try reader.endPass()
    }
}
