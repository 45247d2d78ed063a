import Foundation
import RistrettoPSI

// Rounds 3 and 4: re-blinding the other party's set in bounded memory. The set is read from a
// `ByteSource` in chunks, each chunk's elements strictly decoded and multiplied on every core, the
// answer streamed to a `MessageSink` (round 4 in order; round 3 through an exact external shuffle),
// and duplicates found through keyed element partitions, so no step holds the whole set.
// - SeeAlso: `Protocol/SPEC.md` §6 rounds 3 and 4, §9 "Bounded memory".

/// What a respond step wrote.
public struct RespondSummary: Sendable {
    /// Records answered (the size of the set received, and of the answer).
    public let count: Int
    /// SHA-256 of the answer's body (what the coordinator finds in the answer's header).
    public let bodyHash: [UInt8]
}

/// The disk a streamed respond certainly uses, known from the verified header before any body
/// byte is read: what a free-space preflight at the edge compares with the space there is, so a
/// respond that cannot fit stops in seconds rather than after its whole pass (minutes at 10M).
///
/// A lower bound, so a check built on it never refuses a respond that could have completed: each
/// figure is what certainly reached the disk, less what may still sit in memory buffers at that
/// moment (``bufferedPerPiece`` per spilled piece, ``bufferedByAnswerSink`` for the answer).
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory" (rounds 3 and 4, step 1), §10 `workflow.disk_space`.
public struct RespondFootprint: Sendable, Equatable {
    /// The answer's body on disk: `count × recordSize` bytes (header and signature come on top),
    /// less ``bufferedByAnswerSink``.
    public let answerBytes: Int
    /// Scratch held at once at the end of the pass: the duplicate check's partitions (40 bytes an
    /// element) and, in round 3, the shuffle's buckets (`count × recordSize`), each only when it
    /// spills (more than one piece, ``SpillBudget/pieces(count:recordSize:budget:)``; one piece
    /// stays in memory), less ``bufferedPerPiece`` a piece.
    public let scratchBytes: Int
    /// Round 4 writes its answer during the pass, while the partitions are held; round 3 drains
    /// its shuffle into the answer bucket by bucket (each bucket file removed as it is read) after
    /// the duplicate check released its partitions.
    public let answerWhileScratchHeld: Bool

    /// A footprint from its three figures (the rounds compute theirs from the verified header).
    public init(answerBytes: Int, scratchBytes: Int, answerWhileScratchHeld: Bool) {
        self.answerBytes = answerBytes
        self.scratchBytes = scratchBytes
        self.answerWhileScratchHeld = answerWhileScratchHeld
    }

    /// What one file system holding both the answer and the scratch needs at least.
    public var sharedBytes: Int { answerWhileScratchHeld ? answerBytes + scratchBytes : max(answerBytes, scratchBytes) }

    /// What a spilled piece (partition or bucket) may hold in memory rather than on disk, counted
    /// generously: its stager's buffer (``ExternalShuffle/stageBytes``) twice. A stager hands its
    /// file pieces large enough to be written at once, so the file's own buffer stays empty.
    public static let bufferedPerPiece = 2 * ExternalShuffle.stageBytes
    /// What the answer's sink may hold in memory (a local answer file's buffer is 1 MiB).
    public static let bufferedByAnswerSink = 1 << 20

    /// Round 3 (shuffled answer) or round 4 (streamed answer) on `count` records of `recordSize` bytes.
    static func of(count: Int, recordSize: Int, shuffled: Bool, budget: Int) -> RespondFootprint {
        func onDisk(_ bytes: Int, pieces: Int) -> Int { pieces > 1 ? max(0, bytes - pieces * bufferedPerPiece) : 0 }
        let partitions = onDisk(
            count * ElementPartitions.recordSize,
            pieces: SpillBudget.pieces(count: count, recordSize: ElementPartitions.recordSize, budget: budget))
        let shuffle =
            shuffled
            ? onDisk(
                count * recordSize, pieces: SpillBudget.pieces(count: count, recordSize: recordSize, budget: budget))
            : 0
        return RespondFootprint(
            answerBytes: max(0, count * recordSize - bufferedByAnswerSink), scratchBytes: partitions + shuffle,
            answerWhileScratchHeld: !shuffled)
    }
}

