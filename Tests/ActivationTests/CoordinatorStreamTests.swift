import Foundation
import Gzip
import RistrettoPSI
import Testing

@testable import Activation

/// Round 5 in bounded memory (SPEC §9 "Bounded memory", "Coordinator"): the streamed match gives
/// the result of the straightforward in-memory algorithm, whatever the spill budget (one partition
/// or dozens, one sorted run or several, rows in memory or in a file), and every input's checksum
/// is verified before any outcome.
@Suite("Coordinator, streamed")
struct CoordinatorStreamTests {
    struct Run {
        let f: Fixture, agreement: VerifiedAgreement, runID: String
        let payload: ProviderPayload, consumerSet: ConsumerReblindedSet, providerSet: ProviderReblindedSet
        var coordinator: Coordinator { try! Coordinator(agreement: agreement, identity: f.coordinatorID) }
        init(member: Bool = true, sealed: Bool = true, gzip: Bool = false) throws {
            var f = Fixture(deliverMemberID: member, sealed: sealed)
            f.terms.output.gzip = gzip
            self.f = f
            agreement = try f.agreement()
            runID = AgreementTerms.newID()
            let provider = try Provider(agreement: agreement, identity: f.providerID)
            let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
            let p = try provider.prepare(runID: runID, audience: People.audience())
            let c = try consumer.prepare(runID: runID, query: People.query())
            payload = p.forCoordinator
            consumerSet = try provider.respond(to: c.forProvider, state: p.state)
            providerSet = try consumer.respond(to: p.forConsumer, state: c.state)
        }

        func match(
            budget: Int, recordsPerObject: Int = 1_000_000, payload pb: [UInt8]? = nil, consumer cb: [UInt8]? = nil,
            provider qb: [UInt8]? = nil, now: Date
        ) throws -> MatchOutcome {
            var c = coordinator
            c.recordsPerObject = recordsPerObject
            return try c.match(
                runID: runID, payload: BytesSource(pb ?? payload.message.serialized()),
                consumerSet: BytesSource(cb ?? consumerSet.message.serialized()),
                providerSet: BytesSource(qb ?? providerSet.message.serialized()),
                scratch: MemoryScratch(), history: RunHistory(), now: now, names: .standard, budget: budget)
        }

        /// The delivery as the straightforward algorithm builds it: a dictionary of consumer
        /// elements, each provider row's lowest matching element, rows ascending, objects of
        /// `recordsPerObject` lines (uncompressed), and the matched element count.
        func reference(recordsPerObject: Int) throws -> (objects: [[UInt8]], matchedElements: Int, matchedRows: Int) {
            let cm = consumerSet.message
            let pm = payload.message
            let qm = providerSet.message
            var consumerIndex = [[UInt8]: Int]()
            for i in 0..<cm.count { consumerIndex[Array(cm.record(i).prefix(32))] = i }
            var best = [UInt64: (element: [UInt8], ci: Int, pi: Int)]()
            var matchedElements = 0
            for i in 0..<qm.count {
                let e = Array(qm.record(i))
                guard let ci = consumerIndex[e] else { continue }
                matchedElements += 1
                let row = BE.read64(pm.record(i).prefix(8))
                if let b = best[row], !e.lexicographicallyPrecedes(b.element) { continue }
                best[row] = (e, ci, i)
            }
            let terms = agreement.terms
            let header =
                (DeliveryPlan.columns(sealed: terms.output.sealed, memberID: terms.output.deliverMemberID).joined(
                    separator: ",") + "\n")
            var opener: RecordOpener?
            if terms.output.deliverMemberID {
                opener = try RecordOpener(
                    recipient: f.coordinatorID.sealingKey,
                    ephemeralPublicKey: try SealingPublicKey(bytes: cm.sealingKey),
                    context: Layout.outerContext(agreement, UUIDBytes.parse(runID)!))
            }
            var lines: [String] = []
            for (_, m) in best.sorted(by: { $0.key < $1.key }) {
                let rec = Array(pm.record(m.pi).dropFirst(8))
                var fields = [terms.output.sealed ? Base64.encode(rec) : CSVField.quote(Layout.unpadded(rec)!)]
                fields += [cm.metadata["segmentID"]!, cm.metadata["segmentName"]!]
                if let opener { fields.append(Base64.encode(try opener.open(Array(cm.record(m.ci).dropFirst(32))))) }
                lines.append(fields.joined(separator: ",") + "\n")
            }
            var objects: [[UInt8]] = []
            for start in stride(from: 0, to: max(lines.count, 1), by: recordsPerObject) {
                objects.append(
                    Array((header + lines[start..<min(lines.count, start + recordsPerObject)].joined()).utf8))
            }
            return (objects, matchedElements, best.count)
        }
    }

