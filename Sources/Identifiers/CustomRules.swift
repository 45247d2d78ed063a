import Foundation

/// Custom identifier rules of version 1: exact bytes after trimming and Unicode NFC.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §6.
enum CustomRules {
    /// `value` is trimmed, valid UTF-8 and non-empty; `isASCII` says whether the raw value was ASCII.
    static func normalize(_ value: UnsafeBufferPointer<UInt8>, isASCII: Bool) throws(IdentifierError) -> Normalized {
        // ASCII text is already in NFC; skip the String round trip.
        let bytes =
            isASCII
            ? Array(value) : Array(String(decoding: value, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        guard bytes.count <= RuleSetV1.maxCustomByteCount else {
            throw IdentifierError(.tooLong, "the value is longer than \(RuleSetV1.maxCustomByteCount) bytes after NFC")
        }
        return .normalized(bytes)
    }
}
