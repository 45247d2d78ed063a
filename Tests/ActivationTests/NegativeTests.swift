import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// Each refusal has its own code, and a refused run produces no delivery.
@Suite("Refusals")
struct NegativeTests {
    @Test func tamperedAgreementIsRefused() throws {
        let f = Fixture()
        var s = try f.signed()
        s.terms.privacy.minMatchedRows = 1  // a party lowers k after both signed
        #expect(throws: ActivationError(.agreementSignatureInvalid, "")) { try s.verified() }
        // Tampering with the file bytes directly is caught the same way.
        var json = String(decoding: try f.signed().json(), as: UTF8.self)
        json = json.replacingOccurrences(of: "Media Network", with: "Media Netw0rk")
        #expect(throws: ActivationError(.agreementSignatureInvalid, "")) {
            try SignedAgreement(json: Data(json.utf8)).verified()
        }
    }

    @Test func unsignedOrHalfSignedAgreementIsRefused() throws {
        let f = Fixture()
        var s = SignedAgreement(terms: f.terms)
        #expect(throws: ActivationError(.agreementUnsigned, "")) { try s.verified() }
        try s.sign(as: .provider, with: f.providerID.signingKey)
        #expect(throws: ActivationError(.agreementUnsigned, "")) { try s.verified() }
    }

    @Test func wrongSignerIsRefused() throws {
        let f = Fixture()
        var s = SignedAgreement(terms: f.terms)
        // A key that is not the one the terms name cannot sign for that party…
        #expect(throws: ActivationError(.agreementSignatureInvalid, "")) {
            try s.sign(as: .consumer, with: f.providerID.signingKey)
        }
        // …and a forged signature field does not verify.
        try s.sign(as: .provider, with: f.providerID.signingKey)
        s.signatures.consumer = Hex.encode(SigningKey.generate().signature(for: f.terms.signedBytes()))
        #expect(throws: ActivationError(.agreementSignatureInvalid, "")) { try s.verified() }
    }

    @Test func expiredAgreementIsRefused() throws {
        let f = Fixture(expires: Date().addingTimeInterval(-60))
        #expect(throws: ActivationError(.agreementExpired, "")) { try f.agreement() }
    }

    @Test func incompleteAgreementIsRefused() throws {
        var f = Fixture()
        f.terms.provider = nil
        var s = SignedAgreement(terms: f.terms)
        try s.sign(as: .consumer, with: f.consumerID.signingKey)
        #expect(throws: ActivationError(.agreementIncomplete, "")) { try s.verified() }
    }

    /// One prepared run, to tamper with.
    struct Prepared {
        let f: Fixture, agreement: VerifiedAgreement, runID: String
        let p: Provider.Prepared, c: Consumer.Prepared
        let m4: ConsumerReblindedSet, m5: ProviderReblindedSet
        var coordinator: Coordinator { try! Coordinator(agreement: agreement, identity: f.coordinatorID) }
        init() throws {
            f = Fixture()
            agreement = try f.agreement()
            runID = AgreementTerms.newID()
            let provider = try Provider(agreement: agreement, identity: f.providerID)
            let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
            p = try provider.prepare(runID: runID, audience: People.audience())
            c = try consumer.prepare(runID: runID, query: People.query())
            m4 = try provider.respond(to: c.forProvider, state: p.state)
            m5 = try consumer.respond(to: p.forConsumer, state: c.state)
        }
    }

    @Test func messageFromAnotherRunIsRefused() throws {
        let a = try Prepared()
        let other = try Provider(agreement: a.agreement, identity: a.f.providerID)
            .prepare(runID: AgreementTerms.newID(), audience: People.audience())
        // Parsing with the expected run refuses it…
        #expect(throws: ActivationError(.messageWrongRun, "")) {
            try ProviderPayload(
                parsing: other.forCoordinator.message.serialized(), agreement: a.agreement,
                run: UUIDBytes.parse(a.runID), source: "payload")
        }
        // …and the coordinator refuses a payload replayed from another run.
        #expect(throws: ActivationError(.messageWrongRun, "")) {
            try a.coordinator.match(
                runID: a.runID, payload: other.forCoordinator, consumerSet: a.m4, providerSet: a.m5,
                history: RunHistory())
        }
        // A re-blinded set that answers another round-1 message.
        let otherConsumer = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
        let c2 = try otherConsumer.prepare(runID: a.runID, query: People.query())
        let m5b = try otherConsumer.respond(
            to: try Provider(agreement: a.agreement, identity: a.f.providerID)
                .prepare(runID: a.runID, audience: People.audience()).forConsumer, state: c2.state)
        #expect(throws: ActivationError(.messageReferenceMismatch, "")) {
            try a.coordinator.match(
                runID: a.runID, payload: a.p.forCoordinator, consumerSet: a.m4, providerSet: m5b, history: RunHistory())
        }
    }

    @Test func messageSignedByTheWrongPartyIsRefused() throws {
        let a = try Prepared()
        var bytes = a.p.forConsumer.message.serialized()
        // Re-sign the same header with the consumer's key: kind 1 must be signed by the provider.
        let headerEnd = bytes.count - 64
        let header = Array(bytes[0..<(headerEnd - a.p.forConsumer.message.body.count)])
        let forged = a.f.consumerID.signingKey.signature(for: SignedMessage.signaturePrefix + header)
        bytes.replaceSubrange(headerEnd..<bytes.count, with: forged)
        #expect(throws: ActivationError(.messageSignatureInvalid, "")) {
            try ProviderBlindedSet(parsing: bytes, agreement: a.agreement, source: "m1")
        }
    }

    @Test func truncatedFlippedOrWrongKindMessagesAreRefused() throws {
        let a = try Prepared()
        let good = a.p.forConsumer.message.serialized()
        #expect(throws: ActivationError(.messageMalformed, "")) {
            try ProviderBlindedSet(parsing: Array(good.prefix(100)), agreement: a.agreement, source: "m1")
        }
        #expect(throws: ActivationError(.messageCountMismatch, "")) {
            try ProviderBlindedSet(parsing: Array(good.dropLast(1)), agreement: a.agreement, source: "m1")
        }
        var flipped = good
        flipped[flipped.count - 100] ^= 0x01  // a body byte
        #expect(throws: ActivationError(.messageChecksumMismatch, "")) {
            try ProviderBlindedSet(parsing: flipped, agreement: a.agreement, source: "m1")
        }
        var header = good
        header[60] ^= 0x01  // inside the agreement hash: the header no longer matches the agreement
        #expect(throws: ActivationError(.messageWrongAgreement, "")) {
            try ProviderBlindedSet(parsing: header, agreement: a.agreement, source: "m1")
        }
        var version = good
        version[5] = 9
        #expect(throws: ActivationError(.messageWrongVersion, "")) {
            try ProviderBlindedSet(parsing: version, agreement: a.agreement, source: "m1")
        }
        #expect(throws: ActivationError(.messageWrongKind, "")) {
            try ConsumerBlindedSet(parsing: good, agreement: a.agreement, source: "m1")
        }
        let otherCollab = try Fixture().agreement()
        #expect(throws: ActivationError(.messageWrongCollaboration, "")) {
            try ProviderBlindedSet(parsing: good, agreement: otherCollab, source: "m1")
        }
    }

    /// A provider that sends the same element twice (to probe, or by mistake) is refused by the
    /// consumer; so is a non-canonical encoding.
    @Test func duplicateAndInvalidElementsAreRefused() throws {
        let a = try Prepared()
        let m = a.p.forConsumer.message
        var body = m.body
        body.replaceSubrange(32..<64, with: body[0..<32])
        let dup = SignedMessage(
            kind: .providerBlinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: 32, body: body,
            signer: a.f.providerID.signingKey)
        let consumer = try Consumer(agreement: a.agreement, signingKey: a.f.consumerID.signingKey)
        let c = try consumer.prepare(runID: a.runID, query: People.query())
        #expect(throws: ActivationError(.duplicateElement, "")) {
            try consumer.respond(to: ProviderBlindedSet(dup), state: c.state)
        }

        var bad = m.body
        bad[31] |= 0x80  // top bit: libsodium 1.0.18 would accept it
        let invalid = SignedMessage(
            kind: .providerBlinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: 32, body: bad,
            signer: a.f.providerID.signingKey)
        #expect(throws: ActivationError(.invalidElement, "")) {
            try consumer.respond(to: ProviderBlindedSet(invalid), state: c.state)
        }
        var identity = m.body
        identity.replaceSubrange(0..<32, with: [UInt8](repeating: 0, count: 32))
        let id = SignedMessage(
            kind: .providerBlinded, agreement: a.agreement, runUUID: m.runUUID, recordSize: 32, body: identity,
            signer: a.f.providerID.signingKey)
        #expect(throws: ActivationError(.invalidElement, "")) {
            try consumer.respond(to: ProviderBlindedSet(id), state: c.state)
        }

        // The coordinator refuses duplicates in the re-blinded sets too.
        let m4 = a.m4.message
        var b4 = m4.body
        b4.replaceSubrange(m4.recordSize..<(2 * m4.recordSize), with: b4[0..<m4.recordSize])
        let dup4 = SignedMessage(
            kind: .consumerReblinded, agreement: a.agreement, runUUID: m4.runUUID, recordSize: m4.recordSize, body: b4,
            reference: m4.reference, metadata: m4.metadata, signer: a.f.providerID.signingKey)
        #expect(throws: ActivationError(.duplicateElement, "")) {
            try a.coordinator.match(
                runID: a.runID, payload: a.p.forCoordinator, consumerSet: ConsumerReblindedSet(dup4), providerSet: a.m5,
                history: RunHistory())
        }
    }

    @Test func tooFewConsumerIdentifiersIsRefused() throws {
        var f = Fixture()
        f.terms.privacy.minConsumerRows = 10_000
        let agreement = try f.agreement()
        let runID = AgreementTerms.newID()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let p = try provider.prepare(runID: runID, audience: People.audience())
        let c = try consumer.prepare(runID: runID, query: People.query())
        let coordinator = try Coordinator(agreement: agreement, identity: f.coordinatorID)
        #expect(throws: ActivationError(.belowMinimumConsumerRows, "")) {
            try coordinator.match(
                runID: runID, payload: p.forCoordinator,
                consumerSet: try provider.respond(to: c.forProvider, state: p.state),
                providerSet: try consumer.respond(to: p.forConsumer, state: c.state), history: RunHistory())
        }
    }

    @Test func invalidIdentifierNamesRowAndColumnNotValue() throws {
        let f = Fixture(deliverMemberID: false)
        let consumer = try Consumer(agreement: try f.agreement(), signingKey: f.consumerID.signingKey)
        var rows = People.consumerRows()
        rows[7] = InputRow(
            row: 8,
            fields: [
                Array("member-x".utf8), Array("secret.person@@example.com".utf8), [], Array("yes".utf8),
                Array("gold".utf8),
            ])
        let q = ConsumerQuery(
            source: "customers.csv", rows: rows, identifierColumns: People.consumerColumns,
            consentColumns: [(3, "ads_consent")], segmentID: "s", segmentName: "S")
        do {
            _ = try consumer.prepare(runID: AgreementTerms.newID(), query: q)
            Issue.record("an invalid email was accepted")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.description.contains("customers.csv row 8"))
            #expect(error.description.contains("'email'"))
            #expect(!error.description.contains("secret.person"))
        }
        // With skip-and-report, the value is left out and listed by row, column and rule.
        let q2 = ConsumerQuery(
            source: "customers.csv", rows: rows, identifierColumns: People.consumerColumns,
            consentColumns: [(3, "ads_consent")], segmentID: "s", segmentName: "S", invalidValues: .skipAndReport)
        let r = try consumer.prepare(runID: AgreementTerms.newID(), query: q2)
        try #require(r.skipped.count == 1)
        #expect(r.skipped[0].row == 8 && r.skipped[0].column == "email")
        #expect(!r.skipped[0].description.contains("secret.person"))
    }

    @Test func stateFromAnotherRunOrRoleIsRefused() throws {
        let a = try Prepared()
        let bytes = a.p.state.serialized(collaborationUUID: a.agreement.collaborationUUID)
        #expect(throws: ActivationError(.stateInvalid, "")) {
            try RunState(parsing: bytes, role: .consumer, agreement: a.agreement, source: "s")
        }
        #expect(throws: ActivationError(.stateInvalid, "")) {
            try RunState(parsing: bytes, role: .provider, agreement: try Fixture().agreement(), source: "s")
        }
        let parsed = try RunState(parsing: bytes, role: .provider, agreement: a.agreement, source: "s")
        #expect(parsed.scalar.constantTimeEquals(a.p.state.scalar))
        let corrupted = SecureBytes(count: 10) { _ in }
        #expect(throws: ActivationError(.stateInvalid, "")) {
            try RunState(parsing: corrupted, role: .provider, agreement: a.agreement, source: "s")
        }
        // A state for run A cannot answer run B's message.
        let otherRun = try Provider(agreement: a.agreement, identity: a.f.providerID).prepare(
            runID: AgreementTerms.newID(), audience: People.audience())
        #expect(throws: ActivationError(.messageWrongRun, "")) {
            try Provider(agreement: a.agreement, identity: a.f.providerID).respond(
                to: a.c.forProvider, state: otherRun.state)
        }
    }

    /// The same input blinded in two runs gives unrelated values (fresh scalars every run).
    @Test func freshScalarsEveryRun() throws {
        let f = Fixture()
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let r1 = try provider.prepare(runID: AgreementTerms.newID(), audience: People.audience())
        let r2 = try provider.prepare(runID: AgreementTerms.newID(), audience: People.audience())
        let s1 = Set(try Layout.elements(of: r1.forConsumer.message, source: "1"))
        let s2 = Set(try Layout.elements(of: r2.forConsumer.message, source: "2"))
        #expect(s1.count == s2.count && s1.isDisjoint(with: s2))
    }
}