    static let shapes: [(member: Bool, sealed: Bool, gzip: Bool)] = [
        (true, true, false), (false, false, true), (true, true, true), (false, true, false),
    ]

    /// Budgets from "everything in one piece" to a few hundred bytes: dozens of join partitions,
    /// several sorted runs of matches, the provider rows in a scratch file.
    @Test(
        "the streamed delivery equals the in-memory algorithm's, whatever the budget", arguments: [1 << 30, 4096, 512])
    func equalsReference(budget: Int) throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        for shape in Self.shapes {
            let run = try Run(member: shape.member, sealed: shape.sealed, gzip: shape.gzip)
            for perObject in [1_000_000, 7] {
                guard
                    case .deliver(let plan, let counts) = try run.match(
                        budget: budget, recordsPerObject: perObject, now: now)
                else {
                    Issue.record("no delivery")
                    return
                }
                let ref = try run.reference(recordsPerObject: perObject)
                #expect(counts.matchedRows == ref.matchedRows && counts.matchedElements == ref.matchedElements)
                #expect(counts.matchedRows == People.expectedAudienceKeys.count)
                #expect(plan.objects.count == ref.objects.count)
                for (o, expected) in zip(plan.objects, ref.objects) {
                    let bytes = try o.bytes()
                    #expect(bytes == (shape.gzip ? try Gzip.compress(expected) : expected), "object \(o.name)")
                    #expect(o.sha256 == SHA256.hash(bytes))
                }
                #expect(plan.manifest.manifest.records == ref.matchedRows)
                // The same run through the public in-memory API gives the same signed manifest.
                var c = run.coordinator
                c.recordsPerObject = perObject
                guard
                    case .deliver(let whole, _) = try c.match(
                        runID: run.runID, payload: run.payload, consumerSet: run.consumerSet,
                        providerSet: run.providerSet, history: RunHistory(), now: now)
                else {
                    Issue.record("no delivery in memory")
                    return
                }
                #expect(whole.manifest == plan.manifest)
            }
        }
    }

    static func flipped(_ bytes: [UInt8], at offset: Int) -> [UInt8] {
        var b = bytes
        b[offset] ^= 0x01
        return b
    }

    /// A changed body byte in any input (first element byte, which also makes the element
    /// invalid, or the last body byte) is reported as a checksum mismatch, never as what the
    /// changed record seems to say, and no outcome comes back.
    @Test("a changed body byte in each input is a checksum mismatch", arguments: ["payload", "consumer", "provider"])
    func changedBodyByte(_ input: String) throws {
        let run = try Run()
        let now = Date()
        for budget in [1 << 30, 512] {
            let m: SignedMessage =
                input == "payload"
                ? run.payload.message : input == "consumer" ? run.consumerSet.message : run.providerSet.message
            let bytes = m.serialized()
            let bodyStart = m.headerBytes.count
            let bodyEnd = bytes.count - 64
            for offset in [bodyStart, bodyStart + 31, bodyEnd - 1] {
                let bad = Self.flipped(bytes, at: offset)
                do {
                    _ = try run.match(
                        budget: budget, payload: input == "payload" ? bad : nil,
                        consumer: input == "consumer" ? bad : nil,
                        provider: input == "provider" ? bad : nil, now: now)
                    Issue.record("a changed byte at \(offset) of \(input) gave an outcome")
                } catch let e as ActivationError {
                    #expect(e.code == .messageChecksumMismatch, "\(input) byte \(offset): \(e.code.rawValue)")
                }
            }
        }
    }

    /// A duplicate is reported with the pair a sequential scan finds first, whatever the number
    /// of partitions; an invalid element with its absolute position past the first chunk.
    @Test(
        "duplicates and invalid elements are reported with their positions, whatever the budget",
        arguments: [1 << 30, 512])
    func positionsInRefusals(budget: Int) throws {
        let run = try Run(member: false)
        let m = run.consumerSet.message
        var body = m.body
        // Element 40 repeated at 90 and 120: the first duplicate found is (40, 90).
        body.replaceSubrange((90 * 32)..<(91 * 32), with: body[(40 * 32)..<(41 * 32)])
        body.replaceSubrange((120 * 32)..<(121 * 32), with: body[(40 * 32)..<(41 * 32)])
        let dup = SignedMessage(
            kind: .consumerReblinded, agreement: run.agreement, runUUID: m.runUUID, recordSize: 32, body: body,
            reference: m.reference, metadata: m.metadata, signer: run.f.providerID.signingKey)
        do {
            _ = try run.match(budget: budget, consumer: dup.serialized(), now: Date())
            Issue.record("a duplicate was accepted")
        } catch let e as ActivationError {
            #expect(e.code == .duplicateElement)
            #expect(e.reason == "consumer-reblinded: element 90 duplicates element 40")
        }
        // 17,000 elements (more than one chunk), the one at 16,390 not a valid encoding.
        var big = [UInt8]()
        for _ in 0..<(17_000 / m.count + 1) { big += m.body }
        big.removeLast(big.count - 17_000 * 32)
        big.replaceSubrange((16_390 * 32)..<(16_391 * 32), with: [UInt8](repeating: 0xff, count: 32))
        let invalid = SignedMessage(
            kind: .consumerReblinded, agreement: run.agreement, runUUID: m.runUUID, recordSize: 32, body: big,
            reference: m.reference, metadata: m.metadata, signer: run.f.providerID.signingKey)
        do {
            _ = try run.match(budget: budget, consumer: invalid.serialized(), now: Date())
            Issue.record("an invalid element was accepted")
        } catch let e as ActivationError {
            #expect(e.code == .invalidElement)
            #expect(e.reason.hasPrefix("consumer-reblinded: element 16390 rejected"), "\(e.reason)")
        }
    }

    /// Budgets: runs of 64 records (each sorted whole), runs of 2,000 and one buffer of 5,000
    /// (each sorted as slices on every core, then merged).
    @Test(
        "the sorted runs of matches merge into (row, element) order",
        arguments: [0, 2_000 * MatchSorter.recordSize, 1 << 30])
    func sorterMergesRuns(budget: Int) throws {
        var rng = SystemRandomNumberGenerator()
        var sorter = MatchSorter(scratch: MemoryScratch(), budget: budget, expected: 0)
        var expected: [(UInt64, [UInt8])] = []
        for i in 0..<5_000 {
            let row = UInt64.random(in: 0..<300, using: &rng)
            let e = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
            try e.withUnsafeBytes {
                try sorter.append(
                    MatchRecord(row: row, element: $0.baseAddress!, consumerPosition: UInt64(i), providerPosition: 0))
            }
            expected.append((row, e))
        }
        #expect(
            sorter.runCount == [0: 5_000 / 64, 1 << 30: 0][budget, default: 2], "full buffers were spilled as runs")
        expected.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1.lexicographicallyPrecedes($1.1) }
        var got: [(UInt64, UInt64)] = []
        try sorter.drain { got.append(($0.row, $0.e0)) }
        #expect(got.count == 5_000)
        #expect(got.map(\.0) == expected.map(\.0))
        #expect(got.map(\.1) == expected.map { BE.read64($0.1.prefix(8)) }, "elements ascending within a row")
    }
}
