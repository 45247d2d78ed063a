import Foundation
import Identifiers
import RistrettoPSI

// Rounds 1 and 2 in bounded memory: the input streams through in chunks (filter, normalize, hash
// to the group, blind), each identifier is spilled with its first-seen sequence number and its
// row's data, duplicates are removed per partition (equal normalized values give equal blinded
// elements), and the survivors go through an external shuffle straight into the message writers.
// - SeeAlso: `Protocol/SPEC.md` §6 rounds 1 and 2, §9 "Bounded memory".

// MARK: Row sources

/// Where a party's prepare step reads its rows, in input order: the streamed CSV reader at the
/// edge (Workflow), an array in tests.
///
/// Contract: ``next()`` returns each row once, in order, then `nil`; errors are the source's own
/// (e.g. `csv.*`), and a prepare stops at the first one, before anything is written.
public protocol InputRowSource: AnyObject {
    func next() throws -> InputRow?
}

/// Rows held in memory (tests, the in-memory round APIs).
public final class ArrayRowSource: InputRowSource {
    private var rows: [InputRow]
    private var position = 0
    /// A source of `rows`, in order.
    public init(_ rows: [InputRow]) { self.rows = rows }
    /// The next row, or `nil` after the last (the rows are then released).
    public func next() -> InputRow? {
        guard position < rows.count else {
            rows = []
            return nil
        }
        defer { position += 1 }
        return rows[position]
    }
}

// MARK: The streamed half shared by both parties

/// How a prepare runs its batches. Production uses ``standard``; tests vary the chunk size,
/// force either path and make one batch's arithmetic fail, to show both paths agree byte for byte.
struct PrepareTuning: Sendable {
    /// Messages per batch.
    var chunk = IdentifierStream.defaultChunk
    /// `nil`: pipelined whenever batches run on more than one thread (``Parallel/workerCount``,
    /// read at each batch, so `CLEANROOM_THREADS=1` keeps the whole round on the calling thread).
    var pipelined: Bool?
    /// Tests only: the batch (counted from 0) whose group arithmetic fails, as a crypto failure would.
    var failingBatch: Int?

    static let standard = PrepareTuning()
}

/// What follows the element in a record: `clear` leading bytes as they are (the provider's row
/// number), then the rest sealed by each sealer in turn (none, the audience key's one, or the
/// member ID's inner and outer layers). Sealing happens in a batch's parallel part.
struct TailSealing: Sendable {
    /// Bytes the row's datum gives: clear bytes, then the plaintext to seal.
    let plainSize: Int
    let clear: Int
    let sealers: [RecordSealer]
    var tailSize: Int { plainSize + sealers.count * RecordSealer.overhead }

    /// Seals the tail of each valid row in `rows` from its plain datum (``plainSize`` bytes at
    /// `plain + r * plainSize`) straight into `out(r)`: `clear` bytes copied, then the rest
    /// through each sealer in turn, an inner layer into the caller's `scratch`
    /// (``scratchSize`` bytes), the last straight into `out(r)`; an invalid row's tail is zeroed,
    /// so no stale memory reaches a scratch file. Nonces come from `random`, the calling thread's
    /// generator, drawn per row in layer order as one row at a time would. The sealers are taken
    /// out of their array once per call, not once per row, and nothing is allocated per row.
    func sealRows(
        _ rows: Range<Int>, valid: (Int) -> Bool, plain: UnsafeRawPointer, out: (Int) -> UnsafeMutableRawPointer,
        random: BufferedRandom, scratch: UnsafeMutableRawBufferPointer
    ) {
        let clear = clear
        let sealed = plainSize - clear
        func input(_ r: Int) -> UnsafeRawBufferPointer {
            UnsafeRawBufferPointer(start: plain + r * plainSize + clear, count: sealed)
        }
        func tail(_ r: Int, _ size: Int) -> UnsafeMutableRawBufferPointer {
            let o = out(r)
            if clear > 0 { o.copyMemory(from: plain + r * plainSize, byteCount: clear) }
            return UnsafeMutableRawBufferPointer(start: o + clear, count: size)
        }
        switch sealers.count {
        case 0:
            for r in rows where valid(r) { out(r).copyMemory(from: plain + r * plainSize, byteCount: plainSize) }
        case 1:
            let only = sealers[0]
            let size = sealed + RecordSealer.overhead
            for r in rows where valid(r) { only.seal(input(r), into: tail(r, size), random: random) }
        case 2:
            let inner = sealers[0]
            let outer = sealers[1]
            let middle = UnsafeMutableRawBufferPointer(rebasing: scratch[..<(sealed + RecordSealer.overhead)])
            for r in rows where valid(r) {
                inner.seal(input(r), into: middle, random: random)
                outer.seal(
                    UnsafeRawBufferPointer(middle), into: tail(r, middle.count + RecordSealer.overhead), random: random)
            }
        default:
            preconditionFailure("a tail has at most two sealed layers")
        }
        for r in rows where !valid(r) { out(r).initializeMemory(as: UInt8.self, repeating: 0, count: tailSize) }
    }

    /// Bytes of scratch ``sealRows(_:valid:plain:out:random:scratch:)`` needs: one inner layer.
    var scratchSize: Int { max(1, tailSize) }
}

