import Foundation
import Identifiers
import RistrettoPSI
import Testing

@Suite("Identifiers")
struct IdentifiersTests {
    let plain = Normalizer()

    // MARK: Pre-hashed interoperability (§7)

    @Test("a SHA-256 hex of the normalized email, in either case, matches the raw email")
    func hashedEmailMatchesRaw() throws {
        let raw = try plain.matchValue("  Alice@Example.COM ", as: .email)
        let hex = Hex.encode(SHA256.hash(Array("alice@example.com".utf8)))
        #expect(try plain.matchValue(hex, as: .email) == raw)
        #expect(try plain.matchValue(hex.uppercased(), as: .email) == raw)
        #expect(try plain.normalizedForm(hex, as: .email) == nil)
        #expect(try plain.normalizedForm("Alice@Example.com", as: .email) == "alice@example.com")
    }

    @Test("the Gmail rule is agreement-level: both sides must apply it, including before hashing")
    func gmailRule() throws {
        let gmail = Normalizer(rules: try NormalizationRules(gmailRule: true))
        let raw = "J.Doe+news@googlemail.com"
        let hashedWithRule = Hex.encode(SHA256.hash(Array("jdoe@gmail.com".utf8)))
        #expect(try gmail.matchValue(raw, as: .email) == gmail.matchValue(hashedWithRule, as: .email))
        #expect(try plain.matchValue(raw, as: .email) != gmail.matchValue(raw, as: .email))
        #expect(try gmail.matchValue("jdoe@gmail.com", as: .email) == gmail.matchValue(raw, as: .email))
    }

    // MARK: Type separation and the message layout (§8)

    @Test("equal bytes of different types give different hash-to-group messages")
    func crossTypeSeparation() throws {
        let digest = Hex.encode(SHA256.hash(Array("+14155550100".utf8)))
        let asEmail = try plain.matchValue(digest, as: .email)
        let asPhone = try plain.matchValue(digest, as: .phone)
        #expect(asEmail.bytes == asPhone.bytes)
        #expect(asEmail != asPhone)
        #expect(asEmail.hashToGroupMessage != asPhone.hashToGroupMessage)
        #expect(Array(asEmail.hashToGroupMessage.dropFirst()) == Array(asPhone.hashToGroupMessage.dropFirst()))
    }

    @Test("the message is typeCode || version || UInt16BE(length) || bytes")
    func messageLayout() throws {
        let value = try plain.matchValue("abc", as: .custom)
        #expect(value.hashToGroupMessage == [0x04, 0x01, 0x00, 0x03, 0x61, 0x62, 0x63])
        let long = try plain.matchValue(String(repeating: "z", count: 300), as: .custom)
        #expect(Array(long.hashToGroupMessage.prefix(4)) == [0x04, 0x01, 0x01, 0x2C])
        var buffer: [UInt8] = [0xFF]
        value.appendHashToGroupMessage(to: &buffer)
        #expect(buffer == [0xFF] + value.hashToGroupMessage)
    }

    @Test("type codes are fixed and distinct")
    func typeCodes() {
        #expect(IdentifierType.allCases.map(\.typeCode) == [0x01, 0x02, 0x03, 0x04])
        #expect(IdentifierType.mobileAdID.rawValue == "maid")
        #expect(IdentifierType(rawValue: "maid") == .mobileAdID)
    }

    // MARK: Inputs as bytes (§2)