extension Provider {
    /// Round 3, streamed: verify the consumer's set (2) from `source`, strictly decode every
    /// element, re-blind it with `b`, refuse duplicates, shuffle the records again (sealed
    /// attributes move with their element) and write `consumerReblinded` to `sink`.
    ///
    /// Contract: the message's header and signature are checked first (including that it belongs
    /// to `state`'s run: `activation.message.wrong_run`), then the body is read once in chunks and
    /// hashed; its checksum is verified before any other refusal is reported and before the
    /// answer is written (`activation.message.checksum_mismatch` wins over an invalid element or a
    /// duplicate found in a tampered body). Refusals: `activation.message.empty_set`,
    /// `activation.invalid_element` (naming the element's position in the set received),
    /// `activation.duplicate_element` (the pair with the smallest second position, as
    /// ``ElementIndex/build(_:)`` reports), `activation.message.malformed` for a record size the
    /// agreement does not imply. On any error the sink is abandoned, so nothing is visible; errors
    /// of `source`, `sink` and `scratch` are theirs (e.g. `workflow.io`).
    ///
    /// Memory: one chunk of records, one shuffle bucket and one duplicate-check partition at a
    /// time (each at most `budget` bytes, ``SpillBudget``); the rest of the set is in `scratch`, which holds
    /// blinded values and sealed records only.
    /// - Parameters:
    ///   - source: the consumer's set (2), read in chunks.
    ///   - name: the file's name in errors.
    ///   - state: the provider's run state from round 1 (its scalar `b` and the run expected).
    ///   - sink: where `consumerReblinded` is written; abandoned on any error.
    ///   - scratch: private space for the shuffle's buckets and the duplicate check's partitions.
    ///   - budget: bytes a shuffle bucket or a partition aims at (tests pass small ones).
    ///   - beforeBody: called once the header is verified and before any body byte is read, with
    ///     the disk the round will certainly use; what it throws stops the round (a free-space
    ///     preflight), with nothing written.
    /// - Returns: the answer's record count and body hash.
    /// - Throws: ``ActivationError`` for a refusal above; otherwise what `beforeBody`, `source`,
    ///   `sink` or `scratch` throw. Nothing is visible in `sink` then.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 3, §9 "Bounded memory".
    public func respond(
        consumerSet source: any ByteSource, name: String, state: RunState, into sink: any MessageSink,
        scratch: any ScratchSpace, budget: Int = SpillBudget.bytes,
        beforeBody: (RespondFootprint) throws -> Void = { _ in }
    ) throws -> RespondSummary {
        try respond(
            consumerSet: source, name: name, state: state, into: sink, scratch: scratch, budget: budget,
            permutation: nil, chunkRecords: Reblinding.chunkRecords, beforeBody: beforeBody)
    }

