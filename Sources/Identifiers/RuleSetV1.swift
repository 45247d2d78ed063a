/// The constants of normalization rule set version 1, written once.
///
/// Every number here appears in `Protocol/NORMALIZATION.md`; a change to any of them changes
/// which bytes are hashed and therefore requires a new rule-set version.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §2 "Limits" and §8 "Hash-to-group message".
enum RuleSetV1 {
    /// The rule-set version this module implements (§1).
    static let version = 1

    /// Longest raw value accepted for any type, in bytes, before trimming (§2).
    static let maxRawByteCount = 1024
    /// Longest normalized email address, in bytes (§2, §3; RFC 5321 §4.5.3.1.3 path limit minus `<>`).
    static let maxEmailByteCount = 254
    /// Longest email local part, in bytes (§3; RFC 5321 §4.5.3.1.1).
    static let maxLocalPartByteCount = 64
    /// Longest DNS label, in bytes (§3; RFC 1035 §2.3.4).
    static let maxDomainLabelByteCount = 63
    /// Fewest digits in an E.164 result, country code included (§4).
    static let minPhoneDigitCount = 8
    /// Most digits in an E.164 result, country code included (§4; ITU-T E.164 §6).
    static let maxPhoneDigitCount = 15
    /// Longest normalized custom identifier, in bytes of UTF-8 after NFC (§6).
    static let maxCustomByteCount = 1024
    /// The domain the optional Gmail rule applies to and maps to (§3.1).
    static let gmailDomain = Array("gmail.com".utf8)
    /// The second domain the optional Gmail rule applies to; it is rewritten to ``gmailDomain`` (§3.1).
    static let googlemailDomain = Array("googlemail.com".utf8)

    /// Length in hex characters of a SHA-256 digest: the one pre-hashed shape accepted (§7).
    static let sha256HexLength = 64
    /// Byte length of the hash-to-group message header: type code, version, UInt16BE length (§8).
    static let messageHeaderByteCount = 4
}

extension IdentifierType {
    /// The one-byte type code that opens every hash-to-group message, so equal bytes of different
    /// types never meet in the group.
    /// - SeeAlso: `Protocol/NORMALIZATION.md` §8 "Hash-to-group message".
    public var typeCode: UInt8 {
        switch self {
        case .email: 0x01
        case .phone: 0x02
        case .mobileAdID: 0x03
        case .custom: 0x04
        }
    }
}
