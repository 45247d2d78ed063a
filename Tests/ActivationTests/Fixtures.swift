import Foundation
import Identifiers
import RistrettoPSI

@testable import Activation

/// A complete collaboration in memory: three identities, signed terms, and synthetic lists with
/// a known overlap.
struct Fixture {
    let consumerID = PartyIdentity.generate()
    let providerID = PartyIdentity.generate()
    let coordinatorID = PartyIdentity.generate()
    var terms: AgreementTerms

    init(
        deliverMemberID: Bool = true, sealed: Bool = true, minMatched: Int = 10, minConsumer: Int = 10,
        expires: Date = Date().addingTimeInterval(86_400)
    ) {
        terms = AgreementTerms(
            collaborationID: AgreementTerms.newID(), externalID: AgreementTerms.newID(),
            createdAt: Date(), expiresAt: expires,
            consumer: .init(name: "Retailer", signingKey: consumerID.signingKey.verifyingKey.hex),
            provider: .init(
                name: "Media Network", signingKey: providerID.signingKey.verifyingKey.hex,
                sealingKey: providerID.sealingKey.publicKey.hex),
            coordinator: .init(
                name: "Coordinator", signingKey: coordinatorID.signingKey.verifyingKey.hex,
                sealingKey: coordinatorID.sealingKey.publicKey.hex),
            matching: .init(identifierTypes: ["email", "phone", "maid"], defaultCountryCallingCode: "1"),
            output: .init(deliverMemberID: deliverMemberID, sealed: sealed),
            privacy: .init(
                minConsumerRows: minConsumer, minMatchedRows: minMatched, maxRunsPerWindow: 10, windowSeconds: 3600),
            destination: .init(kind: "local", directory: "/tmp/provider-bucket"))
    }

    func signed() throws -> SignedAgreement {
        var s = SignedAgreement(terms: terms)
        try s.sign(as: .consumer, with: consumerID.signingKey)
        try s.sign(as: .provider, with: providerID.signingKey)
        return s
    }

    func agreement() throws -> VerifiedAgreement { try signed().verified() }
}

/// Synthetic people: person `i` has an email, a phone and an ad ID.
enum People {
    static func email(_ i: Int) -> String { "Person.\(i)@Example.com" }
    static func phone(_ i: Int) -> String { "(415) 555-\(String(format: "%04d", i))" }
    static func audienceKey(_ i: Int) -> String { String(format: "audience-%06d", i) }
    static func memberID(_ i: Int) -> String { String(format: "member-%06d", i) }
    static func maid(_ i: Int) -> String { String(format: "6d92078a-8246-4ba4-ae5b-%012x", i + 1) }

    /// Provider audience: people 0..<300; audience keys `aud-<i>`; phones only for even people.
    static func providerRows() -> [InputRow] {
        (0..<300).map { i in
            InputRow(
                row: i + 1,
                fields: [
                    Array(People.audienceKey(i).utf8), Array(email(i).utf8),
                    i % 2 == 0 ? Array(phone(i).utf8) : [], Array(maid(i).utf8),
                ])
        }
    }
    static let providerColumns = [
        IdentifierColumn(index: 1, name: "email", type: .email),
        IdentifierColumn(index: 2, name: "phone", type: .phone),
        IdentifierColumn(index: 3, name: "maid", type: .mobileAdID),
    ]

    /// Consumer customers: people 200..<400 (overlap 200..<300 = 100 people). Half of the overlap
    /// shares only a phone (email differs), so multi-key matching is exercised; rows 350..<400 have
    /// no consent and are filtered out.
    static func consumerRows() -> [InputRow] {
        (200..<400).enumerated().map { n, i in
            let mail = (i % 4 == 0) ? "other.\(i)@example.org" : email(i)
            return InputRow(
                row: n + 1,
                fields: [
                    Array(People.memberID(i).utf8), Array(mail.utf8), Array(phone(i).utf8),
                    Array((i < 350 ? "yes" : "no").utf8), Array("gold".utf8),
                ])
        }
    }
    static let consumerColumns = [
        IdentifierColumn(index: 1, name: "email", type: .email),
        IdentifierColumn(index: 2, name: "phone", type: .phone),
    ]

    /// Provider rows that should match: person i in 200..<300 whose email matches (i % 4 != 0) or
    /// whose phone matches (provider has phones for even i).
    static var expectedAudienceKeys: Set<String> {
        Set((200..<300).filter { $0 % 4 != 0 || $0 % 2 == 0 }.map { People.audienceKey($0) })
    }

    static func audience() -> ProviderAudience {
        ProviderAudience(
            source: "audience.csv", rows: providerRows(), identifierColumns: providerColumns,
            audienceKeyColumn: (0, "audience_id"))
    }
    static func query() -> ConsumerQuery {
        ConsumerQuery(
            source: "customers.csv", rows: consumerRows(), identifierColumns: consumerColumns,
            filters: [.init(index: 4, name: "tier", values: [Array("gold".utf8)])],
            consentColumns: [(3, "ads_consent")], memberIDColumn: (0, "member_id"),
            segmentID: "loyalty-gold", segmentName: "Gold members")
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in these bytes.
    func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return Data(self).range(of: Data(needle)) != nil
    }
}