/// Normalizes, hashes and blinds a party's identifiers chunk by chunk and spills each as a
/// partition record `element (32) ‖ sequence (u64 LE) ‖ status (u8) ‖ data row (u64 LE) ‖ tail`,
/// where the sequence number counts valid identifiers in input order (so the smallest one of an
/// element is its first sighting), `status` says whether the row's own data (audience key, member
/// ID) is valid, and `tail` is what the output record carries after the element (already sealed).
///
/// Pipelined (more than one thread): while one batch is hashed, blinded and sealed on every core
/// by a ``Parallel/Job``, the caller reads and normalizes the next; the batch is joined and
/// spilled when the next one is full, at the end of the input, or on any error. So at most one
/// batch is in flight besides the one being filled, and a batch's records, sequence numbers and
/// spill order are those of the plain path (one batch after the other on the calling thread).
///
/// Error order is the in-memory one: the input's own errors (a CSV error anywhere) first, then
/// the first invalid identifier in input order, then an empty set, then the agreed maximum, then
/// the first invalid row datum in first-seen order. So an invalid identifier is held (`pending`)
/// while the rest of the input is read, unprocessed, for the source's errors. A batch's own
/// failure (crypto, scratch) comes before anything raised by the rows read after it: every exit
/// joins the batch in flight first (``completeInFlight()``), as the plain path would have failed there.
struct IdentifierStream {
    /// Messages hashed and blinded per batch: enough for ElementBatch's parallel paths to keep
    /// every core busy, small enough to be noise beside the spill budget.
    static let defaultChunk = 4_096
    static let headSize = 32 + 8 + 1 + 8
    enum Status: UInt8 {
        case valid = 0
        case invalid = 1
        case missing = 2
    }

    /// A full batch on its way through the group arithmetic: everything it needs, owned.
    struct Batch: Sendable {
        var messages: [[UInt8]] = []
        /// Per message: the index of its row in this batch.
        var messageRow: [Int32] = []
        /// Per row: status, data row, plain datum (``TailSealing/plainSize`` bytes, zeros unless valid).
        var status: [UInt8] = []
        var dataRow: [UInt64] = []
        var plain: [UInt8] = []
        var firstSequence: UInt64 = 0
        var index = 0

        init() {}
        /// An empty batch with room for a full one (`chunk` messages, at most as many rows), so
        /// filling it never regrows and copies its arrays.
        init(reserving chunk: Int, plainSize: Int) {
            messages.reserveCapacity(chunk)
            messageRow.reserveCapacity(chunk)
            status.reserveCapacity(chunk)
            dataRow.reserveCapacity(chunk)
            plain.reserveCapacity(chunk * plainSize)
        }
    }

    let source: String
    let columns: [IdentifierColumn]
    let normalizer: Normalizer
    let policy: InvalidValuePolicy
    let agreement: VerifiedAgreement
    let scalar: Scalar
    let sealing: TailSealing
    let tuning: PrepareTuning
    var tailSize: Int { sealing.tailSize }
    var recordSize: Int { Self.headSize + tailSize }
    var partitions: RecordPartitions
    var summary = PrepareSummary()
    var skipped = SkippedValues()
    /// Where spilled partitions and skips go (the party's private scratch space).
    let scratch: any ScratchSpace
    var pending: ActivationError?
    private var queued = Batch()
    private var inFlight: Parallel.Job<[UInt8]>?
    private var sequence: UInt64 = 0
    private var batches = 0

    /// `countryCode` overrides the agreement's default country calling code for this party's own
    /// numbers (``ProviderAudience/defaultCountryCallingCode``); `nil` keeps the agreement's.
    init(
        source: String, columns: [IdentifierColumn], agreement: VerifiedAgreement, policy: InvalidValuePolicy,
        countryCode: String? = nil, scalar: Scalar,
        sealing: TailSealing, scratch: any ScratchSpace, budget: Int, tuning: PrepareTuning
    ) throws(ActivationError) {
        let allowed = Set(agreement.identifierTypes)
        for c in columns where !allowed.contains(c.type) {
            throw ActivationError(
                .invalidInput,
                "\(source): column '\(c.name)' holds \(c.type.rawValue) identifiers, which the agreement does not match"
            )
        }
        precondition(tuning.chunk > 0, "a batch holds at least one message")
        self.source = source
        self.columns = columns
        self.agreement = agreement
        self.policy = policy
        self.scalar = scalar
        self.sealing = sealing
        self.tuning = tuning
        self.scratch = scratch
        var rules = agreement.rules
        if let countryCode {
            do {
                rules = try NormalizationRules(
                    version: rules.version, gmailRule: rules.gmailRule, defaultCountryCallingCode: countryCode)
            } catch {
                // The rule's wording is NormalizationRules' own (`identifier.rules.invalid_country_code: …`).
                throw ActivationError(.invalidInput, "\(source): this party's default country calling code: \(error)")
            }
        }
        normalizer = Normalizer(rules: rules)
        queued = Batch(reserving: tuning.chunk, plainSize: sealing.plainSize)
        partitions = RecordPartitions(recordSize: Self.headSize + sealing.tailSize, scratch: scratch, budget: budget)
    }

