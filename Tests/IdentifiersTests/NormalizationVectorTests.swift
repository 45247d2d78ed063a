import Foundation
import Identifiers
import RistrettoPSI
import Testing

/// One entry of `Protocol/vectors/normalization-v1.json`.
struct NormalizationVector: Codable, Sendable, CustomTestStringConvertible {
    struct Options: Codable, Sendable {
        var gmailRule: Bool?
        var defaultCountryCallingCode: String?
    }

    var id: String
    var type: IdentifierType
    var input: String?
    var inputHex: String?
    var rules: Options
    var normalized: String?
    var matchValue: String?
    var hashToGroupMessage: String?
    var error: String?
    var comment: String?

    var testDescription: String { id }

    func makeNormalizer() throws -> Normalizer {
        Normalizer(
            rules: try NormalizationRules(
                gmailRule: rules.gmailRule ?? false, defaultCountryCallingCode: rules.defaultCountryCallingCode))
    }

    func inputBytes() throws -> [UInt8] {
        if let inputHex { return try #require(Hex.decode(inputHex)) }
        return Array(try #require(input).utf8)
    }

    /// The vectors file, found from this source file's path (Tests/IdentifiersTests/ → package root).
    static func all() throws -> [NormalizationVector] {
        struct File: Codable {
            var rulesVersion: Int
            var vectors: [NormalizationVector]
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = try Data(contentsOf: root.appendingPathComponent("Protocol/vectors/normalization-v1.json"))
        let file = try JSONDecoder().decode(File.self, from: data)
        precondition(file.rulesVersion == NormalizationRules.currentVersion)
        return file.vectors
    }
}

@Suite("Normalization vectors (Protocol/vectors/normalization-v1.json)")
struct NormalizationVectorTests {
    @Test("the vectors file loads and covers every type and every value error code")
    func coverage() throws {
        let vectors = try NormalizationVector.all()
        #expect(vectors.count > 100)
        #expect(Set(vectors.map(\.type)) == Set(IdentifierType.allCases))
        let seen = Set(vectors.compactMap(\.error))
        let valueCodes = IdentifierError.Code.allCases.filter { !$0.rawValue.hasPrefix("identifier.rules.") }
        for code in valueCodes {
            #expect(seen.contains(code.rawValue), "no vector for \(code.rawValue)")
        }
    }

    @Test(
        "each vector normalizes to its expected form, match value and message, or fails with its code",
        arguments: try NormalizationVector.all())
    func vector(_ v: NormalizationVector) throws {
        let normalizer = try v.makeNormalizer()
        let input = try v.inputBytes()
        if let error = v.error {
            let code = try #require(IdentifierError.Code(rawValue: error))
            #expect(throws: IdentifierError(code, "")) { try normalizer.matchValue(input, as: v.type) }
            #expect(throws: IdentifierError(code, "")) { try normalizer.normalizedForm(input, as: v.type) }
        } else {
            let value = try normalizer.matchValue(input, as: v.type)
            #expect(value.type == v.type)
            #expect(value.rulesVersion == 1)
            #expect(Hex.encode(value.bytes) == v.matchValue)
            #expect(Hex.encode(value.hashToGroupMessage) == v.hashToGroupMessage)
            #expect(try normalizer.normalizedForm(input, as: v.type) == v.normalized)
        }
    }

    @Test(
        "the prepares' direct message path gives each vector's message, or the same error and reason, from a slice of a larger row",
        arguments: try NormalizationVector.all())
    func directMessage(_ v: NormalizationVector) throws {
        let normalizer = try v.makeNormalizer()
        let input = try v.inputBytes()
        // The value as a CSV row holds it: a slice that starts and ends inside a larger buffer.
        let row = Array("m-1,".utf8) + input + Array(",yes".utf8)
        let slice = row[4..<(4 + input.count)]
        if v.error != nil {
            let expected = try #require(throws: IdentifierError.self) { try normalizer.matchValue(input, as: v.type) }
            let direct = try #require(throws: IdentifierError.self) {
                try normalizer.hashToGroupMessage(slice, as: v.type)
            }
            #expect(direct.code == expected.code)
            #expect(direct.reason == expected.reason)
        } else {
            #expect(Hex.encode(try normalizer.hashToGroupMessage(slice, as: v.type)) == v.hashToGroupMessage)
        }
    }

    @Test(
        "normalizing a normalized form again changes nothing",
        arguments: try NormalizationVector.all().filter { $0.error == nil && $0.normalized != nil })
    func idempotent(_ v: NormalizationVector) throws {
        let normalizer = try v.makeNormalizer()
        let once = try #require(v.normalized)
        #expect(try normalizer.normalizedForm(once, as: v.type) == once)
        #expect(Hex.encode(try normalizer.matchValue(once, as: v.type).bytes) == v.matchValue)
    }

    @Test(
        "an error never repeats the rejected value",
        arguments: try NormalizationVector.all().filter { $0.error != nil && $0.input != nil })
    func errorDoesNotLeak(_ v: NormalizationVector) throws {
        let normalizer = try v.makeNormalizer()
        let value = try #require(v.input).trimmingCharacters(in: .whitespacesAndNewlines)
        let input = try v.inputBytes()
        let error = try #require(throws: IdentifierError.self) { try normalizer.matchValue(input, as: v.type) }
        let located = error.located(file: "customers.csv", row: 12, column: "id")
        for text in [String(describing: error), String(describing: located), String(reflecting: located), error.reason]
        {
            #expect(!text.isEmpty)
            if value.count >= 4 { #expect(!text.contains(value)) }
        }
    }
}
