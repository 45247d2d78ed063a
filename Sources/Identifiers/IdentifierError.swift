/// The one error type of the identifiers module: a value rejected by the normalization rules,
/// or invalid rules.
///
/// Contract: ``code`` names the rule that failed and is stable across releases; ``reason`` is
/// prose for a person. Neither ever contains the rejected value or any part of it (identifiers are
/// personal data), so an error can be logged or shown to the other party's operator as is.
/// Equality and hashing are by ``code`` only.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §9 "Error codes".
public struct IdentifierError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the ones listed in `Protocol/NORMALIZATION.md` §9.
    public enum Code: String, Sendable, CaseIterable, Codable {
        /// The raw bytes are not valid UTF-8.
        case notUTF8 = "identifier.not_utf8"
        /// Nothing is left after trimming whitespace.
        case empty = "identifier.empty"
        /// The raw value exceeds 1024 bytes, or a custom value exceeds 1024 bytes after NFC.
        case tooLong = "identifier.too_long"

        /// An email without exactly one '@'.
        case emailMalformed = "identifier.email.malformed"
        /// An email local part that is empty, too long, quoted, or has a bad character or dot.
        case emailInvalidLocalPart = "identifier.email.invalid_local_part"
        /// An email domain that is not at least two valid DNS labels with a non-numeric TLD.
        case emailInvalidDomain = "identifier.email.invalid_domain"
        /// An email address longer than 254 bytes.
        case emailTooLong = "identifier.email.too_long"
        /// An email address with a non-ASCII character (internationalized addresses are not in v1).
        case emailNonASCII = "identifier.email.non_ascii"

        /// A hex value of 32 characters: the shape of an MD5 digest.
        case hashMD5Shape = "identifier.hash.md5_shape"
        /// A hex value of 40 characters: the shape of a SHA-1 digest.
        case hashSHA1Shape = "identifier.hash.sha1_shape"
        /// A hex value of 56 characters: the shape of a SHA-224 digest.
        case hashSHA224Shape = "identifier.hash.sha224_shape"
        /// A hex value of 96 characters: the shape of a SHA-384 digest.
        case hashSHA384Shape = "identifier.hash.sha384_shape"
        /// A hex value of 128 characters: the shape of a SHA-512 digest.
        case hashSHA512Shape = "identifier.hash.sha512_shape"

        /// A phone value with a character other than digits, space, '-', '.', '(', ')' and one leading '+'.
        case phoneInvalidCharacter = "identifier.phone.invalid_character"
        /// A national-format phone number while the rules carry no default country calling code.
        case phoneNoCountryCode = "identifier.phone.no_country_code"
        /// An international phone number whose country code would start with 0.
        case phoneInvalidCountryCode = "identifier.phone.invalid_country_code"
        /// Fewer than 8 digits in the E.164 result.
        case phoneTooShort = "identifier.phone.too_short"
        /// More than 15 digits in the E.164 result.
        case phoneTooLong = "identifier.phone.too_long"

        /// A mobile ad ID that is neither 8-4-4-4-12 hyphenated hex nor 32 bare hex digits.
        case maidMalformed = "identifier.maid.malformed"
        /// The all-zero mobile ad ID, which devices report when the user has opted out of tracking.
        case maidOptedOut = "identifier.maid.opted_out"

        /// Rules naming a rule-set version this build does not implement.
        case rulesUnsupportedVersion = "identifier.rules.unsupported_version"
        /// A default country calling code that is not 1–3 digits with a non-zero first digit.
        case rulesInvalidCountryCode = "identifier.rules.invalid_country_code"
    }

    /// Where in an input file the rejected value was, for messages to the data owner.
    public struct Location: Sendable, Hashable {
        /// The input file's name or path, as the caller wants it shown.
        public var file: String?
        /// The 1-based data row (the header is not counted).
        public var row: Int?
        /// The column's name from the header.
        public var column: String?

        /// A location; each part is optional and left out of ``IdentifierError/description`` when `nil`.
        public init(file: String? = nil, row: Int? = nil, column: String? = nil) {
            self.file = file
            self.row = row
            self.column = column
        }
    }

    /// The stable code of the rule that failed.
    public let code: Code
    /// A human-readable reason naming the rule (never the value).
    public let reason: String
    /// Where the value came from, once a caller has located the error.
    public let location: Location?

    /// An error for `code`. `reason` must not contain the rejected value.
    public init(_ code: Code, _ reason: String, location: Location? = nil) {
        self.code = code
        self.reason = reason
        self.location = location
    }

    /// The same error, located at `row` and `column` of `file` (each optional).
    public func located(file: String? = nil, row: Int? = nil, column: String? = nil) -> IdentifierError {
        IdentifierError(code, reason, location: Location(file: file, row: row, column: column))
    }

    /// For example `customers.csv row 12, column 'email': identifier.email.malformed: <reason>`.
    public var description: String {
        var head = ""
        if let location {
            if let file = location.file { head += file }
            if let row = location.row { head += (head.isEmpty ? "" : " ") + "row \(row)" }
            if let column = location.column { head += (head.isEmpty ? "" : ", ") + "column '\(column)'" }
        }
        let body = "\(code.rawValue): \(reason)"
        return head.isEmpty ? body : "\(head): \(body)"
    }

    /// Compares codes only, so callers can match on a code whatever the reason or location.
    public static func == (lhs: IdentifierError, rhs: IdentifierError) -> Bool { lhs.code == rhs.code }
    /// Hashes the code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