    /// Normalizes one selected row's identifiers and queues each valid one with the row's datum,
    /// which `datum` appends to the batch's plain bytes (exactly ``TailSealing/plainSize`` bytes,
    /// only when it returns `.valid`; nothing otherwise) and is called only when the row has an
    /// identifier; the datum is sealed later, with its batch. Appending in place keeps the
    /// per-row path free of temporary arrays.
    mutating func add(_ row: InputRow, datum: (inout [UInt8]) -> Status) throws {
        guard pending == nil else { return }
        let before = queued.messages.count
        for c in columns {
            guard c.index < row.fieldCount else {
                pending = ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(c.name)'")
                return
            }
            let raw = row.field(c.index)
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }  // an absent identifier is not an error
            do {
                queued.messages.append(try normalizer.hashToGroupMessage(raw, as: c.type))
                summary.identifiers += 1
            } catch {
                switch policy {
                case .reject:
                    pending = ActivationError(
                        .invalidInput,
                        "\(source) row \(row.row), column '\(c.name)': \(error.code.rawValue): \(error.reason)")
                    return
                case .skipAndReport:
                    summary.skippedValues += 1
                    try skipped.append(
                        SkippedValue(row: row.row, column: c.name, code: error.code.rawValue), scratch: scratch)
                }
            }
        }
        let found = queued.messages.count - before
        guard found > 0 else {
            summary.rowsWithoutIdentifier += 1
            return
        }
        let start = queued.plain.count
        let status = datum(&queued.plain)
        let rowIndex = Int32(queued.status.count)
        queued.status.append(status.rawValue)
        queued.dataRow.append(UInt64(row.row))
        if status == .valid {
            precondition(queued.plain.count - start == sealing.plainSize, "a valid datum is plainSize bytes")
        } else {
            precondition(queued.plain.count == start, "an invalid datum appends nothing")
            queued.plain.append(contentsOf: repeatElement(0, count: sealing.plainSize))
        }
        queued.messageRow += repeatElement(rowIndex, count: found)
        if queued.messages.count >= tuning.chunk { try flush() }
    }

    /// Hands the queued messages to the group arithmetic: on a job of their own while the caller
    /// reads on (after joining and spilling the batch before), or here and now on one thread.
    mutating func flush() throws {
        guard !queued.messages.isEmpty else { return }
        var batch = queued
        queued = Batch(reserving: tuning.chunk, plainSize: sealing.plainSize)
        batch.firstSequence = sequence
        batch.index = batches
        sequence += UInt64(batch.messages.count)
        batches += 1
        try completeInFlight()
        let full = batch
        let hasher = agreement.hasher
        let scalar = scalar
        let sealing = sealing
        let fails = tuning.failingBatch == batch.index
        if tuning.pipelined ?? (Parallel.workerCount > 1) {
            inFlight = Parallel.Job {
                try Self.records(of: full, hasher: hasher, scalar: scalar, sealing: sealing, failing: fails)
            }
        } else {
            let records = try Self.records(of: batch, hasher: hasher, scalar: scalar, sealing: sealing, failing: fails)
            try records.withUnsafeBytes { try partitions.append($0) }
        }
    }

    /// Joins the batch in flight, if any, and spills its records; rethrows its failure. Every way
    /// out of a prepare's reading loop calls this before anything else, so a batch's failure is
    /// reported where the plain path reports it, and no job outlives the prepare.
    mutating func completeInFlight() throws {
        guard let job = inFlight else { return }
        inFlight = nil
        let records = try job.join()
        try records.withUnsafeBytes { try partitions.append($0) }
    }

    /// A batch's partition records: hash to the group and blind (every core), seal each row's
    /// datum (every core), then lay out one record per message in queue order.
    static func records(
        of batch: Batch, hasher: HashToGroupChoice, scalar: Scalar, sealing: TailSealing,
        failing: Bool
    ) throws(ActivationError) -> [UInt8] {
        let blinded: ElementBatch
        do throws(CryptoError) {
            if failing { throw CryptoError(.primitiveFailure, "injected by a test") }
            blinded = try hasher.hash(batch.messages).multiplied(by: scalar)
        } catch {
            throw ActivationError(.cryptoFailure, "blinding failed: \(error.code.rawValue)")
        }
        // One record per message, laid out in one pass: the head, then the row's tail sealed
        // straight into the record of the row's first message (copied to its other messages, a
        // row with several identifier columns), so no separate tails buffer is filled, copied and
        // freed per batch, and no byte is zero-filled only to be overwritten.
        let n = batch.messages.count
        let rows = batch.status.count
        let size = headSize + sealing.tailSize
        let tailSize = sealing.tailSize
        var firstMessage = [Int](repeating: 0, count: rows)
        for i in stride(from: n - 1, through: 0, by: -1) { firstMessage[Int(batch.messageRow[i])] = i }
        let records = [UInt8](unsafeUninitializedCapacity: n * size) { dst, initialized in
            let base = UnsafeMutableRawPointer(dst.baseAddress!)
            blinded.withUnsafeBytes { e in
                for i in 0..<n {
                    let r = base + i * size
                    let row = Int(batch.messageRow[i])
                    r.copyMemory(from: e.baseAddress! + i * 32, byteCount: 32)
                    r.storeBytes(of: (batch.firstSequence + UInt64(i)).littleEndian, toByteOffset: 32, as: UInt64.self)
                    r.storeBytes(of: batch.status[row], toByteOffset: 40, as: UInt8.self)
                    r.storeBytes(of: batch.dataRow[row].littleEndian, toByteOffset: 41, as: UInt64.self)
                }
            }
            if tailSize > 0 {
                batch.plain.withUnsafeBytes { p in
                    batch.status.withUnsafeBufferPointer { status in
                        firstMessage.withUnsafeBufferPointer { first in
                            Parallel.forEachRange(count: rows) { range in
                                // One generator and one scratch buffer per range: no lock, no allocation per record.
                                let random = BufferedRandom()
                                let scratch = UnsafeMutableRawBufferPointer.allocate(
                                    byteCount: sealing.scratchSize, alignment: 8)
                                defer { scratch.deallocate() }
                                sealing.sealRows(
                                    range, valid: { status[$0] == Status.valid.rawValue }, plain: p.baseAddress!,
                                    out: { base + first[$0] * size + headSize }, random: random, scratch: scratch)
                            }
                        }
                    }
                }
                for i in 0..<n where firstMessage[Int(batch.messageRow[i])] != i {
                    (base + i * size + headSize).copyMemory(
                        from: base + firstMessage[Int(batch.messageRow[i])] * size + headSize,
                        byteCount: tailSize)
                }
            }
            initialized = n * size
        }
        return records
    }

    /// Ends the input: throws the batch in flight's failure, the held identifier error or the
    /// empty-set refusal, in that order.
    mutating func finishInput(rowsSelected: Int) throws {
        try completeInFlight()
        if let pending { throw pending }
        try flush()
        try completeInFlight()
        // An empty set would only fail later, at the other party or the coordinator; a set above
        // the agreed size would be refused there too. Both are refused here, before anything is written.
        guard summary.identifiers > 0 else {
            throw ActivationError(
                .invalidInput,
                "\(source): no identifiers to send (\(rowsSelected) rows selected, \(summary.skippedValues) values skipped as invalid, \(summary.rowsWithoutIdentifier) rows without an identifier\(skipped.earliest.first.map { "; first skipped: \($0)" } ?? ""))"
            )
        }
    }

    /// Deduplicates into `output` (the first-seen record of each distinct element), with
    /// ``deduplicate(_:)``'s summary and refusal.
    ///
    /// When the records never spilled and `output` shuffles in memory, the survivors' output
    /// records (`element ‖ tail`, shorter than a partition record) are written over the records
    /// already read in the partition buffer itself, which then becomes the shuffle's one bucket:
    /// no second buffer of the set's size (sets of up to 1 MiB of output records now, since larger
    /// ones are cut into pieces; it saved 18.5 MiB at a 100k provider prepare when sets up to the
    /// 32 MiB budget were held whole). A
    /// survivor's record is noted by `output` (its status) before it is overwritten. Writes never
    /// reach a record not yet read (output record `j` ends at `(j + 1) × out` ≤ `(i + 1) × in`
    /// for the `i`-th record read, `j ≤ i`); within the current record the element's write ends
    /// at `j × out + 32` ≤ `i × in + 32`, before its tail at `i × in + headSize`, and both moves
    /// are `memmove`s. Later elements are compared with the survivors' output records, whose
    /// first 32 bytes are their elements. Not taken with an explicit permutation.
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Rounds 1 and 2".
    mutating func deduplicate(into output: inout PreparedOutput) throws {
        guard output.shufflesInMemory, output.recordSize == 32 + tailSize, var buffer = partitions.takeMemory() else {
            try deduplicate { try output.add($0) }
            return
        }
        let size = recordSize
        let outSize = output.recordSize
        let headSize = Self.headSize
        let tailSize = tailSize
        let n = buffer.count / size
        var table = FirstSightings(count: n)
        var written = 0
        buffer.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            for i in 0..<n {
                let r = base + i * size
                // Kept elements are looked up in their output records, already written.
                guard table.keep(r, as: written, kept: { UnsafeRawPointer(base + $0 * outSize) }) else { continue }
                output.note(UnsafeRawPointer(r))
                let out = base + written * outSize
                memmove(out, r, 32)
                memmove(out + 32, r + headSize, tailSize)
                written += 1
            }
        }
        buffer.removeSubrange((written * outSize)...)
        output.adopt(buffer)
        try finishDeduplication(distinct: written)
    }

    /// Hands the first-seen record of each distinct element to `survivor` (partition by
    /// partition, so in no particular order; the sequence number says which came first), sets
    /// `elements` and `duplicateIdentifiers`, and refuses a set above the agreed maximum.
    mutating func deduplicate(_ survivor: (UnsafeRawPointer) throws -> Void) throws {
        var distinct = 0
        let size = recordSize
        try partitions.drain { records in
            let n = records.count / size
            guard n > 0 else { return }
            var table = FirstSightings(count: n)
            let base = records.baseAddress!
            for i in 0..<n {
                let r = base + i * size
                // Records keep their append (= sequence) order within a partition: a new element is its first sighting.
                guard table.keep(r, as: i, kept: { base + $0 * size }) else { continue }
                distinct += 1
                try survivor(r)
            }
        }
        try finishDeduplication(distinct: distinct)
    }

    private mutating func finishDeduplication(distinct: Int) throws {
        summary.elements = distinct
        summary.duplicateIdentifiers = summary.identifiers - distinct
        if let max = agreement.terms.matching.maxSetSize, distinct > max {
            throw ActivationError(
                .invalidInput,
                "\(source): \(distinct) distinct identifiers, the agreement allows at most \(max) per set (matching.maxSetSize)"
            )
        }
    }

    static func sequence(_ r: UnsafeRawPointer) -> UInt64 {
        UInt64(littleEndian: r.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
    }
    static func status(_ r: UnsafeRawPointer) -> UInt8 { r.load(fromByteOffset: 40, as: UInt8.self) }
    static func dataRow(_ r: UnsafeRawPointer) -> Int {
        Int(UInt64(littleEndian: r.loadUnaligned(fromByteOffset: 41, as: UInt64.self)))
    }
}

