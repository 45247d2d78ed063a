import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// Issue 7's hostile messages, each refused with its own stable code (Protocol/BAD_INPUT.md).
/// `NegativeTests` holds the cases written earlier (replay, wrong signer, duplicates, identity).
@Suite("Bad input: messages")
struct BadMessageTests {
    /// One honest run to tamper with, shared by the cases (building it blinds a few hundred values).
    static let run = try! NegativeTests.Prepared()

    /// A header field (Protocol/SPEC.md §7) and the code a one-bit flip in it must produce, when
    /// the file is parsed as the CLI does (expecting its run).
    struct Flip: CustomTestStringConvertible, Sendable {
        let field: String, offset: Int, code: ActivationError.Code
        var testDescription: String { "\(field) (byte \(offset)) → \(code.rawValue)" }
    }
    static let flips: [Flip] = [
        Flip(field: "magic", offset: 0, code: .messageMalformed),
        Flip(field: "version", offset: 5, code: .messageWrongVersion),
        Flip(field: "kind", offset: 6, code: .messageWrongKind),
        Flip(field: "sender", offset: 7, code: .messageMalformed),
        Flip(field: "collaboration ID", offset: 8, code: .messageWrongCollaboration),
        Flip(field: "run ID", offset: 24, code: .messageWrongRun),
        Flip(field: "agreement hash", offset: 40, code: .messageWrongAgreement),
        Flip(field: "count", offset: 79, code: .messageCountMismatch),
        Flip(field: "record size", offset: 83, code: .messageCountMismatch),
        Flip(field: "body SHA-256", offset: 84, code: .messageSignatureInvalid),
        Flip(field: "reference", offset: 116, code: .messageSignatureInvalid),
        Flip(field: "sealing key", offset: 148, code: .messageSignatureInvalid),
        Flip(field: "metadata length", offset: 183, code: .messageCountMismatch),
        Flip(field: "first body byte", offset: 184, code: .messageChecksumMismatch),
        Flip(field: "last signature byte", offset: -1, code: .messageSignatureInvalid),
    ]

    @Test("a bit flipped in each header field, the body and the signature", arguments: flips)
    func bitFlip(_ flip: Flip) throws {
        let a = Self.run
        var bytes = a.p.forConsumer.message.serialized()
        #expect(a.p.forConsumer.message.metadata.isEmpty, "offsets assume round 1 carries no metadata")
        bytes[flip.offset >= 0 ? flip.offset : bytes.count + flip.offset] ^= 0x01
        do {
            _ = try ProviderBlindedSet(
                parsing: bytes, agreement: a.agreement, run: UUIDBytes.parse(a.runID), source: "exchange/m1.crm")
            Issue.record("a flipped \(flip.field) was accepted")
        } catch {
            #expect(error.code == flip.code)
            #expect(error.reason.hasPrefix("exchange/m1.crm: "), "the error names the file")
        }
    }

