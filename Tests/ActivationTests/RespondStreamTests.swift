import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// Rounds 3 and 4 streamed (SPEC §9 "Bounded memory"): the answers equal a reference computed
/// from the whole set in memory, at every chunk size and spill budget; refusals keep their codes,
/// name the absolute element positions, and leave nothing in the sink.
@Suite("Streamed rounds 3 and 4")
struct RespondStreamTests {
    static let run = try! NegativeTests.Prepared()

    /// A `MemoryScratch` that counts the files made, to show a small budget really spills.
    final class CountingScratch: ScratchSpace {
        let inner = MemoryScratch()
        private(set) var files = 0
        func makeFile() throws -> any ScratchFile {
            files += 1
            return try inner.makeFile()
        }
    }

    /// The answer of rounds 3 and 4 computed from the whole message at once: every record's
    /// element multiplied by `scalar`, records reordered by `permutation` (new `j` = old `perm[j]`).
    static func reference(_ m: SignedMessage, scalar: Scalar, permutation: [Int]?) throws -> [UInt8] {
        var lead = [UInt8]()
        for i in 0..<m.count { lead += m.record(i).prefix(32) }
        let product = try ElementBatch(validating: lead).multiplied(by: scalar)
        var body = [UInt8]()
        for j in 0..<m.count {
            let i = permutation?[j] ?? j
            product.withUnsafeBytes { body += $0[(i * 32)..<(i * 32 + 32)] }
            body += m.record(i).dropFirst(32)
        }
        return body
    }

    static let chunks = [1, 7, Reblinding.chunkRecords]
    static let budgets = [64, 1 << 12, SpillBudget.bytes]