/// The open-addressing table of a prepare's deduplication: which records keep the elements seen
/// so far. The elements are blinded with this run's secret scalar, so their bytes are uniform to
/// everyone: their first word is a fair table hash.
struct FirstSightings {
    private var slots: [Int32]
    private let mask: Int

    init(count n: Int) {
        precondition(n < Int(Int32.max), "a partition holds fewer than 2^31 - 1 records")
        var capacity = 16
        while capacity < 2 * n { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
    }

    /// Keeps `r`'s element as record `index` unless an element already kept equals it
    /// (`kept(j)` is where kept record `j`'s 32-byte element is); returns whether it was new.
    @inline(__always)
    mutating func keep(_ r: UnsafeRawPointer, as index: Int, kept: (Int) -> UnsafeRawPointer) -> Bool {
        var s = Int(truncatingIfNeeded: r.loadUnaligned(as: UInt64.self)) & mask
        while slots[s] >= 0 {
            if memcmp(kept(Int(slots[s])), r, 32) == 0 { return false }
            s = (s + 1) & mask
        }
        slots[s] = Int32(index)
        return true
    }
}

/// The survivors of deduplication on their way out: an external shuffle in production, or, for an
/// explicit permutation (tests and vectors only), every output record in memory in first-seen
/// order, then permuted.
struct PreparedOutput {
    let recordSize: Int
    private var shuffle: ExternalShuffle?
    private var ordered: [(UInt64, [UInt8])] = []
    private let permutation: [Int]?
    /// The first invalid row datum in first-seen order: (sequence, status, data row).
    private(set) var firstInvalid: (sequence: UInt64, status: UInt8, row: Int)?

    init(recordSize: Int, expectedCount: Int, scratch: any ScratchSpace, permutation: [Int]?, budget: Int) throws {
        self.recordSize = recordSize
        self.permutation = permutation
        if permutation == nil {
            shuffle = try ExternalShuffle(
                recordSize: recordSize, expectedCount: expectedCount, scratch: scratch, budget: budget)
        }
    }

