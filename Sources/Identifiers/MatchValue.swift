/// The bytes one identifier contributes to matching, tagged with its type and rule-set version.
///
/// Contract: only ``Normalizer`` creates values, so ``bytes`` always obeys the rules of
/// ``rulesVersion`` for ``type``: 32 bytes of SHA-256 for email and phone, the 36-byte canonical
/// text for a mobile ad ID, NFC UTF-8 (1–1024 bytes) for custom.
/// - Warning: the bytes are personal data (or a dictionary-attackable hash of it). ``description``,
///   ``debugDescription`` and reflection are redacted; do not log ``bytes``.
/// - SeeAlso: `Protocol/NORMALIZATION.md` §8 "Hash-to-group message".
public struct MatchValue: Hashable, Sendable {
    /// The identifier type.
    public let type: IdentifierType
    /// The rule-set version that produced ``bytes``.
    public let rulesVersion: Int
    /// The match bytes (see the type's contract).
    public let bytes: [UInt8]

    init(type: IdentifierType, rulesVersion: Int, bytes: [UInt8]) {
        self.type = type
        self.rulesVersion = rulesVersion
        self.bytes = bytes
    }

    /// The message hashed to the group:
    /// `typeCode (1 byte) || rulesVersion (1 byte) || UInt16BE(bytes.count) || bytes`.
    ///
    /// The type code keeps an email and a phone with equal bytes apart; the version keeps values
    /// from different rule sets apart; the length prefix makes the encoding injective.
    public var hashToGroupMessage: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(RuleSetV1.messageHeaderByteCount + bytes.count)
        appendHashToGroupMessage(to: &out)
        return out
    }

    /// Appends ``hashToGroupMessage`` to `buffer`, for callers that reuse one buffer per row.
    public func appendHashToGroupMessage(to buffer: inout [UInt8]) {
        // bytes.count ≤ 1024 and rulesVersion ≤ 255 by construction (Normalizer, NormalizationRules).
        buffer.append(type.typeCode)
        buffer.append(UInt8(truncatingIfNeeded: rulesVersion))
        buffer.append(UInt8(truncatingIfNeeded: bytes.count >> 8))
        buffer.append(UInt8(truncatingIfNeeded: bytes.count))
        buffer.append(contentsOf: bytes)
    }
}

extension MatchValue: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `MatchValue(email, v1, <redacted>)`: the bytes are personal data and never printed.
    public var description: String { "MatchValue(\(type.rawValue), v\(rulesVersion), <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["type": type, "rulesVersion": rulesVersion, "bytes": "<redacted>"], displayStyle: .struct)
    }
}