    /// Round 3 with a fixed second shuffle (test vectors only: the records are then held in
    /// memory) and a chosen chunk size (tests of chunk boundaries).
    func respond(
        consumerSet source: any ByteSource, name: String, state: RunState, into sink: any MessageSink,
        scratch: any ScratchSpace, budget: Int, permutation: [Int]?, chunkRecords: Int,
        beforeBody: (RespondFootprint) throws -> Void = { _ in }
    ) throws -> RespondSummary {
        do {
            var reader = try MessageReader(
                source, expecting: .consumerBlinded, agreement: agreement, run: state.runUUID, name: name)
            let h = reader.header
            try Reblinding.checkShape(&reader, recordSize: Layout.consumerRecordSize(agreement), source: name)
            try beforeBody(.of(count: h.count, recordSize: h.recordSize, shuffled: permutation == nil, budget: budget))
            var order = try AnswerOrder(
                recordSize: h.recordSize, count: h.count, permutation: permutation, scratch: scratch, budget: budget)
            try Reblinding.reblind(
                &reader, by: state.scalar, source: name, scratch: scratch, budget: budget, chunkRecords: chunkRecords
            ) {
                try order.append($0)
            }
            // Only now, with the body verified and every element accepted, is the answer written.
            var writer = try MessageWriter(
                kind: .consumerReblinded, agreement: agreement, runUUID: h.runUUID, count: h.count,
                recordSize: h.recordSize, reference: h.bodyHash,
                sealingKey: try? SealingPublicKey(bytes: h.sealingKey), metadata: h.metadata,
                signer: identity.signingKey, sink: sink)
            try order.drain { try writer.append($0) }
            return RespondSummary(count: h.count, bodyHash: try writer.finish())
        } catch {
            sink.abandon()
            throw error
        }
    }

    /// Round 3 in memory (tests, vectors, fuzzers, the benchmark's in-memory stages): the
    /// streamed round over the message's bytes, with `permutation` as the second shuffle when
    /// given (test vectors) instead of a fresh one.
    public func respond(
        to consumerSet: consuming ConsumerBlindedSet, state: RunState,
        permutation: [Int]? = nil
    ) throws(ActivationError) -> ConsumerReblindedSet {
        let source = BytesSource((consume consumerSet).message.serialized())
        let sink = BytesSink()
        try Reblinding.inMemory {
            _ = try respond(
                consumerSet: source, name: "consumer-blinded", state: state, into: sink, scratch: MemoryScratch(),
                budget: SpillBudget.bytes, permutation: permutation, chunkRecords: Reblinding.chunkRecords)
        }
        return ConsumerReblindedSet(
            try SignedMessage.parse(
                sink.bytes, expecting: .consumerReblinded, agreement: agreement,
                run: state.runUUID, source: "consumer-reblinded"))
    }
}

extension Consumer {
    /// Round 4, streamed: verify the provider's set (1) from `source`, strictly decode every
    /// element, re-blind it with `a` keeping (1)'s order, refuse duplicates, and write
    /// `providerReblinded` to `sink`.
    ///
    /// Contract: as ``Provider/respond(consumerSet:name:state:into:scratch:budget:beforeBody:)``, except that
    /// records are streamed to `sink` as they are re-blinded (the sink shows nothing until
    /// `finish`, which runs only after the checksum and every check passed).
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 4, §9 "Bounded memory".
    public func respond(
        providerSet source: any ByteSource, name: String, state: RunState, into sink: any MessageSink,
        scratch: any ScratchSpace, budget: Int = SpillBudget.bytes,
        beforeBody: (RespondFootprint) throws -> Void = { _ in }
    ) throws -> RespondSummary {
        try respond(
            providerSet: source, name: name, state: state, into: sink, scratch: scratch, budget: budget,
            chunkRecords: Reblinding.chunkRecords, beforeBody: beforeBody)
    }

    func respond(
        providerSet source: any ByteSource, name: String, state: RunState, into sink: any MessageSink,
        scratch: any ScratchSpace, budget: Int, chunkRecords: Int,
        beforeBody: (RespondFootprint) throws -> Void = { _ in }
    ) throws -> RespondSummary {
        do {
            var reader = try MessageReader(
                source, expecting: .providerBlinded, agreement: agreement, run: state.runUUID, name: name)
            let h = reader.header
            try Reblinding.checkShape(&reader, recordSize: Layout.elementSize, source: name)
            try beforeBody(.of(count: h.count, recordSize: h.recordSize, shuffled: false, budget: budget))
            var writer = try MessageWriter(
                kind: .providerReblinded, agreement: agreement, runUUID: h.runUUID, count: h.count,
                recordSize: Layout.elementSize, reference: h.bodyHash, signer: signingKey, sink: sink)
            try Reblinding.reblind(
                &reader, by: state.scalar, source: name, scratch: scratch, budget: budget, chunkRecords: chunkRecords
            ) {
                try writer.append($0)
            }
            return RespondSummary(count: h.count, bodyHash: try writer.finish())
        } catch {
            sink.abandon()
            throw error
        }
    }