    /// Whether survivors may be written in place and adopted (``adopt(_:)``): a shuffle (not an
    /// explicit permutation) of one bucket in memory, nothing added yet.
    var shufflesInMemory: Bool { shuffle?.isEmptyInMemory == true && ordered.isEmpty }

    /// Notes a survivor's partition record's status (the first invalid one in sequence order),
    /// for a survivor written in place; ``add(_:)`` does this too.
    mutating func note(_ r: UnsafeRawPointer) {
        let status = IdentifierStream.status(r)
        guard status != IdentifierStream.Status.valid.rawValue else { return }
        let seq = IdentifierStream.sequence(r)
        if firstInvalid.map({ seq < $0.sequence }) ?? true { firstInvalid = (seq, status, IdentifierStream.dataRow(r)) }
    }

    /// Takes every survivor's output record at once, gathered in place by
    /// ``IdentifierStream/deduplicate(into:)``, as the shuffle's one bucket. (With an invalid
    /// record among them the step fails on ``firstInvalid`` and the records are never written.)
    mutating func adopt(_ records: [UInt8]) {
        precondition(shufflesInMemory, "adopt replaces an empty in-memory shuffle")
        shuffle = ExternalShuffle(recordSize: recordSize, adopting: records)
    }

    /// Takes a survivor's partition record: element, then its tail, as one output record.
    mutating func add(_ r: UnsafeRawPointer) throws {
        if IdentifierStream.status(r) != IdentifierStream.Status.valid.rawValue {
            note(r)
            return
        }
        guard firstInvalid == nil else { return }  // the step fails: nothing more to keep
        let element = UnsafeRawBufferPointer(start: r, count: 32)
        let tail = UnsafeRawBufferPointer(start: r + IdentifierStream.headSize, count: recordSize - 32)
        guard shuffle != nil else {
            ordered.append((IdentifierStream.sequence(r), Array(element) + Array(tail)))
            return
        }
        // Straight into the shuffle's bucket (its memory, or its file's staging buffer): one copy per record.
        try shuffle!.append(element, tail)
    }

    /// Emits every output record once, in the output order, in pieces of whole records.
    mutating func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if shuffle != nil {
            var s = shuffle!
            shuffle = nil
            try s.drain(body)
            return
        }
        ordered.sort { $0.0 < $1.0 }
        let perm = permutation!
        precondition(perm.count == ordered.count, "permutation size must equal the set size")
        var all = [UInt8]()
        all.reserveCapacity(perm.count * recordSize)
        for j in perm { all += ordered[j].1 }
        ordered = []
        try all.withUnsafeBytes { try body($0) }
    }
}

/// A sink that keeps a finished message's header and signature until ``publish()``, so a
/// message's body hash is known (for the run state and the payload's reference) before the
/// message becomes visible.
final class HeldSink: MessageSink {
    let inner: any MessageSink
    private var held: (header: [UInt8], signature: [UInt8])?
    init(_ inner: any MessageSink) { self.inner = inner }
    func begin(headerLength: Int) throws { try inner.begin(headerLength: headerLength) }
    func append(_ bytes: UnsafeRawBufferPointer) throws { try inner.append(bytes) }
    func finish(header: [UInt8], signature: [UInt8]) throws { held = (header, signature) }
    func abandon() {
        held = nil
        inner.abandon()
    }
    func publish() throws {
        guard let held else { preconditionFailure("publish before finish") }
        try inner.finish(header: held.header, signature: held.signature)
    }
}

/// Splits output records `element ‖ tail` into the two messages' pieces (round 1), or passes
/// them whole (round 2), a bounded number at a time.
private func forEachPiece(
    _ records: UnsafeRawBufferPointer, recordSize: Int, _ body: (UnsafeRawBufferPointer) throws -> Void
) rethrows {
    let step = IdentifierStream.defaultChunk * recordSize
    var at = 0
    while at < records.count {
        let end = min(records.count, at + step)
        try body(UnsafeRawBufferPointer(rebasing: records[at..<end]))
        at = end
    }
}

// MARK: Round 1

extension Provider {
    /// Round 1 in memory, written and parsed back: what ``prepare(runID:audience:scalar:permutation:)`` returns.
    public struct Prepared: Sendable {
        /// The blinded, shuffled elements, for the consumer.
        public let forConsumer: ProviderBlindedSet
        /// Each element's provider row and (sealed) audience key, in the same order, for the coordinator.
        public let forCoordinator: ProviderPayload
        /// The provider's state for this run, holding its scalar `b`: kept private until round 3.
        public let state: RunState
        /// The step's counts (no identifiers).
        public let summary: PrepareSummary
        /// Every value left out under ``InvalidValuePolicy/skipAndReport``, in input order.
        public let skipped: [SkippedValue]
    }

    /// Round 1, validated and deduplicated, its records waiting in the shuffle: nothing written yet.
    public struct Staged {
        /// The step's counts (no identifiers).
        public let summary: PrepareSummary
        /// Every value left out under `--skip-invalid` (the later ones in a scratch file).
        public let skipped: SkippedValues
        let provider: Provider
        let run: [UInt8]
        let scalar: Scalar
        let sealingKey: SealingPublicKey?
        var output: PreparedOutput