    @Test("contiguous and non-contiguous byte collections give the same result as a String")
    func byteCollections() throws {
        let text = "  +44 20 7946 0958 "
        let expected = try plain.matchValue(text, as: .phone)
        let bytes = Array(text.utf8)
        #expect(try plain.matchValue(bytes, as: .phone) == expected)
        #expect(try plain.matchValue(bytes[1...], as: .phone) == expected)
        #expect(try plain.matchValue(Data(bytes), as: .phone) == expected)
        #expect(try plain.matchValue(bytes.lazy.map { $0 }, as: .phone) == expected)
        #expect(throws: IdentifierError(.tooLong, "")) {
            try plain.matchValue([UInt8](repeating: 0x41, count: 5000).lazy.map { $0 }, as: .custom)
        }
    }

    @Test("custom values are compared after NFC")
    func customNFC() throws {
        #expect(try plain.matchValue("e\u{301}", as: .custom) == plain.matchValue("\u{e9}", as: .custom))
        #expect(try plain.matchValue("e\u{301}", as: .custom).bytes == [0xC3, 0xA9])
        #expect(try plain.matchValue("E\u{301}", as: .custom) != plain.matchValue("\u{e9}", as: .custom))
    }

    @Test("the custom limit applies after NFC, which can lengthen text")
    func customLimitAfterNFC() throws {
        // U+0958 is a composition exclusion: NFC turns its 3 bytes into 6 (U+0915 U+093C).
        let raw = String(repeating: "\u{0958}", count: 341)
        #expect(raw.utf8.count == 1023)
        #expect(throws: IdentifierError(.tooLong, "")) { try plain.matchValue(raw, as: .custom) }
        #expect(try plain.matchValue(String(repeating: "\u{0958}", count: 170), as: .custom).bytes.count == 1020)
    }

    @Test("whitespace with the Unicode White_Space property is trimmed, other format characters are not")
    func unicodeTrim() throws {
        let expected = try plain.matchValue("id-1", as: .custom)
        #expect(try plain.matchValue("\u{85}\u{2028}id-1\u{205F}\u{A0}", as: .custom) == expected)
        #expect(try plain.matchValue("\u{200B}id-1", as: .custom) != expected)
    }

    // MARK: Rules

    @Test(
        "rules validate the version and the default country calling code",
        arguments: ["", "0", "01", "1234", "a1", "+", "++1", "1 "])
    func invalidCountryCodes(_ code: String) {
        #expect(throws: IdentifierError(.rulesInvalidCountryCode, "")) {
            try NormalizationRules(defaultCountryCallingCode: code)
        }
    }

    @Test("valid rules keep the country code as digits; other versions are refused")
    func validRules() throws {
        #expect(try NormalizationRules(defaultCountryCallingCode: "+44").defaultCountryCallingCode == "44")
        #expect(try NormalizationRules(defaultCountryCallingCode: "358").defaultCountryCallingCode == "358")
        #expect(NormalizationRules.standard.version == 1)
        #expect(NormalizationRules.standard.gmailRule == false)
        #expect(NormalizationRules.standard.defaultCountryCallingCode == nil)
        #expect(throws: IdentifierError(.rulesUnsupportedVersion, "")) { try NormalizationRules(version: 2) }
        #expect(throws: IdentifierError(.rulesUnsupportedVersion, "")) { try NormalizationRules(version: 0) }
    }

    @Test("rules round-trip through JSON and decoding validates")
    func rulesCodable() throws {
        let rules = try NormalizationRules(gmailRule: true, defaultCountryCallingCode: "1")
        let data = try JSONEncoder().encode(rules)
        #expect(try JSONDecoder().decode(NormalizationRules.self, from: data) == rules)
        let bad = Data(#"{"version":1,"gmailRule":false,"defaultCountryCallingCode":"0"}"#.utf8)
        #expect(throws: IdentifierError(.rulesInvalidCountryCode, "")) {
            try JSONDecoder().decode(NormalizationRules.self, from: bad)
        }
        let future = Data(#"{"version":2}"#.utf8)
        #expect(throws: IdentifierError(.rulesUnsupportedVersion, "")) {
            try JSONDecoder().decode(NormalizationRules.self, from: future)
        }
    }

    // MARK: Errors and redaction (§9)

    @Test("error codes are unique, namespaced, and equality is by code only")
    func errorCodes() {
        let raw = IdentifierError.Code.allCases.map(\.rawValue)
        #expect(Set(raw).count == raw.count)
        #expect(raw.allSatisfy { $0.hasPrefix("identifier.") })
        #expect(IdentifierError(.empty, "one reason") == IdentifierError(.empty, "another").located(row: 3))
        #expect(IdentifierError(.empty, "same") != IdentifierError(.tooLong, "same"))
    }

    @Test("a located error names file, row, column and rule")
    func locatedDescription() {
        let error = IdentifierError(.emailMalformed, "the address contains no '@'")
        #expect(
            String(describing: error.located(file: "customers.csv", row: 12, column: "email"))
                == "customers.csv row 12, column 'email': identifier.email.malformed: the address contains no '@'")
        #expect(
            String(describing: error.located(row: 7))
                == "row 7: identifier.email.malformed: the address contains no '@'")
        #expect(String(describing: error) == "identifier.email.malformed: the address contains no '@'")
        #expect(
            error.located(file: "a.csv", row: 1, column: "c").location
                == IdentifierError.Location(file: "a.csv", row: 1, column: "c"))
    }

    @Test(
        "rejections never contain the value",
        arguments: [
            (IdentifierType.email, "zq.Secret Marker@example.com"),
            (.email, "zqsecretmarker@zqsecret..com"),
            (.email, "zqsecretmarker@zqsecret"),
            (.email, "zqsecretmarker"),
            (.email, "zqsécretmarker@example.com"),
            (.phone, "+1 555 zqsecretmarker"),
            (.phone, "+99999999999999999999"),
            (.mobileAdID, "zqsecretmarker-8246-4ba4-ae5b-76104861"),
            (.custom, String(repeating: "zqsecretmarker", count: 80)),
        ])
    func noLeak(_ type: IdentifierType, _ value: String) throws {
        let error = try #require(throws: IdentifierError.self) { try plain.matchValue(value, as: type) }
        let located = error.located(file: "f.csv", row: 1, column: "c")
        var dumped = ""
        dump(located, to: &dumped)
        for text in [String(describing: located), String(reflecting: located), located.reason, dumped] {
            #expect(!text.localizedCaseInsensitiveContains("zqsecret"))
            #expect(!text.contains(value))
            #expect(!text.contains("99999999"))
        }
    }

    @Test("a match value's description, debug description and mirror are redacted")
    func matchValueRedacted() throws {
        for (type, value) in [
            (IdentifierType.email, "zqsecret@example.com"), (.phone, "+14155550100"), (.custom, "zqsecret-42"),
            (.mobileAdID, "6d92078a-8246-4ba4-ae5b-76104861e7dc"),
        ] {
            let match = try plain.matchValue(value, as: type)
            var dumped = ""
            dump(match, to: &dumped)
            let hex = Hex.encode(match.bytes)
            for text in [String(describing: match), String(reflecting: match), "\(match)", dumped] {
                #expect(text.contains("redacted"))
                #expect(!text.contains(value))
                #expect(!text.contains("zqsecret"))
                #expect(!text.contains("4155550100"))
                #expect(!text.contains("6d92078a"))
                #expect(!text.contains(String(hex.prefix(8))))
            }
        }
    }
}