    /// Round 4 in memory (tests, vectors, fuzzers): the streamed round over the message's bytes.
    public func respond(to providerSet: ProviderBlindedSet, state: RunState) throws(ActivationError)
        -> ProviderReblindedSet
    {
        let source = BytesSource(providerSet.message.serialized())
        let sink = BytesSink()
        try Reblinding.inMemory {
            _ = try respond(
                providerSet: source, name: "provider-blinded", state: state, into: sink, scratch: MemoryScratch(),
                budget: SpillBudget.bytes, chunkRecords: Reblinding.chunkRecords)
        }
        return ProviderReblindedSet(
            try SignedMessage.parse(
                sink.bytes, expecting: .providerReblinded, agreement: agreement,
                run: state.runUUID, source: "provider-reblinded"))
    }
}

/// The re-blinding pass shared by rounds 3 and 4.
enum Reblinding {
    /// Records per chunk: enough that each chunk's group arithmetic is split over every core
    /// (``ElementBatch`` cuts it into per-core pieces), small enough to be a few MiB.
    static let chunkRecords = 4_096

    /// Refuses a record size the agreement does not imply and an empty set, each only after the
    /// body's checksum verified (a tampered body is reported as such first, as when the whole
    /// message was parsed before any check).
    static func checkShape(_ reader: inout MessageReader, recordSize expected: Int, source: String) throws {
        guard reader.recordSize == expected else {
            try verifyOnly(&reader)
            throw ActivationError(
                .messageMalformed, "\(source): record size \(reader.recordSize), the agreement implies \(expected)")
        }
        guard reader.count > 0 else {
            try reader.endPass()
            // Honest parties never send an empty set (prepare refuses one); an empty set can only
            // probe the next step, so it is refused by name rather than answered as "nothing".
            throw ActivationError(.emptySet, "\(source): the set has no elements")
        }
    }

    /// Reads the body through once for its checksum only.
    static func verifyOnly(_ reader: inout MessageReader) throws {
        var buffer = [UInt8]()
        let perRead = max(1, (1 << 20) / reader.recordSize)
        while try reader.next(perRead, into: &buffer) > 0 {}
        try reader.endPass()
    }

    /// One pass over the body: each chunk's leading 32-byte elements strictly decoded and
    /// multiplied by `scalar` in one step (``ElementBatch/multiplying(validating:by:)``), written
    /// back into their records, handed to `emit` in order, and recorded (element, position) for
    /// the duplicate check. Then, in this order: the checksum (`endPass`), the first element
    /// refused (deferred until the checksum is known, so a tampered body is reported as tampered),
    /// and duplicates, found partition by partition.
    ///
    /// A duplicate is looked for among the re-blinded elements: multiplication by a non-zero
    /// scalar is a bijection, so equal outputs are equal inputs at the same positions.
    static func reblind(
        _ reader: inout MessageReader, by scalar: Scalar, source: String, scratch: any ScratchSpace, budget: Int,
        chunkRecords: Int, emit: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let recordSize = reader.recordSize
        let size = Layout.elementSize
        var partitions = try ElementPartitions(expectedCount: reader.count, scratch: scratch, budget: budget)
        var records = [UInt8]()
        var leading = [UInt8]()
        var refused: ActivationError?
        while true {
            let first = reader.position
            let n = try reader.next(chunkRecords, into: &records)
            if n == 0 { break }
            // After a refusal the rest of the body is only hashed.
            if refused != nil { continue }
            let product: ElementBatch
            do throws(CryptoError) {
                if recordSize == size {
                    product = try ElementBatch.multiplying(validating: records, by: scalar)
                } else {
                    leading.removeAll(keepingCapacity: true)
                    records.withUnsafeBytes { r in
                        for i in 0..<n {
                            leading.append(
                                contentsOf: UnsafeRawBufferPointer(
                                    rebasing: r[(i * recordSize)..<(i * recordSize + size)]))
                        }
                    }
                    product = try ElementBatch.multiplying(validating: leading, by: scalar)
                }
            } catch {
                refused =
                    error.code == .primitiveFailure
                    ? ActivationError(.cryptoFailure, "re-blinding failed: \(error.code.rawValue)")
                    : ActivationError(
                        .invalidElement,
                        "\(source): element \(error.index.map { String(first + $0) } ?? "?") rejected: \(error.code.rawValue)"
                    )
                continue
            }
            records.withUnsafeMutableBytes { dst in
                product.withUnsafeBytes { src in
                    for i in 0..<n {
                        (dst.baseAddress! + i * recordSize).copyMemory(
                            from: src.baseAddress! + i * size, byteCount: size)
                    }
                }
            }
            try records.withUnsafeBytes { r in
                try partitions.append(elementsOf: r, recordSize: recordSize, firstPosition: first)
                try emit(r)
            }
        }
        try reader.endPass()
        if let refused { throw refused }
        try refuseDuplicates(&partitions, source: source)
    }