        /// Writes round 1: the blinded elements for the consumer and, in the same order, each
        /// element's provider row and (sealed) audience key for the coordinator.
        ///
        /// Order of visibility: both bodies are written (neither visible), the blinded message's
        /// body hash becomes the payload's reference and the state's, `beforePublishing` runs
        /// (the step saves the run state there), then the payload is finished and the blinded
        /// message last, as it is the one that publishes the round (SPEC §9.2 "Faults"). On any
        /// error both sinks are abandoned and the error is rethrown.
        public mutating func write(
            forConsumer: any MessageSink, forCoordinator: any MessageSink,
            beforePublishing: (RunState) throws -> Void
        ) throws -> RunState {
            let agreement = provider.agreement
            let held = HeldSink(forConsumer)
            do {
                let n = summary.elements
                let payloadSize = Layout.payloadRecordSize(agreement)
                var blinded = try MessageWriter(
                    kind: .providerBlinded, agreement: agreement, runUUID: run, count: n,
                    recordSize: Layout.elementSize, signer: provider.identity.signingKey, sink: held)
                var payload = try MessageWriter(
                    kind: .providerPayload, agreement: agreement, runUUID: run, count: n,
                    recordSize: payloadSize, sealingKey: sealingKey, signer: provider.identity.signingKey,
                    sink: forCoordinator)
                var elements = [UInt8]()
                var payloads = [UInt8]()
                let size = output.recordSize
                try output.drain { records in
                    try forEachPiece(records, recordSize: size) { piece in
                        elements.removeAll(keepingCapacity: true)
                        payloads.removeAll(keepingCapacity: true)
                        for i in 0..<(piece.count / size) {
                            elements.append(
                                contentsOf: UnsafeRawBufferPointer(rebasing: piece[(i * size)..<(i * size + 32)]))
                            payloads.append(
                                contentsOf: UnsafeRawBufferPointer(rebasing: piece[(i * size + 32)..<((i + 1) * size)]))
                        }
                        try blinded.append(elements)
                        try payload.append(payloads)
                    }
                }
                let bodyHash = try blinded.finish()
                payload.reference = bodyHash
                let state = RunState(
                    role: .provider, runUUID: run, agreementHash: agreement.hash, reference: bodyHash, scalar: scalar)
                try beforePublishing(state)
                _ = try payload.finish()
                try held.publish()
                return state
            } catch {
                held.abandon()
                forCoordinator.abandon()
                throw error
            }
        }
    }

    /// Round 1, streamed: reads `audience.rows` once in chunks, normalizes, hashes to the group,
    /// blinds with `scalar`, seals each audience key, deduplicates and shuffles in `scratch`, in
    /// memory bounded by ``SpillBudget`` whatever the input's size.
    ///
    /// Throws (nothing written): the row source's own errors; `activation.invalid_input` for an
    /// invalid identifier (first in input order; skipped and reported under
    /// ``InvalidValuePolicy/skipAndReport``), an empty set, a set above `matching.maxSetSize`, or
    /// an invalid audience key (the first in first-seen order); scratch errors.
    /// `permutation` (tests and vectors only) fixes the shuffle over the first-seen order of the
    /// distinct identifiers, and holds the set in memory.
    public func stage(
        runID: String, audience: consuming ProviderAudience, scalar: Scalar = .random(), scratch: any ScratchSpace,
        permutation: [Int]? = nil, progress: ((Int) -> Void)? = nil
    ) throws -> Staged {
        try stage(
            runID: runID, audience: audience, scalar: scalar, scratch: scratch, permutation: permutation,
            progress: progress,
            budget: SpillBudget.bytes)
    }

    /// As the public stage, with the spill budget given (tests force many partitions and buckets).
    func stage(
        runID: String, audience: consuming ProviderAudience, scalar: Scalar, scratch: any ScratchSpace,
        permutation: [Int]?, progress: ((Int) -> Void)?, budget: Int, tuning: PrepareTuning = .standard
    ) throws -> Staged {
        let run = try UUIDBytes.runID(runID)
        let source = audience.source
        let keyColumn = audience.audienceKeyColumn
        let rows = audience.rows
        let sealer: RecordSealer?
        if agreement.terms.output.sealed {
            do {
                sealer = try RecordSealer(
                    recipient: agreement.providerSealingKey, context: Layout.payloadContext(agreement, run))
            } catch {
                throw ActivationError(.cryptoFailure, "sealing set-up failed: \(error.code.rawValue)")
            }
        } else {
            sealer = nil
        }
        let payloadSize = Layout.payloadRecordSize(agreement)
        // Payload record: provider row (u64 BE, clear) ‖ the padded audience key, sealed when the agreement says so.
        let sealing = TailSealing(
            plainSize: Layout.rowIndexSize + 2 + Layout.maxAudienceKey, clear: Layout.rowIndexSize,
            sealers: sealer.map { [$0] } ?? [])
        precondition(sealing.tailSize == payloadSize)
        var stream = try IdentifierStream(
            source: source, columns: audience.identifierColumns, agreement: agreement,
            policy: audience.invalidValues, countryCode: audience.defaultCountryCallingCode, scalar: scalar,
            sealing: sealing, scratch: scratch,
            budget: budget, tuning: tuning)
        var index = 0
        do {
            while let row = try rows.next() {
                let r = index
                index += 1
                try stream.add(row) { plain in
                    guard keyColumn.index < row.fieldCount else { return .missing }
                    let key = row.field(keyColumn.index)
                    guard !key.isEmpty, key.count <= Layout.maxAudienceKey else { return .invalid }
                    var rowBE = UInt64(r).bigEndian
                    withUnsafeBytes(of: &rowBE) { plain.append(contentsOf: $0) }
                    Layout.appendPadded(key, to: Layout.maxAudienceKey, into: &plain)
                    return .valid
                }
                if index % 250_000 == 0 { progress?(index) }
            }
        } catch {
            try stream.completeInFlight()
            throw error
        }
        stream.summary.rowsRead = index
        stream.summary.rowsSelected = index
        try stream.finishInput(rowsSelected: index)
        var output = try PreparedOutput(
            recordSize: 32 + payloadSize, expectedCount: stream.partitions.count, scratch: scratch,
            permutation: permutation, budget: budget)
        try stream.deduplicate(into: &output)
        if let bad = output.firstInvalid {
            if bad.status == IdentifierStream.Status.missing.rawValue {
                throw ActivationError(.invalidInput, "\(source) row \(bad.row): missing column '\(keyColumn.name)'")
            }
            throw ActivationError(
                .invalidInput,
                "\(source) row \(bad.row), column '\(keyColumn.name)': the audience key must be 1...\(Layout.maxAudienceKey) bytes"
            )
        }
        return Staged(
            summary: stream.summary, skipped: stream.skipped, provider: self, run: run, scalar: scalar,
            sealingKey: sealer?.ephemeralPublicKey, output: output)
    }

