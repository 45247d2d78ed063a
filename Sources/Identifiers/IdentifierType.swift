/// The kinds of identifier a collaboration can match on.
///
/// The raw values are the names used in agreements, CSV headers and the CLI.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §1.
public enum IdentifierType: String, CaseIterable, Sendable, Codable {
    /// An email address, or the SHA-256 hex of a normalized one (§3).
    case email
    /// A phone number, normalized to E.164, or the SHA-256 hex of one (§4).
    case phone
    /// A mobile advertising ID (Apple IDFA or Google GAID) (§5).
    case mobileAdID = "maid"
    /// Any other agreed identifier (loyalty number, hashed customer ID, ...), compared as NFC UTF-8 (§6).
    case custom

    /// Whether the match value is the SHA-256 of the normalized form (so that parties holding
    /// only hashed values interoperate) rather than the normalized bytes themselves.
    var hashesNormalizedForm: Bool {
        switch self {
        case .email, .phone: true
        case .mobileAdID, .custom: false
        }
    }

    /// Whether a 64-hex-character value is read as a SHA-256 of the normalized form (§7).
    var acceptsPrehashedInput: Bool { hashesNormalizedForm }
}
