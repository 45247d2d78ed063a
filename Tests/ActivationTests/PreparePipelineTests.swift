import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// Rounds 1 and 2 pipelined (SPEC §9 "Rounds 1 and 2", issue 6): a batch's group arithmetic and
/// sealing run on a job of their own while the next batch is read. Whatever the chunk size, the
/// pipelined prepare gives what the plain one (one batch after the other on the calling thread)
/// gives: the same bytes (the same opened plaintexts where records are sealed, as every seal draws
/// a fresh nonce), the same summaries, and the same error when something fails midway.
@Suite("Prepare pipelined")
struct PreparePipelineTests {
    /// One message per batch (a row's identifiers still share one), a few, and the production size.
    static let chunks = [1, 7, IdentifierStream.defaultChunk]

    static func tuning(_ chunk: Int, pipelined: Bool, failingBatch: Int? = nil) -> PrepareTuning {
        PrepareTuning(chunk: chunk, pipelined: pipelined, failingBatch: failingBatch)
    }

    /// What a prepare produced, with sealed parts opened, or the error it threw, as comparable text.
    enum Outcome: Equatable {
        case prepared(messages: [[UInt8]], opened: [[UInt8]], summary: PrepareSummary, skipped: [String])
        case failed(String)
    }

    static func describe(_ error: any Error) -> String {
        if let e = error as? ActivationError { return "\(e.code.rawValue): \(e.reason)" }
        return "\(type(of: error)): \(error)"
    }

    static func provider(
        _ f: Fixture, _ runID: String, rows: any InputRowSource, chunk: Int, pipelined: Bool,
        failingBatch: Int? = nil, scalar: Scalar, permutation: [Int]?
    ) -> Outcome {
        do {
            let agreement = try f.agreement()
            let provider = try Provider(agreement: agreement, identity: f.providerID)
            let audience = ProviderAudience(
                source: "audience.csv", rows: rows, identifierColumns: People.providerColumns,
                audienceKeyColumn: (0, "audience_id"))
            var staged = try provider.stage(
                runID: runID, audience: audience, scalar: scalar, scratch: MemoryScratch(), permutation: permutation,
                progress: nil, budget: 4096, tuning: tuning(chunk, pipelined: pipelined, failingBatch: failingBatch))
            let m1 = BytesSink()
            let m2 = BytesSink()
            _ = try staged.write(forConsumer: m1, forCoordinator: m2) { _ in }
            let payload = try ProviderPayload(parsing: m2.bytes, agreement: agreement, source: "m2").message
            var opened = [[UInt8]]()
            let opener =
                agreement.terms.output.sealed
                ? try RecordOpener(
                    recipient: f.providerID.sealingKey,
                    ephemeralPublicKey: try SealingPublicKey(bytes: payload.sealingKey),
                    context: Layout.payloadContext(agreement, payload.runUUID))
                : nil
            for i in 0..<payload.count {
                let r = Array(payload.record(i))
                opened.append(try opener.map { Array(r[..<8]) + (try $0.open(Array(r[8...]))) } ?? r)
            }
            // The blinded message is compared whole (header, signature, body); the payload by its opened records when sealed.
            return .prepared(
                messages: [m1.bytes] + (opener == nil ? [m2.bytes] : []), opened: opened,
                summary: staged.summary, skipped: try staged.skipped.all().map(\.description))
        } catch { return .failed(describe(error)) }
    }

    static func consumer(
        _ f: Fixture, _ runID: String, rows: any InputRowSource, chunk: Int, pipelined: Bool,
        failingBatch: Int? = nil, scalar: Scalar, permutation: [Int]?
    ) -> Outcome {
        do {
            let agreement = try f.agreement()
            let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
            let q = People.query()
            let query = ConsumerQuery(
                source: q.source, rows: rows, identifierColumns: q.identifierColumns, filters: q.filters,
                consentColumns: q.consentColumns, memberIDColumn: q.memberIDColumn, segmentID: q.segmentID,
                segmentName: q.segmentName)
            var staged = try consumer.stage(
                runID: runID, query: query, scalar: scalar, scratch: MemoryScratch(), permutation: permutation,
                progress: nil, budget: 4096, tuning: tuning(chunk, pipelined: pipelined, failingBatch: failingBatch))
            let m = BytesSink()
            _ = try staged.write(forProvider: m) { _ in }
            let message = try ConsumerBlindedSet(parsing: m.bytes, agreement: agreement, source: "m3").message
            guard agreement.terms.output.deliverMemberID else {
                return .prepared(
                    messages: [m.bytes], opened: [], summary: staged.summary,
                    skipped: try staged.skipped.all().map(\.description))
            }
            let outer = try RecordOpener(
                recipient: f.coordinatorID.sealingKey,
                ephemeralPublicKey: try SealingPublicKey(bytes: message.sealingKey),
                context: Layout.outerContext(agreement, message.runUUID))
            let inner = try RecordOpener(
                recipient: f.providerID.sealingKey,
                ephemeralPublicKey: try SealingPublicKey(hex: message.metadata["innerSealingKey"] ?? ""),
                context: Layout.innerContext(agreement, message.runUUID))
            var opened = [[UInt8]]()
            for i in 0..<message.count {
                let r = Array(message.record(i))
                opened.append(Array(r[..<32]) + (try inner.open(try outer.open(Array(r[32...])))))
            }
            return .prepared(
                messages: [], opened: opened, summary: staged.summary,
                skipped: try staged.skipped.all().map(\.description))
        } catch { return .failed(describe(error)) }
    }