    /// Round 1 in memory (tests, vectors, fuzzers): ``stage(runID:audience:scalar:scratch:permutation:progress:)``
    /// over memory, written to in-memory sinks.
    public func prepare(
        runID: String, audience: consuming ProviderAudience, scalar: Scalar = .random(),
        permutation: [Int]? = nil
    ) throws(ActivationError) -> Prepared {
        let source = audience.source
        do {
            var staged = try stage(
                runID: runID, audience: audience, scalar: scalar, scratch: MemoryScratch(), permutation: permutation)
            let m1 = BytesSink()
            let m2 = BytesSink()
            let state = try staged.write(forConsumer: m1, forCoordinator: m2) { _ in }
            let run = UUIDBytes.parse(runID)
            return Prepared(
                forConsumer: try ProviderBlindedSet(
                    parsing: m1.bytes, agreement: agreement, run: run, source: "provider-blinded"),
                forCoordinator: try ProviderPayload(
                    parsing: m2.bytes, agreement: agreement, run: run, source: "provider-payload"),
                state: state, summary: staged.summary, skipped: try staged.skipped.all())
        } catch let e as ActivationError { throw e } catch {
            throw ActivationError(.invalidInput, "\(source): \(error)")
        }
    }
}

// MARK: Round 2

extension Consumer {
    /// Round 2 in memory, written and parsed back: what ``prepare(runID:query:scalar:permutation:)`` returns.
    public struct Prepared: Sendable {
        /// The blinded, shuffled elements (with their sealed attributes when delivered), for the provider.
        public let forProvider: ConsumerBlindedSet
        /// The consumer's state for this run, holding its scalar `a`: kept private until round 4.
        public let state: RunState
        /// The step's counts (no identifiers).
        public let summary: PrepareSummary
        /// Every value left out under ``InvalidValuePolicy/skipAndReport``, in input order.
        public let skipped: [SkippedValue]
    }

    /// Round 2, selected, validated and deduplicated, its records waiting in the shuffle: nothing written yet.
    public struct Staged {
        /// The step's counts (no identifiers).
        public let summary: PrepareSummary
        /// Every value left out under `--skip-invalid` (the later ones in a scratch file).
        public let skipped: SkippedValues
        let consumer: Consumer
        let run: [UInt8]
        let scalar: Scalar
        let sealingKey: SealingPublicKey?
        let metadata: [String: String]
        var output: PreparedOutput

        /// Writes round 2 to `forProvider`; `beforePublishing` runs (the step saves the run state
        /// there) once the body is written and before the message becomes visible. On any error
        /// the sink is abandoned and the error is rethrown.
        public mutating func write(forProvider: any MessageSink, beforePublishing: (RunState) throws -> Void) throws
            -> RunState
        {
            let agreement = consumer.agreement
            let held = HeldSink(forProvider)
            do {
                var writer = try MessageWriter(
                    kind: .consumerBlinded, agreement: agreement, runUUID: run, count: summary.elements,
                    recordSize: Layout.consumerRecordSize(agreement), sealingKey: sealingKey, metadata: metadata,
                    signer: consumer.signingKey, sink: held)
                try output.drain { try writer.append($0) }
                let bodyHash = try writer.finish()
                let state = RunState(
                    role: .consumer, runUUID: run, agreementHash: agreement.hash, reference: bodyHash, scalar: scalar)
                try beforePublishing(state)
                try held.publish()
                return state
            } catch {
                held.abandon()
                throw error
            }
        }
    }

    static let truthy: Set<String> = ["true", "yes", "y", "1"]

    /// Round 2, streamed: reads `query.rows` once in chunks, selects rows (segment filters,
    /// consent), normalizes, hashes, blinds with `scalar`, doubly seals member IDs when the
    /// agreement delivers them, deduplicates and shuffles in `scratch`, in memory bounded by
    /// ``SpillBudget`` whatever the input's size.
    ///
    /// Throws (nothing written): as ``Provider/stage(runID:audience:scalar:scratch:permutation:progress:)``,
    /// with an invalid member ID in place of an audience key, and unsafe segment labels or a
    /// missing member ID column first.
    public func stage(
        runID: String, query: consuming ConsumerQuery, scalar: Scalar = .random(), scratch: any ScratchSpace,
        permutation: [Int]? = nil, progress: ((Int) -> Void)? = nil
    ) throws -> Staged {
        try stage(
            runID: runID, query: query, scalar: scalar, scratch: scratch, permutation: permutation, progress: progress,
            budget: SpillBudget.bytes)
    }