    @Test("a message cut at each boundary", arguments: [0, 3, 4, 183, 247, 248, -64, -32, -1])
    func truncated(_ length: Int) throws {
        let a = Self.run
        let good = a.p.forConsumer.message.serialized()
        let cut = Array(good.prefix(length >= 0 ? length : good.count + length))
        // Shorter than a header and a signature: malformed; otherwise the body is short.
        let expected: ActivationError.Code =
            cut.count < SignedMessage.fixedHeaderSize + 64 ? .messageMalformed : .messageCountMismatch
        #expect(throws: ActivationError(expected, "")) {
            try ProviderBlindedSet(parsing: cut, agreement: a.agreement, source: "m1")
        }
    }

    @Test("the coordinator refuses a provider-reblinded set whose count differs from the payload's")
    func elementCountMismatchAtTheCoordinator() throws {
        let a = Self.run
        let m5 = a.m5.message
        let short = SignedMessage(
            kind: .providerReblinded, agreement: a.agreement, runUUID: m5.runUUID, recordSize: m5.recordSize,
            body: Array(m5.body.dropLast(m5.recordSize)), reference: m5.reference, signer: a.f.consumerID.signingKey)
        #expect(throws: ActivationError(.messageCountMismatch, "")) {
            try a.coordinator.match(
                runID: a.runID, payload: a.p.forCoordinator, consumerSet: a.m4,
                providerSet: ProviderReblindedSet(short), history: RunHistory())
        }
    }

    @Test("zero-length sets: refused at prepare, at each respond step and at the coordinator")
    func zeroLengthSets() throws {
        let a = Self.run
        // Prepare: every row without an identifier.
        let provider = try Provider(agreement: a.agreement, identity: a.f.providerID)
        let empty = ProviderAudience(
            source: "audience.csv", rows: [InputRow(row: 1, fields: [Array("k".utf8), [], [], []])],
            identifierColumns: People.providerColumns, audienceKeyColumn: (0, "audience_id"))
        do {
            _ = try provider.prepare(runID: AgreementTerms.newID(), audience: empty)
            Issue.record("an empty set was prepared")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.reason.contains("audience.csv") && error.reason.contains("no identifiers"))
        }
        // A signed empty set, as a hostile party could send.
        let m1 = SignedMessage(
            kind: .providerBlinded, agreement: a.agreement, runUUID: a.p.forConsumer.message.runUUID, recordSize: 32,
            body: [], signer: a.f.providerID.signingKey)
        let parsed = try ProviderBlindedSet(parsing: m1.serialized(), agreement: a.agreement, source: "m1")
        let consumer = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
        #expect(throws: ActivationError(.emptySet, "")) { try consumer.respond(to: parsed, state: a.c.state) }
        let c2 = SignedMessage(
            kind: .consumerBlinded, agreement: a.agreement, runUUID: a.c.forProvider.message.runUUID,
            recordSize: a.c.forProvider.message.recordSize, body: [], signer: a.f.consumerID.signingKey)
        #expect(throws: ActivationError(.emptySet, "")) {
            try provider.respond(to: ConsumerBlindedSet(c2), state: a.p.state)
        }
        let m4 = a.m4.message
        let empty4 = SignedMessage(
            kind: .consumerReblinded, agreement: a.agreement, runUUID: m4.runUUID, recordSize: m4.recordSize,
            body: [], reference: m4.reference, metadata: m4.metadata, signer: a.f.providerID.signingKey)
        #expect(throws: ActivationError(.emptySet, "")) {
            try a.coordinator.match(
                runID: a.runID, payload: a.p.forCoordinator, consumerSet: ConsumerReblindedSet(empty4),
                providerSet: a.m5, history: RunHistory())
        }
    }

    @Test("a set above the agreed maximum: refused at prepare and, from a hostile sender, at parse")
    func setAboveTheAgreedMaximum() throws {
        var f = Fixture()
        f.terms.matching.maxSetSize = 5
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        do {
            _ = try provider.prepare(runID: AgreementTerms.newID(), audience: People.audience())
            Issue.record("a set above the maximum was prepared")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.reason.contains("matching.maxSetSize"))
        }
        let six = (1...6).flatMap { k in try! RistrettoElement.generator.multiplied(by: Self.scalar(k)).bytes }
        let m = SignedMessage(
            kind: .providerBlinded, agreement: agreement, runUUID: UUIDBytes.parse(AgreementTerms.newID())!,
            recordSize: 32, body: six, signer: f.providerID.signingKey)
        #expect(throws: ActivationError(.messageTooLarge, "")) {
            try ProviderBlindedSet(parsing: m.serialized(), agreement: agreement, source: "m1")
        }
        // Exactly the maximum passes.
        let five = SignedMessage(
            kind: .providerBlinded, agreement: agreement, runUUID: m.runUUID, recordSize: 32,
            body: Array(six.prefix(5 * 32)), signer: f.providerID.signingKey)
        #expect(
            try ProviderBlindedSet(parsing: five.serialized(), agreement: agreement, source: "m1").message.count == 5)
        // A bound below 1 makes the agreement malformed.
        f.terms.matching.maxSetSize = 0
        #expect(throws: ActivationError(.agreementMalformed, "")) { try f.agreement() }
    }

    static func scalar(_ k: Int) -> Scalar {
        var b = [UInt8](repeating: 0, count: 32)
        b[0] = UInt8(k)
        return try! Scalar(consumingCanonicalBytes: &b)
    }

    /// RFC 9496 A.2: every encoding Decode must reject, as the first element of a provider set.
    static let invalidEncodings: [String] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Protocol/vectors/rfc-ristretto255-h2g-oprf.json")
        let json = try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let block = json["ristretto255_invalid_encodings"] as! [String: Any]
        return (block["vectors"] as! [[String: Any]]).map { $0["encoding"] as! String }
    }()

    @Test("non-canonical and invalid encodings (RFC 9496 A.2) are refused by the consumer", arguments: invalidEncodings)
    func nonCanonicalEncoding(_ hex: String) throws {
        let a = Self.run
        let m = a.p.forConsumer.message
        var body = m.body
        body.replaceSubrange(0..<32, with: Hex.decode(hex)!)
        let bad = SignedMessage(
            kind: .providerBlinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: 32, body: body,
            signer: a.f.providerID.signingKey)
        let consumer = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
        do {
            _ = try consumer.respond(to: ProviderBlindedSet(bad), state: a.c.state)
            Issue.record("an invalid encoding was accepted")
        } catch {
            #expect(error.code == .invalidElement)
            #expect(error.reason.contains("element 0"), "the error names the element's position")
        }
    }
}