    static func distinctCount(_ o: Outcome) -> Int {
        if case .prepared(_, _, let summary, _) = o { return summary.elements }
        return 0
    }

    @Test(
        "round 1: pipelined and plain give the same messages for every chunk size, sealed or not",
        arguments: chunks, [false, true])
    func providerPipelinedIsPlain(chunk: Int, sealed: Bool) throws {
        let f = Fixture(deliverMemberID: false, sealed: sealed)
        let runID = AgreementTerms.newID()
        let b = PrepareStreamTests.scalar("pipeline b")
        let rows = PrepareStreamTests.providerRows()
        let n = Self.distinctCount(
            Self.provider(
                f, runID, rows: ArrayRowSource(rows), chunk: chunk, pipelined: false, scalar: b, permutation: nil))
        #expect(n > 1_000)
        let perm = Array((0..<n).reversed())
        let plain = Self.provider(
            f, runID, rows: ArrayRowSource(rows), chunk: chunk, pipelined: false, scalar: b, permutation: perm)
        let piped = Self.provider(
            f, runID, rows: ArrayRowSource(rows), chunk: chunk, pipelined: true, scalar: b, permutation: perm)
        guard case .prepared(let messages, let opened, _, _) = piped else {
            Issue.record("pipelined prepare failed: \(piped)")
            return
        }
        #expect(messages.count == (sealed ? 1 : 2) && opened.count == n)
        #expect(piped == plain)
    }

    @Test(
        "round 2: pipelined and plain give the same elements and member IDs for every chunk size",
        arguments: chunks, [false, true])
    func consumerPipelinedIsPlain(chunk: Int, memberIDs: Bool) throws {
        let f = Fixture(deliverMemberID: memberIDs, sealed: true)
        let runID = AgreementTerms.newID()
        let a = PrepareStreamTests.scalar("pipeline a")
        let n = Self.distinctCount(
            Self.consumer(
                f, runID, rows: ArrayRowSource(People.consumerRows()), chunk: chunk, pipelined: false,
                scalar: a, permutation: nil))
        #expect(n > 100)
        let perm = (0..<n).map { ($0 * 37) % n }  // 37 is prime and does not divide n here
        #expect(Set(perm).count == n)
        let plain = Self.consumer(
            f, runID, rows: ArrayRowSource(People.consumerRows()), chunk: chunk, pipelined: false, scalar: a,
            permutation: perm)
        let piped = Self.consumer(
            f, runID, rows: ArrayRowSource(People.consumerRows()), chunk: chunk, pipelined: true, scalar: a,
            permutation: perm)
        guard case .prepared(_, let opened, _, _) = piped else {
            Issue.record("pipelined prepare failed: \(piped)")
            return
        }
        #expect(opened.count == (memberIDs ? n : 0))
        #expect(piped == plain)
    }

    /// Rows from an array that break (as a malformed CSV record would) when row `breakAt` is asked for.
    final class BreakingSource: InputRowSource {
        struct Broken: Error, CustomStringConvertible {
            let row: Int
            var description: String { "input breaks at row \(row)" }
        }
        private var rows: [InputRow]
        private let breakAt: Int?
        init(_ rows: [InputRow], breakAt: Int?) {
            self.rows = rows.reversed()
            self.breakAt = breakAt
        }
        func next() throws -> InputRow? {
            guard let r = rows.popLast() else { return nil }
            if r.row == breakAt { throw Broken(row: r.row) }
            return r
        }
    }

    /// Something failing midway through round 1's 2000 rows (about 2,600 identifiers), alone or
    /// after a batch whose arithmetic failed earlier, and the error the round must report.
    enum Midway: String, CaseIterable, Sendable {
        case crypto, cryptoThenBrokenInput, cryptoThenInvalidIdentifier, cryptoThenInvalidKey
        case brokenInput, invalidIdentifier, invalidKey, invalidIdentifierThenBrokenInput

        var failsBatch: Bool { rawValue.hasPrefix("crypto") }
        var breakAt: Int? {
            [.cryptoThenBrokenInput, .brokenInput, .invalidIdentifierThenBrokenInput].contains(self) ? 1_800 : nil
        }
        /// The reason (or its start) the plain path reports.
        var expected: String {
            switch self {
            case .crypto, .cryptoThenBrokenInput, .cryptoThenInvalidIdentifier, .cryptoThenInvalidKey:
                return "activation.crypto_failure: blinding failed: crypto.primitive_failure"
            case .brokenInput, .invalidIdentifierThenBrokenInput: return "Broken: input breaks at row 1800"
            case .invalidIdentifier:
                return "activation.invalid_input: audience.csv row 1501, column 'email': identifier."
            case .invalidKey:
                return
                    "activation.invalid_input: audience.csv row 1701, column 'audience_id': the audience key must be 1...128 bytes"
            }
        }

