/// Mobile ad ID (IDFA / GAID) rules of version 1.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §5.
enum MobileAdIDRules {
    /// Whether `offset` holds a hyphen in the canonical 8-4-4-4-12 form.
    private static func isHyphenOffset(_ offset: Int) -> Bool {
        offset == 8 || offset == 13 || offset == 18 || offset == 23
    }
    private static let canonicalByteCount = 36
    private static let bareByteCount = 32

    /// `value` is trimmed, valid UTF-8 and non-empty.
    static func normalize(_ value: UnsafeBufferPointer<UInt8>) throws(IdentifierError) -> Normalized {
        let hyphenated: Bool
        switch value.count {
        case canonicalByteCount: hyphenated = true
        case bareByteCount: hyphenated = false
        default:
            throw IdentifierError(
                .maidMalformed, "a mobile ad ID is 36 characters (8-4-4-4-12 with hyphens) or 32 hex digits")
        }
        var out = [UInt8]()
        out.reserveCapacity(canonicalByteCount)
        var allZero = true
        for (i, b) in value.enumerated() {
            if hyphenated, isHyphenOffset(i) {
                guard b == UInt8(ascii: "-") else {
                    throw IdentifierError(
                        .maidMalformed, "a 36-character mobile ad ID must have hyphens at 8-4-4-4-12 positions")
                }
                out.append(b)
                continue
            }
            guard UTF8Text.isHexDigit(b) else {
                throw IdentifierError(.maidMalformed, "a mobile ad ID contains a character that is not a hex digit")
            }
            if b != UInt8(ascii: "0") { allZero = false }
            if !hyphenated, isHyphenOffset(out.count) { out.append(UInt8(ascii: "-")) }
            out.append(UTF8Text.lowercased(b))
        }
        guard !allZero else {
            throw IdentifierError(.maidOptedOut, "the all-zero mobile ad ID marks a device that opted out of tracking")
        }
        return .normalized(out)
    }
}
