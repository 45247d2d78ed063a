import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// The default country calling code is party-level (`Protocol/NORMALIZATION.md` §1): each party
/// may read its own national-format numbers with its own country, whatever the agreement says.
/// A UK provider's `020 7946 0xxx` read with the agreement's `1` becomes `+1207946…`, another
/// subscriber's number, so without the override nothing matches.
@Suite("Default country calling code per party")
struct CountryCodeTests {
    static let people = 0..<40
    static func national(_ i: Int) -> String { String(format: "020 7946 %04d", i) }
    static func international(_ i: Int) -> String { String(format: "+44 20 7946 %04d", i) }

    static func audience(_ phone: (Int) -> String, countryCode: String?) -> ProviderAudience {
        ProviderAudience(
            source: "audience.csv",
            rows: people.map { InputRow(row: $0 + 1, fields: [Array("aud-\($0)".utf8), Array(phone($0).utf8)]) },
            identifierColumns: [IdentifierColumn(index: 1, name: "phone", type: .phone)],
            audienceKeyColumn: (0, "audience_id"), defaultCountryCallingCode: countryCode)
    }

    static func query(_ phone: (Int) -> String, countryCode: String?) -> ConsumerQuery {
        ConsumerQuery(
            source: "customers.csv",
            rows: people.map { InputRow(row: $0 + 1, fields: [Array(phone($0).utf8)]) },
            identifierColumns: [IdentifierColumn(index: 0, name: "phone", type: .phone)],
            segmentID: "uk", segmentName: "UK", defaultCountryCallingCode: countryCode)
    }

    /// Rows matched by a run of the three roles in memory (0 when below the threshold).
    static func matched(_ audience: ProviderAudience, _ query: ConsumerQuery) throws -> Int {
        let f = Fixture(deliverMemberID: false)  // the agreement's default country calling code is "1"
        #expect(try f.agreement().rules.defaultCountryCallingCode == "1")
        switch try EndToEndTests.run(f, audience: audience, query: query).outcome {
        case .deliver(_, let counts): return counts.matchedRows
        case .belowThreshold(let counts): return counts.matchedRows
        }
    }

    @Test(
        "the provider's own country code makes its national numbers match the consumer's +44", arguments: ["44", "+44"])
    func providerOverride(code: String) throws {
        #expect(
            try Self.matched(
                Self.audience(Self.national, countryCode: code), Self.query(Self.international, countryCode: nil)) == 40
        )
    }

    @Test("the consumer's own country code works the same way")
    func consumerOverride() throws {
        #expect(
            try Self.matched(
                Self.audience(Self.international, countryCode: nil), Self.query(Self.national, countryCode: "44")) == 40
        )
    }

    @Test("without the override the agreement's code applies to both, and the UK national numbers match nothing")
    func agreementCodeByDefault() throws {
        #expect(
            try Self.matched(
                Self.audience(Self.national, countryCode: nil), Self.query(Self.international, countryCode: nil)) == 0)
    }

    @Test("an override only changes national numbers: international ones read the same under any code")
    func internationalUnchanged() throws {
        #expect(
            try Self.matched(
                Self.audience(Self.international, countryCode: "33"), Self.query(Self.international, countryCode: "1"))
                == 40)
    }

    @Test(
        "an invalid override is refused before anything is staged, naming the rule",
        arguments: ["0", "4444", "4a", "", "++44"])
    func invalidOverride(code: String) throws {
        let f = Fixture(deliverMemberID: false)
        let provider = try Provider(agreement: try f.agreement(), identity: f.providerID)
        let consumer = try Consumer(agreement: try f.agreement(), signingKey: f.consumerID.signingKey)
        for attempt in [
            {
                _ = try provider.prepare(
                    runID: AgreementTerms.newID(), audience: Self.audience(Self.national, countryCode: code))
            },
            {
                _ = try consumer.prepare(
                    runID: AgreementTerms.newID(), query: Self.query(Self.national, countryCode: code))
            },
        ] as [() throws -> Void] {
            let error = #expect(throws: ActivationError.self) { try attempt() }
            #expect(error?.code == .invalidInput)
            #expect(error.map { "\($0)" }?.contains("identifier.rules.invalid_country_code") == true)
        }
    }
}