        /// The row whose failure follows the failed batch.
        var laterRow: Int {
            switch self {
            case .cryptoThenBrokenInput: return 1_800
            case .cryptoThenInvalidIdentifier: return 1_501
            default: return 1_701
            }
        }

        /// The batch whose arithmetic fails: the one still in flight when `laterRow` is read (so
        /// only joining it before reporting anything else keeps the plain order), or, for
        /// `.crypto`, the one holding about the 700th identifier; nil when no batch is flushed
        /// before that row (one batch of 16,384: it fails when flushed at the end of the input).
        func failingBatch(chunk: Int, rows: [InputRow]) -> Int? {
            guard failsBatch else { return nil }
            guard self != .crypto else { return 700 / chunk }
            var queued = 0
            var flushed = 0
            for row in rows where row.row < laterRow {
                queued += People.providerColumns.filter { !row.field($0.index).allSatisfy { $0 == 0x20 } }.count
                if queued >= chunk {
                    flushed += 1
                    queued = 0
                }
            }
            return flushed > 0 ? flushed - 1 : 0
        }

        func rows() -> [InputRow] {
            var rows = PrepareStreamTests.providerRows()
            if [.invalidIdentifier, .cryptoThenInvalidIdentifier, .invalidIdentifierThenBrokenInput].contains(self) {
                var fields = rows[1500].fields
                fields[1] = Array("not-an-email".utf8)
                rows[1500] = InputRow(row: 1501, fields: fields)
            }
            if [.invalidKey, .cryptoThenInvalidKey].contains(self) {
                var fields = rows[1700].fields
                fields[0] = []
                fields[3] = Array(People.maid(9_000).utf8)  // a new identifier, so the row's key is a first sighting
                rows[1700] = InputRow(row: 1701, fields: fields)
            }
            return rows
        }
    }

    @Test(
        "round 1: a failure midway is the plain path's error, whatever the chunk size",
        arguments: chunks, Midway.allCases)
    func providerFailureMidway(chunk: Int, midway: Midway) throws {
        let f = Fixture(deliverMemberID: false, sealed: true)
        let runID = AgreementTerms.newID()
        let rows = midway.rows()
        let failing = midway.failingBatch(chunk: chunk, rows: rows)
        var outcomes = [Outcome]()
        for pipelined in [false, true] {
            outcomes.append(
                Self.provider(
                    f, runID, rows: BreakingSource(rows, breakAt: midway.breakAt), chunk: chunk, pipelined: pipelined,
                    failingBatch: failing, scalar: .random(), permutation: nil))
        }
        guard case .failed(let reason) = outcomes[1] else {
            Issue.record("the pipelined prepare did not fail")
            return
        }
        if chunk == IdentifierStream.defaultChunk && midway == .cryptoThenBrokenInput {
            // One batch, flushed at the end of the input: the input's error comes first on either path.
            #expect(reason == Midway.brokenInput.expected)
        } else if chunk == IdentifierStream.defaultChunk && midway == .cryptoThenInvalidIdentifier {
            #expect(reason.hasPrefix(Midway.invalidIdentifier.expected))
        } else {
            #expect(reason.hasPrefix(midway.expected))
        }
        #expect(outcomes[0] == outcomes[1])
    }

    @Test("round 2: a missing filter column or a failed batch midway is the plain path's error", arguments: [1, 7])
    func consumerFailureMidway(chunk: Int) throws {
        let f = Fixture(deliverMemberID: true, sealed: true)
        var rows = People.consumerRows()
        rows[120] = InputRow(row: 121, fields: Array(rows[120].fields.prefix(3)))  // no consent or tier column
        // Rows 1-120 are selected and carry two identifiers each: `inFlight` is the batch still in
        // flight when row 121 is read, so only joining it first keeps the plain order.
        let inFlight = 120 / ((chunk + 1) / 2) - 1
        for failing in [nil, 2, inFlight, 1_000] {
            var outcomes = [Outcome]()
            for pipelined in [false, true] {
                outcomes.append(
                    Self.consumer(
                        f, AgreementTerms.newID(), rows: ArrayRowSource(rows), chunk: chunk, pipelined: pipelined,
                        failingBatch: failing, scalar: .random(), permutation: nil))
            }
            let expected =
                failing.map { $0 <= inFlight } == true
                ? "activation.crypto_failure: blinding failed: crypto.primitive_failure"
                : "activation.invalid_input: customers.csv row 121: missing column 'tier'"
            #expect(outcomes[1] == .failed(expected))
            #expect(outcomes[0] == outcomes[1])
        }
    }
}
