/// Phone rules of version 1: E.164 without a numbering-plan database.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §4.
enum PhoneRules {
    /// `value` is trimmed, valid UTF-8 and non-empty. `defaultCountryCallingCode` is validated digits.
    static func normalize(_ value: UnsafeBufferPointer<UInt8>, defaultCountryCallingCode: String?)
        throws(IdentifierError) -> Normalized
    {
        if let digest = try HashShape.prehashedDigest(value) { return .prehashed(digest) }

        // 1. Keep the digits; allow separators and one leading '+'; reject anything else.
        var digits = [UInt8]()
        digits.reserveCapacity(RuleSetV1.maxPhoneDigitCount + 1)
        var hasPlus = false
        for (i, b) in value.enumerated() {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits.append(b)
            case UInt8(ascii: "+"):
                guard i == 0 else {
                    throw IdentifierError(.phoneInvalidCharacter, "a '+' is allowed only once, as the first character")
                }
                hasPlus = true
            case UInt8(ascii: " "), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"):
                continue
            default:
                throw IdentifierError(
                    .phoneInvalidCharacter,
                    "the number contains a character other than digits, space, '-', '.', '(', ')' and a leading '+' (letters and extensions are rejected)"
                )
            }
        }
        guard !digits.isEmpty else {
            throw IdentifierError(.phoneTooShort, "the number has no digits")
        }

        // 2. International ('+' or '00') or national (default country code, trunk '0', NANP).
        var e164 = [UInt8(ascii: "+")]
        e164.reserveCapacity(RuleSetV1.maxPhoneDigitCount + 2)
        if hasPlus {
            e164.append(contentsOf: digits)
        } else if digits.count >= 2, digits[0] == UInt8(ascii: "0"), digits[1] == UInt8(ascii: "0") {
            e164.append(contentsOf: digits[2...])
        } else {
            guard let code = defaultCountryCallingCode else {
                throw IdentifierError(
                    .phoneNoCountryCode,
                    "the number is in national format and the rules have no default country calling code")
            }
            if code == "1", digits.count == 11, digits[0] == UInt8(ascii: "1") {
                e164.append(contentsOf: digits)  // NANP: the national number already carries the '1'.
            } else {
                e164.append(contentsOf: code.utf8)
                e164.append(contentsOf: digits[0] == UInt8(ascii: "0") ? digits[1...] : digits[...])
            }
        }

        // 3. Shape of the result.
        let digitCount = e164.count - 1
        guard digitCount > 0, e164[1] != UInt8(ascii: "0") else {
            throw digitCount == 0
                ? IdentifierError(.phoneTooShort, "the number has no digits after the international prefix")
                : IdentifierError(.phoneInvalidCountryCode, "the country calling code starts with 0")
        }
        guard digitCount >= RuleSetV1.minPhoneDigitCount else {
            throw IdentifierError(
                .phoneTooShort, "the E.164 number has fewer than \(RuleSetV1.minPhoneDigitCount) digits")
        }
        guard digitCount <= RuleSetV1.maxPhoneDigitCount else {
            throw IdentifierError(
                .phoneTooLong, "the E.164 number has more than \(RuleSetV1.maxPhoneDigitCount) digits")
        }
        return .normalized(e164)
    }
}