    /// As the public stage, with the spill budget given (tests force many partitions and buckets).
    func stage(
        runID: String, query: consuming ConsumerQuery, scalar: Scalar, scratch: any ScratchSpace,
        permutation: [Int]?, progress: ((Int) -> Void)?, budget: Int, tuning: PrepareTuning = .standard
    ) throws -> Staged {
        let run = try UUIDBytes.runID(runID)
        let source = query.source
        let filters = query.filters
        let consentColumns = query.consentColumns
        let rows = query.rows
        let memberIDColumn = query.memberIDColumn
        let segmentID = query.segmentID
        let segmentName = query.segmentName
        guard Self.isSafeLabel(segmentID), Self.isSafeLabel(segmentName) else {
            throw ActivationError(
                .invalidInput, "segment ID and name must be 1...64 printable characters without commas or quotes")
        }
        let deliverMember = agreement.terms.output.deliverMemberID
        if deliverMember && memberIDColumn == nil {
            throw ActivationError(.invalidInput, "the agreement delivers member IDs: name the member ID column")
        }
        var sealers: (inner: RecordSealer, outer: RecordSealer)?
        if deliverMember {
            do {
                sealers = (
                    try RecordSealer(
                        recipient: agreement.providerSealingKey, context: Layout.innerContext(agreement, run)),
                    try RecordSealer(
                        recipient: agreement.coordinatorSealingKey, context: Layout.outerContext(agreement, run))
                )
            } catch { throw ActivationError(.cryptoFailure, "sealing set-up failed: \(error.code.rawValue)") }
        }
        // Delivered member IDs are padded, sealed for the provider, then for the coordinator; otherwise the record is the element alone.
        let sealing =
            sealers.map { TailSealing(plainSize: 2 + Layout.maxMemberID, clear: 0, sealers: [$0.inner, $0.outer]) }
            ?? TailSealing(plainSize: 0, clear: 0, sealers: [])
        precondition(sealing.tailSize == Layout.consumerRecordSize(agreement) - Layout.elementSize)
        var stream = try IdentifierStream(
            source: source, columns: query.identifierColumns, agreement: agreement,
            policy: query.invalidValues, countryCode: query.defaultCountryCallingCode, scalar: scalar, sealing: sealing,
            scratch: scratch,
            budget: budget, tuning: tuning)
        var read = 0
        var selected = 0
        var filteredOut = 0
        do {
            while let row = try rows.next() {
                read += 1
                if read % 250_000 == 0 { progress?(read) }
                var keep = true
                for f in filters {
                    guard f.index < row.fieldCount else {
                        throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(f.name)'")
                    }
                    if !f.values.contains(Self.trimmed(row.field(f.index))) { keep = false }
                }
                for c in consentColumns {
                    guard c.index < row.fieldCount else {
                        throw ActivationError(.invalidInput, "\(source) row \(row.row): missing column '\(c.name)'")
                    }
                    if !Self.isTruthy(row.field(c.index)) { keep = false }
                }
                guard keep else {
                    filteredOut += 1
                    continue
                }
                selected += 1
                try stream.add(row) { plain in
                    guard sealers != nil, let col = memberIDColumn else { return .valid }
                    guard col.index < row.fieldCount else { return .missing }
                    let member = row.field(col.index)
                    guard !member.isEmpty, member.count <= Layout.maxMemberID else { return .invalid }
                    Layout.appendPadded(member, to: Layout.maxMemberID, into: &plain)
                    return .valid
                }
            }
        } catch {
            try stream.completeInFlight()
            throw error
        }
        stream.summary.rowsRead = read
        stream.summary.rowsSelected = selected
        stream.summary.rowsFilteredOut = filteredOut
        try stream.finishInput(rowsSelected: selected)
        var output = try PreparedOutput(
            recordSize: Layout.consumerRecordSize(agreement), expectedCount: stream.partitions.count,
            scratch: scratch, permutation: permutation, budget: budget)
        try stream.deduplicate(into: &output)
        if let bad = output.firstInvalid, let col = memberIDColumn {
            if bad.status == IdentifierStream.Status.missing.rawValue {
                throw ActivationError(.invalidInput, "\(source) row \(bad.row): missing column '\(col.name)'")
            }
            throw ActivationError(
                .invalidInput,
                "\(source) row \(bad.row), column '\(col.name)': the member ID must be 1...\(Layout.maxMemberID) bytes")
        }
        var metadata = ["segmentID": segmentID, "segmentName": segmentName, "consumerRows": String(selected)]
        if let sealers { metadata["innerSealingKey"] = sealers.inner.ephemeralPublicKey.hex }
        return Staged(
            summary: stream.summary, skipped: stream.skipped, consumer: self, run: run, scalar: scalar,
            sealingKey: sealers?.outer.ephemeralPublicKey, metadata: metadata, output: output)
    }

    /// Round 2 in memory (tests, vectors, fuzzers): ``stage(runID:query:scalar:scratch:permutation:progress:)``
    /// over memory, written to an in-memory sink.
    public func prepare(
        runID: String, query: consuming ConsumerQuery, scalar: Scalar = .random(), permutation: [Int]? = nil
    ) throws(ActivationError) -> Prepared {
        let source = query.source
        do {
            var staged = try stage(
                runID: runID, query: query, scalar: scalar, scratch: MemoryScratch(), permutation: permutation)
            let m = BytesSink()
            let state = try staged.write(forProvider: m) { _ in }
            return Prepared(
                forProvider: try ConsumerBlindedSet(
                    parsing: m.bytes, agreement: agreement, run: UUIDBytes.parse(runID), source: "consumer-blinded"),
                state: state, summary: staged.summary, skipped: try staged.skipped.all())
        } catch let e as ActivationError { throw e } catch {
            throw ActivationError(.invalidInput, "\(source): \(error)")
        }
    }

    /// Whether a consent cell, trimmed of spaces and tabs, is one of ``truthy`` in any letter
    /// case, compared as bytes (no String per row). ASCII case folding gives the same answer as
    /// `String.lowercased()` here: no non-ASCII character lowercases to a letter of these words.
    static func isTruthy(_ cell: ArraySlice<UInt8>) -> Bool {
        var s = cell[...]
        while let f = s.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        guard s.count <= 4 else { return false }
        var word: UInt32 = 0
        for b in s { word = word << 8 | UInt32((0x41...0x5a).contains(b) ? b | 0x20 : b) }
        switch (s.count, word) {
        case (4, 0x7472_7565), (3, 0x79_6573), (1, 0x79), (1, 0x31): return true  // "true", "yes", "y", "1"
        default: return false
        }
    }

    static func trimmed(_ b: ArraySlice<UInt8>) -> [UInt8] {
        var s = b[...]
        while let f = s.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        return Array(s)
    }

    /// Segment labels reach the provider's files and the audit of counts, so they are kept to
    /// plain labels that cannot carry a CSV injection or a list of people.
    static func isSafeLabel(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64
            && s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0 != "," && $0 != "\"" && $0.value != 0x7f }
            && !"=+-@".contains(s.first!)
    }
}
