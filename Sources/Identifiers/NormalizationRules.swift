/// The options of one normalization rule set, validated on construction.
///
/// Contract: ``version`` must be a version this build implements (only `1` today). ``gmailRule``
/// is agreement-level: both parties must use the same value or Gmail addresses will not match.
/// ``defaultCountryCallingCode`` is party-level: it describes one party's own data (the country
/// its national-format numbers belong to) and may differ between the parties.
/// Decoding validates exactly like ``init(version:gmailRule:defaultCountryCallingCode:)``, so an
/// invalid value of this type cannot exist.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §1, §3.1, §4.
public struct NormalizationRules: Sendable, Codable, Equatable, Hashable {
    /// The newest rule-set version this build implements.
    public static let currentVersion = RuleSetV1.version

    /// The rule-set version; it is also written into every hash-to-group message.
    public let version: Int
    /// Whether gmail.com / googlemail.com addresses drop dots and `+tag` in the local part and
    /// googlemail.com becomes gmail.com. Off unless both parties agree to it.
    public let gmailRule: Bool
    /// Country calling code (1–3 digits, first non-zero, no '+') prepended to national-format
    /// phone numbers; `nil` rejects national-format numbers.
    public let defaultCountryCallingCode: String?

    /// Validated rules.
    /// - Parameters:
    ///   - version: the rule-set version; only ``currentVersion`` is accepted.
    ///   - gmailRule: whether to apply the Gmail rule; both parties must agree on it.
    ///   - defaultCountryCallingCode: digits such as `"1"` or `"44"`; one leading `+` is
    ///     accepted and dropped.
    /// - Throws: ``IdentifierError/Code/rulesUnsupportedVersion``,
    ///   ``IdentifierError/Code/rulesInvalidCountryCode``.
    public init(
        version: Int = NormalizationRules.currentVersion,
        gmailRule: Bool = false,
        defaultCountryCallingCode: String? = nil
    ) throws(IdentifierError) {
        guard version == RuleSetV1.version else {
            throw IdentifierError(
                .rulesUnsupportedVersion,
                "this build implements normalization rule set version \(RuleSetV1.version) only")
        }
        self.version = version
        self.gmailRule = gmailRule
        if let code = defaultCountryCallingCode {
            let digits = code.utf8.first == UInt8(ascii: "+") ? Substring(code.dropFirst()) : Substring(code)
            let ok =
                (1...3).contains(digits.utf8.count)
                && digits.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
                && digits.utf8.first != UInt8(ascii: "0")
            guard ok else {
                throw IdentifierError(
                    .rulesInvalidCountryCode,
                    "the default country calling code must be 1 to 3 digits with a non-zero first digit")
            }
            self.defaultCountryCallingCode = String(digits)
        } else {
            self.defaultCountryCallingCode = nil
        }
    }

    /// Version 1 with the Gmail rule off and no default country calling code.
    public static let standard: NormalizationRules = try! NormalizationRules()

    private enum CodingKeys: String, CodingKey {
        case version, gmailRule, defaultCountryCallingCode
    }

    /// Decodes and validates; throws ``IdentifierError`` for invalid options.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            version: c.decode(Int.self, forKey: .version),
            gmailRule: c.decodeIfPresent(Bool.self, forKey: .gmailRule) ?? false,
            defaultCountryCallingCode: c.decodeIfPresent(String.self, forKey: .defaultCountryCallingCode)
        )
    }

    /// Encodes the three options; `defaultCountryCallingCode` is omitted when `nil`.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(gmailRule, forKey: .gmailRule)
        try c.encodeIfPresent(defaultCountryCallingCode, forKey: .defaultCountryCallingCode)
    }
}
