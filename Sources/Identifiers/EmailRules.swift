/// Email rules of version 1 (ASCII addresses only).
/// - SeeAlso: `Protocol/NORMALIZATION.md` §3.
enum EmailRules {
    /// `value` is trimmed, valid UTF-8 and non-empty.
    static func normalize(_ value: UnsafeBufferPointer<UInt8>, gmailRule: Bool) throws(IdentifierError) -> Normalized {
        if let digest = try HashShape.prehashedDigest(value) { return .prehashed(digest) }
        guard value.allSatisfy({ $0 < 0x80 }) else {
            throw IdentifierError(
                .emailNonASCII, "the address contains a non-ASCII character; rule set v1 accepts ASCII addresses only")
        }
        guard value.count <= RuleSetV1.maxEmailByteCount else {
            throw IdentifierError(.emailTooLong, "the address is longer than \(RuleSetV1.maxEmailByteCount) bytes")
        }
        var address = [UInt8]()
        address.reserveCapacity(value.count)
        var at = -1
        for b in value {
            if b == UInt8(ascii: "@") {
                guard at < 0 else { throw IdentifierError(.emailMalformed, "the address contains more than one '@'") }
                at = address.count
            }
            address.append(UTF8Text.lowercased(b))
        }
        guard at >= 0 else { throw IdentifierError(.emailMalformed, "the address contains no '@'") }

        try validateLocalPart(address[..<at])
        let domain = address[(at + 1)...]
        try validateDomain(domain)

        guard gmailRule, domain.elementsEqual(RuleSetV1.gmailDomain) || domain.elementsEqual(RuleSetV1.googlemailDomain)
        else {
            return .normalized(address)
        }
        var gmail = [UInt8]()
        gmail.reserveCapacity(address.count)
        for b in address[..<at] {
            if b == UInt8(ascii: "+") { break }
            if b != UInt8(ascii: ".") { gmail.append(b) }
        }
        guard !gmail.isEmpty else {
            throw IdentifierError(
                .emailInvalidLocalPart, "the local part is empty once the Gmail rule drops dots and the '+' tag")
        }
        gmail.append(UInt8(ascii: "@"))
        gmail.append(contentsOf: RuleSetV1.gmailDomain)
        return .normalized(gmail)
    }

    /// RFC 5322 `dot-atom-text` of 1–64 bytes; quoted local parts are rejected.
    private static func validateLocalPart(_ local: ArraySlice<UInt8>) throws(IdentifierError) {
        guard let first = local.first, let last = local.last else {
            throw IdentifierError(.emailInvalidLocalPart, "the local part (before '@') is empty")
        }
        guard first != UInt8(ascii: "\"") else {
            throw IdentifierError(.emailInvalidLocalPart, "quoted local parts are not accepted")
        }
        guard local.count <= RuleSetV1.maxLocalPartByteCount else {
            throw IdentifierError(
                .emailInvalidLocalPart, "the local part is longer than \(RuleSetV1.maxLocalPartByteCount) bytes")
        }
        guard first != UInt8(ascii: "."), last != UInt8(ascii: ".") else {
            throw IdentifierError(.emailInvalidLocalPart, "the local part starts or ends with a dot")
        }
        var previous: UInt8 = 0
        for b in local {
            if b == UInt8(ascii: "."), previous == UInt8(ascii: ".") {
                throw IdentifierError(.emailInvalidLocalPart, "the local part contains consecutive dots")
            }
            guard b == UInt8(ascii: ".") || isAtext(b) else {
                throw IdentifierError(
                    .emailInvalidLocalPart, "the local part contains a character outside RFC 5322 atext")
            }
            previous = b
        }
    }

    /// RFC 5322 §3.2.3 `atext` (letters are already lowercase here).
    private static func isAtext(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"),
            UInt8(ascii: "="), UInt8(ascii: "?"), UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"),
            UInt8(ascii: "{"), UInt8(ascii: "|"), UInt8(ascii: "}"), UInt8(ascii: "~"):
            true
        default: false
        }
    }

    /// At least two labels of 1–63 `[a-z0-9-]`, no label starting or ending with '-', TLD not all digits.
    private static func validateDomain(_ domain: ArraySlice<UInt8>) throws(IdentifierError) {
        var labelCount = 0
        var labelStart = domain.startIndex
        var lastLabelAllDigits = false
        var i = domain.startIndex
        while true {
            let atEnd = i == domain.endIndex
            if atEnd || domain[i] == UInt8(ascii: ".") {
                let label = domain[labelStart..<i]
                guard let first = label.first, let last = label.last else {
                    throw IdentifierError(.emailInvalidDomain, "the domain is empty or has an empty label")
                }
                guard label.count <= RuleSetV1.maxDomainLabelByteCount else {
                    throw IdentifierError(
                        .emailInvalidDomain, "a domain label is longer than \(RuleSetV1.maxDomainLabelByteCount) bytes")
                }
                guard first != UInt8(ascii: "-"), last != UInt8(ascii: "-") else {
                    throw IdentifierError(.emailInvalidDomain, "a domain label starts or ends with '-'")
                }
                labelCount += 1
                lastLabelAllDigits = label.allSatisfy(UTF8Text.isDigit)
                if atEnd { break }
                labelStart = i + 1
            } else {
                let b = domain[i]
                guard
                    (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z")) || UTF8Text.isDigit(b) || b == UInt8(ascii: "-")
                else {
                    throw IdentifierError(
                        .emailInvalidDomain, "the domain contains a character outside a-z, 0-9, '-' and '.'")
                }
            }
            i += 1
        }
        guard labelCount >= 2 else {
            throw IdentifierError(.emailInvalidDomain, "the domain has fewer than two labels")
        }
        guard !lastLabelAllDigits else {
            throw IdentifierError(.emailInvalidDomain, "the top-level domain is all digits")
        }
    }
}
