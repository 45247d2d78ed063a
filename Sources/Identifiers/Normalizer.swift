import RistrettoPSI

/// Turns raw identifier bytes into ``MatchValue``s under one set of ``NormalizationRules``.
///
/// Contract: the steps common to every type run first, in this order: length ≤ 1024 raw bytes,
/// valid UTF-8, trim Unicode White_Space at both ends, non-empty; then the type's own steps.
/// Every rejection is an ``IdentifierError`` whose code names the rule and whose text never
/// contains the value. Works on UTF-8 bytes; the only allocations on the ASCII path are the
/// normalized bytes and, for email and phone, the digest.
/// Thread-safety: an immutable value; share it freely across threads.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §2–§7.
public struct Normalizer: Sendable {
    /// The rules every value is normalized under.
    public let rules: NormalizationRules

    /// A normalizer for `rules` (version 1, Gmail rule off, no default country code by default).
    public init(rules: NormalizationRules = .standard) {
        self.rules = rules
    }

    /// The match value of one raw value (for example one CSV field's bytes) read as `type`.
    /// - Throws: ``IdentifierError`` naming the rule the value breaks (see §9 for the codes).
    public func matchValue<C: Collection>(_ raw: C, as type: IdentifierType) throws(IdentifierError) -> MatchValue
    where C.Element == UInt8 {
        let outcome = try withContiguousBytes(raw) { (bytes) throws(IdentifierError) in try normalize(bytes, as: type) }
        return matchValue(outcome, type: type)
    }

    /// The hash-to-group message of one raw value read as `type`: exactly
    /// `matchValue(raw, as: type).hashToGroupMessage`, with the same errors, built without the
    /// intermediate ``MatchValue`` and without generic dispatch (the prepares call it once per
    /// identifier, from another module, where the generic ``matchValue(_:as:)`` is not specialized).
    /// - Throws: ``IdentifierError`` naming the rule the value breaks (see §9 for the codes).
    public func hashToGroupMessage(_ raw: ArraySlice<UInt8>, as type: IdentifierType) throws(IdentifierError) -> [UInt8]
    {
        // Refuse huge inputs first, as matchValue(_:as:) does.
        guard raw.count <= RuleSetV1.maxRawByteCount else {
            throw IdentifierError(.tooLong, "the raw value is longer than \(RuleSetV1.maxRawByteCount) bytes")
        }
        let outcome = try raw.withUnsafeBufferPointer { (bytes) throws(IdentifierError) in
            Result { () throws(IdentifierError) -> Normalized in try normalize(bytes, as: type) }
        }.get()
        let matched: [UInt8]
        switch outcome {
        case .normalized(let text):
            matched = type.hashesNormalizedForm ? text.withUnsafeBytes { SHA256.hash($0) } : text
        case .prehashed(let digest): matched = digest
        }
        return MatchValue.hashToGroupMessage(type: type, rulesVersion: rules.version, bytes: matched)
    }

    /// The match value of `raw`'s UTF-8 bytes read as `type`.
    /// - Throws: ``IdentifierError`` naming the rule the value breaks.
    public func matchValue(_ raw: String, as type: IdentifierType) throws(IdentifierError) -> MatchValue {
        try matchValue(raw.utf8, as: type)
    }

    /// For debugging (`cleanroom debug normalize`): the normalized text whose bytes are hashed or
    /// matched, or `nil` when the input was already a SHA-256 hex digest and has no text form.
    /// - Throws: the same errors as ``matchValue(_:as:)``.
    /// - Warning: the result is personal data; show it only to the data's owner.
    public func normalizedForm<C: Collection>(_ raw: C, as type: IdentifierType) throws(IdentifierError) -> String?
    where C.Element == UInt8 {
        let outcome = try withContiguousBytes(raw) { (bytes) throws(IdentifierError) in try normalize(bytes, as: type) }
        switch outcome {
        case .normalized(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .prehashed: return nil
        }
    }

    /// ``normalizedForm(_:as:)`` for `raw`'s UTF-8 bytes.
    public func normalizedForm(_ raw: String, as type: IdentifierType) throws(IdentifierError) -> String? {
        try normalizedForm(raw.utf8, as: type)
    }

    // MARK: - Steps common to every type (§2)

    private func matchValue(_ outcome: Normalized, type: IdentifierType) -> MatchValue {
        let bytes: [UInt8]
        switch outcome {
        case .normalized(let text): bytes = type.hashesNormalizedForm ? SHA256.hash(text) : text
        case .prehashed(let digest): bytes = digest
        }
        return MatchValue(type: type, rulesVersion: rules.version, bytes: bytes)
    }

    func normalize(_ raw: UnsafeBufferPointer<UInt8>, as type: IdentifierType) throws(IdentifierError) -> Normalized {
        guard raw.count <= RuleSetV1.maxRawByteCount else {
            throw IdentifierError(.tooLong, "the raw value is longer than \(RuleSetV1.maxRawByteCount) bytes")
        }
        let isASCII = raw.allSatisfy { $0 < 0x80 }
        if !isASCII, String(validating: raw, as: UTF8.self) == nil {
            throw IdentifierError(.notUTF8, "the value is not valid UTF-8")
        }
        let range = UTF8Text.trimmedRange(raw, isASCII: isASCII)
        guard !range.isEmpty else {
            throw IdentifierError(.empty, "the value is empty or only whitespace")
        }
        let value = UnsafeBufferPointer(rebasing: raw[range])
        switch type {
        case .email: return try EmailRules.normalize(value, gmailRule: rules.gmailRule)
        case .phone: return try PhoneRules.normalize(value, defaultCountryCallingCode: rules.defaultCountryCallingCode)
        case .mobileAdID: return try MobileAdIDRules.normalize(value)
        case .custom: return try CustomRules.normalize(value, isASCII: isASCII)
        }
    }

    /// Runs `body` over `raw`'s bytes, copying only when `raw` has no contiguous storage.
    private func withContiguousBytes<C: Collection, R>(
        _ raw: C,
        _ body: (UnsafeBufferPointer<UInt8>) throws(IdentifierError) -> R
    ) throws(IdentifierError) -> R where C.Element == UInt8 {
        // Refuse huge inputs before any copy.
        guard raw.count <= RuleSetV1.maxRawByteCount else {
            throw IdentifierError(.tooLong, "the raw value is longer than \(RuleSetV1.maxRawByteCount) bytes")
        }
        let direct = raw.withContiguousStorageIfAvailable { buffer in
            Result { () throws(IdentifierError) -> R in try body(buffer) }
        }
        if let direct { return try direct.get() }
        let copy = Array(raw)
        return try copy.withUnsafeBufferPointer { buffer in
            Result { () throws(IdentifierError) -> R in try body(buffer) }
        }.get()
    }
}

/// The result of a type's rules, before the match bytes are derived.
enum Normalized {
    /// The normalized text (ASCII for email, phone and mobile ad ID; NFC UTF-8 for custom).
    case normalized([UInt8])
    /// A 32-byte SHA-256 digest supplied as hex (email and phone only).
    case prehashed([UInt8])
}