    /// Joins each partition with nothing to find its first duplicate (``ElementJoin`` reports the
    /// pair with the smallest second index, a sequential scan's first); positions within a
    /// partition increase, so mapping back keeps that order, and the smallest second position
    /// over all partitions is the pair ``ElementIndex/build(_:)`` reports for the whole set.
    static func refuseDuplicates(_ partitions: inout ElementPartitions, source: String) throws {
        var found: (first: Int, second: Int)?
        try partitions.drain { p in
            let outcome = p.elements.withUnsafeBytes {
                ElementJoin.intersect(records: $0, UnsafeRawBufferPointer(start: nil, count: 0))
            }
            if let d = outcome.duplicateInA {
                let pair = (first: Int(p.positions[d.first]), second: Int(p.positions[d.second]))
                if found.map({ pair.second < $0.second }) ?? true { found = pair }
            }
        }
        try Layout.refuseDuplicate(found, source: source)
    }

    /// Runs a streamed round over in-memory sources and sinks, whose only errors are the round's.
    static func inMemory(_ body: () throws -> Void) throws(ActivationError) {
        do { try body() } catch let e as ActivationError { throw e } catch {
            preconditionFailure("in-memory streams do not fail: \(error)")
        }
    }
}

/// Round 3's second shuffle: an exact external shuffle over the scratch space in production; a
/// fixed permutation (test vectors), applied in memory, when one is given.
struct AnswerOrder {
    let recordSize: Int
    private var shuffle: ExternalShuffle?
    private let permutation: [Int]?
    private var held: [UInt8] = []

    init(recordSize: Int, count: Int, permutation: [Int]?, scratch: any ScratchSpace, budget: Int) throws {
        self.recordSize = recordSize
        self.permutation = permutation
        if let permutation {
            precondition(permutation.count == count, "permutation size must equal the set size")
            held.reserveCapacity(count * recordSize)
        } else {
            shuffle = try ExternalShuffle(
                recordSize: recordSize, expectedCount: count, scratch: scratch, budget: budget)
        }
    }

    mutating func append(_ records: UnsafeRawBufferPointer) throws {
        if permutation != nil { held.append(contentsOf: records) } else { try shuffle!.append(records) }
    }

    /// Emits every record once, in the answer's order. Consumes the order.
    mutating func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let permutation {
            var records = held
            held = []
            records.withUnsafeMutableBytes { Layout.permuteRecords($0, recordSize: recordSize, permutation) }
            try records.withUnsafeBytes { try body($0) }
        } else {
            try shuffle!.drain(body)
        }
    }
}