    @Test("round 3 with a fixed shuffle equals the in-memory reference byte for byte", arguments: chunks, budgets)
    func round3FixedPermutation(chunk: Int, budget: Int) throws {
        let a = Self.run
        let m = a.c.forProvider.message
        let perm = Array((0..<m.count).reversed()).shuffled()
        let sink = BytesSink()
        let provider = try Provider(agreement: a.agreement, identity: a.f.providerID)
        let summary = try provider.respond(
            consumerSet: BytesSource(m.serialized()), name: "m2", state: a.p.state, into: sink,
            scratch: MemoryScratch(), budget: budget, permutation: perm, chunkRecords: chunk)
        let expected = SignedMessage(
            kind: .consumerReblinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: m.recordSize,
            body: try Self.reference(m, scalar: a.p.state.scalar, permutation: perm), reference: m.bodyHash,
            sealingKey: try SealingPublicKey(bytes: m.sealingKey), metadata: m.metadata,
            signer: a.f.providerID.signingKey)
        #expect(sink.bytes == expected.serialized())
        #expect(summary.count == m.count && summary.bodyHash == expected.bodyHash)
        // The in-memory API is the same code.
        #expect(
            try provider.respond(to: a.c.forProvider, state: a.p.state, permutation: perm).message.serialized()
                == expected.serialized())
    }

    @Test(
        "round 3 shuffled through many scratch buckets: the reference's records, each once, in a new order",
        arguments: [64, 1 << 12])
    func round3ExternalShuffle(budget: Int) throws {
        let a = Self.run
        let m = a.c.forProvider.message
        #expect(
            SpillBudget.pieces(count: m.count, recordSize: m.recordSize, budget: budget) > 4,
            "the budget forces many buckets")
        let scratch = CountingScratch()
        let sink = BytesSink()
        _ = try Provider(agreement: a.agreement, identity: a.f.providerID)
            .respond(
                consumerSet: BytesSource(m.serialized()), name: "m2", state: a.p.state, into: sink, scratch: scratch,
                budget: budget)
        #expect(scratch.files > 4, "buckets and partitions spilled to scratch files")
        let out = try ConsumerReblindedSet(parsing: sink.bytes, agreement: a.agreement, source: "m4").message
        #expect(
            out.count == m.count && out.reference == m.bodyHash && out.sealingKey == m.sealingKey
                && out.metadata == m.metadata)
        let expected = try Self.reference(m, scalar: a.p.state.scalar, permutation: nil)
        func records(_ body: [UInt8]) -> [[UInt8]] {
            stride(from: 0, to: body.count, by: m.recordSize).map { Array(body[$0..<($0 + m.recordSize)]) }
        }
        #expect(
            records(out.body).sorted { $0.lexicographicallyPrecedes($1) }
                == records(expected).sorted { $0.lexicographicallyPrecedes($1) })
        #expect(out.body != expected, "shuffled again (the chance of the identity order is 1/n!)")
    }

    @Test("round 4 equals the in-memory reference byte for byte, in order", arguments: chunks, budgets)
    func round4(chunk: Int, budget: Int) throws {
        let a = Self.run
        let m = a.p.forConsumer.message
        let sink = BytesSink()
        let consumer = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
        let summary = try consumer.respond(
            providerSet: BytesSource(m.serialized()), name: "m1", state: a.c.state, into: sink,
            scratch: MemoryScratch(), budget: budget, chunkRecords: chunk)
        let expected = SignedMessage(
            kind: .providerReblinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: 32,
            body: try Self.reference(m, scalar: a.c.state.scalar, permutation: nil), reference: m.bodyHash,
            signer: a.f.consumerID.signingKey)
        #expect(sink.bytes == expected.serialized())
        #expect(summary.count == m.count && summary.bodyHash == expected.bodyHash)
        #expect(
            try consumer.respond(to: a.p.forConsumer, state: a.c.state).message.serialized() == expected.serialized())
    }

    /// The whole protocol with tiny spill budgets in rounds 3 and 4: still exactly the overlap.
    @Test(
        "many buckets and partitions: the coordinator still finds exactly the known overlap", arguments: [true, false])
    func smallBudgetsEndToEnd(memberIDs: Bool) throws {
        let f = Fixture(deliverMemberID: memberIDs)
        let agreement = try f.agreement()
        let runID = AgreementTerms.newID()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let p = try provider.prepare(runID: runID, audience: People.audience())
        let c = try consumer.prepare(runID: runID, query: People.query())
        let scratch = CountingScratch()
        let m4 = BytesSink()
        let m5 = BytesSink()
        _ = try provider.respond(
            consumerSet: BytesSource(c.forProvider.message.serialized()), name: "m2", state: p.state, into: m4,
            scratch: scratch, budget: 128, permutation: nil, chunkRecords: 5)
        _ = try consumer.respond(
            providerSet: BytesSource(p.forConsumer.message.serialized()), name: "m1", state: c.state, into: m5,
            scratch: scratch, budget: 128, chunkRecords: 5)
        #expect(scratch.files > 20)
        let outcome = try Coordinator(agreement: agreement, identity: f.coordinatorID).match(
            runID: runID, payload: p.forCoordinator,
            consumerSet: ConsumerReblindedSet(parsing: m4.bytes, agreement: agreement, source: "m4"),
            providerSet: ProviderReblindedSet(parsing: m5.bytes, agreement: agreement, source: "m5"),
            history: RunHistory())
        guard case .deliver(let plan, let counts) = outcome else {
            Issue.record("expected a delivery")
            return
        }
        #expect(counts.matchedRows == People.expectedAudienceKeys.count)
        let objects = Dictionary(uniqueKeysWithValues: try plan.objects.map { ($0.name, try $0.bytes()) })
        let records = try provider.open(ReceivedDelivery(manifestBytes: plan.manifest.json(), objects: objects))
        #expect(Set(records.map { String(decoding: $0.audienceKey, as: UTF8.self) }) == People.expectedAudienceKeys)
        if memberIDs {
            for rec in records {
                let i = Int(String(decoding: rec.audienceKey, as: UTF8.self).dropFirst("audience-".count))!
                #expect(
                    rec.memberID.map { String(decoding: $0, as: UTF8.self) } == People.memberID(i),
                    "attributes follow their element")
            }
        }
    }

    // MARK: Refusals

    /// `n` distinct valid elements `G·(k+1)`.
    static func elements(_ n: Int) -> [[UInt8]] {
        (0..<n).map { k in try! RistrettoElement.generator.multiplied(by: BadMessageTests.scalar(k + 1)).bytes }
    }

    /// A signed provider set (32-byte records) or consumer set (with attribute bytes) of `elements`.
    static func set(_ elements: [[UInt8]], round: Int) -> SignedMessage {
        let a = run
        if round == 4 {
            return SignedMessage(
                kind: .providerBlinded, agreement: a.agreement, runUUID: a.p.state.runUUID, recordSize: 32,
                body: elements.flatMap { $0 }, signer: a.f.providerID.signingKey)
        }
        let size = Layout.consumerRecordSize(a.agreement)
        let body = elements.enumerated().flatMap { i, e in e + [UInt8](repeating: UInt8(i & 0xff), count: size - 32) }
        return SignedMessage(
            kind: .consumerBlinded, agreement: a.agreement, runUUID: a.p.state.runUUID, recordSize: size, body: body,
            sealingKey: a.c.forProvider.message.sealingKey.allSatisfy { $0 == 0 }
                ? nil : try! SealingPublicKey(bytes: a.c.forProvider.message.sealingKey),
            metadata: a.c.forProvider.message.metadata, signer: a.f.consumerID.signingKey)
    }

    /// Runs round 3 or 4 on `bytes` with a `BytesSink`; returns the error and what the sink holds.
    static func respond(_ bytes: [UInt8], round: Int, chunk: Int, budget: Int) -> (ActivationError?, [UInt8]) {
        let a = run
        let sink = BytesSink()
        do {
            if round == 4 {
                _ = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
                    .respond(
                        providerSet: BytesSource(bytes), name: "in.crm", state: state(round), into: sink,
                        scratch: MemoryScratch(),
                        budget: budget, chunkRecords: chunk)
            } else {
                _ = try Provider(agreement: a.agreement, identity: a.f.providerID)
                    .respond(
                        consumerSet: BytesSource(bytes), name: "in.crm", state: state(round), into: sink,
                        scratch: MemoryScratch(),
                        budget: budget, permutation: nil, chunkRecords: chunk)
            }
            return (nil, sink.bytes)
        } catch {
            return (error as? ActivationError, sink.bytes)
        }
    }

    /// Round 4 answers with the consumer's state, round 3 with the provider's (one run).
    static func state(_ round: Int) -> RunState { round == 4 ? run.c.state : run.p.state }

    static let rounds = [3, 4]

    @Test(
        "duplicates anywhere in the set: the pair with the smallest second position, as the whole-set index reports",
        arguments: rounds, [(1, 64), (8, 64), (16_384, SpillBudget.bytes)])
    func duplicates(round: Int, limits: (chunk: Int, budget: Int)) throws {
        var e = Self.elements(60)
        e[41] = e[3]  // a pair whose second position is larger…
        e[25] = e[10]  // …than this one's: element 25 duplicates element 10
        e[59] = e[10]
        let (expectedFirst, expectedSecond) = try #require(
            ElementIndex.build(try ElementBatch(validating: e.flatMap { $0 })).duplicate)
        #expect(expectedFirst == 10 && expectedSecond == 25)
        let (error, written) = Self.respond(
            Self.set(e, round: round).serialized(), round: round, chunk: limits.chunk, budget: limits.budget)
        #expect(error?.code == .duplicateElement)
        #expect(error?.reason == "in.crm: element 25 duplicates element 10")
        #expect(written.isEmpty, "nothing in the sink")
    }

    @Test(
        "an invalid element is named by its position in the whole set, past chunk boundaries", arguments: rounds,
        [1, 8, 16_384])
    func invalidElementPosition(round: Int, chunk: Int) throws {
        for (bad, code) in [
            ([UInt8](repeating: 0, count: 32), "crypto.identity_element"),
            ([UInt8](repeating: 0xff, count: 32), "crypto.invalid_element_encoding"),
        ] {
            var e = Self.elements(40)
            e[37] = bad
            e[38] = e[1]  // a duplicate later on does not hide the invalid element
            let (error, written) = Self.respond(
                Self.set(e, round: round).serialized(), round: round, chunk: chunk, budget: 64)
            #expect(error?.code == .invalidElement)
            #expect(error?.reason == "in.crm: element 37 rejected: \(code)")
            #expect(written.isEmpty)
        }
    }

    @Test(
        "a changed body byte is a checksum mismatch, even where it also makes an element invalid; nothing written",
        arguments: rounds, [1, 16_384])
    func bodyChanged(round: Int, chunk: Int) throws {
        let m = Self.set(Self.elements(30), round: round)
        let headerLength = m.serialized().count - m.body.count - 64
        // The top bit of an element's last byte (an invalid encoding once flipped), an element's
        // first byte, and the last record's last byte (an attribute byte in round 3).
        for offset in [31, 7 * m.recordSize, m.count * m.recordSize - 1] {
            var bytes = m.serialized()
            bytes[headerLength + offset] ^= 0x80
            let (error, written) = Self.respond(bytes, round: round, chunk: chunk, budget: 64)
            #expect(error?.code == .messageChecksumMismatch, "offset \(offset): \(String(describing: error))")
            #expect(written.isEmpty, "the sink was abandoned")
        }
        // Unchanged, the same set is answered.
        let (error, written) = Self.respond(m.serialized(), round: round, chunk: chunk, budget: 64)
        #expect(error == nil && !written.isEmpty)
    }

    @Test("an empty set is refused by name; a wrong record size as malformed", arguments: rounds)
    func emptyAndWrongShape(round: Int) throws {
        let (empty, w1) = Self.respond(Self.set([], round: round).serialized(), round: round, chunk: 8, budget: 64)
        #expect(empty?.code == .emptySet && w1.isEmpty)
        let a = Self.run
        let kind: MessageKind = round == 4 ? .providerBlinded : .consumerBlinded
        let wrong = SignedMessage(
            kind: kind, agreement: a.agreement, runUUID: a.p.state.runUUID, recordSize: 48,
            body: Self.elements(2).flatMap { $0 + [UInt8](repeating: 0, count: 16) },
            signer: round == 4 ? a.f.providerID.signingKey : a.f.consumerID.signingKey)
        let (malformed, w2) = Self.respond(wrong.serialized(), round: round, chunk: 8, budget: 64)
        #expect(malformed?.code == .messageMalformed && w2.isEmpty)
    }

    @Test("a set from another run than the state is refused before anything is read", arguments: rounds)
    func wrongRun(round: Int) throws {
        let a = Self.run
        let other = try Provider(agreement: a.agreement, identity: a.f.providerID).prepare(
            runID: AgreementTerms.newID(), audience: People.audience())
        let bytes =
            round == 4
            ? other.forConsumer.message.serialized()
            : try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
                .prepare(runID: other.state.runID, query: People.query()).forProvider.message.serialized()
        let (error, written) = Self.respond(bytes, round: round, chunk: 8, budget: 64)
        #expect(error?.code == .messageWrongRun && written.isEmpty)
    }
}
