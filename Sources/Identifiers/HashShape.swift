/// Recognition of hex digests supplied in place of an email or phone (§7).
enum HashShape {
    /// For a value made only of hex digits with the length of a known digest: the SHA-256 digest
    /// bytes, or a thrown error naming the other digest shape. `nil` for anything else, which then
    /// goes through the type's own rules.
    static func prehashedDigest(_ value: UnsafeBufferPointer<UInt8>) throws(IdentifierError) -> [UInt8]? {
        let shape: IdentifierError.Code?
        switch value.count {
        case RuleSetV1.sha256HexLength: shape = nil
        case 32: shape = .hashMD5Shape
        case 40: shape = .hashSHA1Shape
        case 56: shape = .hashSHA224Shape
        case 96: shape = .hashSHA384Shape
        case 128: shape = .hashSHA512Shape
        default: return nil
        }
        guard value.allSatisfy(UTF8Text.isHexDigit) else { return nil }
        if let shape {
            throw IdentifierError(
                shape,
                "the value has the shape of a \(name(shape)) hex digest (\(value.count) hex characters); only SHA-256 (64 hex characters) of the normalized value is accepted"
            )
        }
        var digest = [UInt8]()
        digest.reserveCapacity(value.count / 2)
        var i = 0
        while i < value.count {
            digest.append(nibble(value[i]) << 4 | nibble(value[i + 1]))
            i += 2
        }
        return digest
    }

    private static func nibble(_ c: UInt8) -> UInt8 {
        UTF8Text.isDigit(c) ? c - UInt8(ascii: "0") : (c | 0x20) - UInt8(ascii: "a") + 10
    }

    private static func name(_ code: IdentifierError.Code) -> String {
        switch code {
        case .hashMD5Shape: "MD5"
        case .hashSHA1Shape: "SHA-1"
        case .hashSHA224Shape: "SHA-224"
        case .hashSHA384Shape: "SHA-384"
        default: "SHA-512"
        }
    }
}
