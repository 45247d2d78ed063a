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
        Self.hashToGroupMessage(type: type, rulesVersion: rulesVersion, bytes: bytes)
    }

    /// Appends ``hashToGroupMessage`` to `buffer`, for callers that reuse one buffer per row.
    public func appendHashToGroupMessage(to buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: RuleSetV1.messageHeaderByteCount + bytes.count))
        buffer.withUnsafeMutableBufferPointer { out in
            bytes.withUnsafeBufferPointer { b in
                _ = Self.writeHashToGroupMessage(
                    type: type, rulesVersion: rulesVersion, bytes: b,
                    to: UnsafeMutableBufferPointer(rebasing: out[start...]))
            }
        }
    }

    /// The hash-to-group message of `bytes` (match bytes of `type` under rule set `rulesVersion`),
    /// for ``Normalizer``'s fast path, which has the bytes but no ``MatchValue``.
    static func hashToGroupMessage(type: IdentifierType, rulesVersion: Int, bytes: [UInt8]) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: RuleSetV1.messageHeaderByteCount + bytes.count) { out, initialized in
            initialized = bytes.withUnsafeBufferPointer { b in
                writeHashToGroupMessage(type: type, rulesVersion: rulesVersion, bytes: b, to: out)
            }
        }
    }

    /// Writes the message to the start of `out` and returns its length: the one place its layout
    /// lives, so every path that builds it (value, append, the prepares' fast path) agrees.
    /// `out` has room for the 4-byte header and `bytes`; `bytes.count` ≤ 1024 and `rulesVersion`
    /// ≤ 255 by construction (Normalizer, NormalizationRules), so the truncations never cut.
    /// `out` may be uninitialized: every byte of the message is initialized here.
    private static func writeHashToGroupMessage(
        type: IdentifierType, rulesVersion: Int, bytes: UnsafeBufferPointer<UInt8>,
        to out: UnsafeMutableBufferPointer<UInt8>
    ) -> Int {
        let header = RuleSetV1.messageHeaderByteCount
        precondition(out.count >= header + bytes.count, "room for the message")
        // Never true by construction; checked because a cut here would make two messages equal.
        precondition(
            rulesVersion >= 0 && rulesVersion <= 0xFF && bytes.count <= 0xFFFF,
            "the message header encodes the version and length exactly")
        out[0] = type.typeCode
        out[1] = UInt8(truncatingIfNeeded: rulesVersion)
        out[2] = UInt8(truncatingIfNeeded: bytes.count >> 8)
        out[3] = UInt8(truncatingIfNeeded: bytes.count)
        if let src = bytes.baseAddress, !bytes.isEmpty {
            (out.baseAddress! + header).initialize(from: src, count: bytes.count)
        }
        return header + bytes.count
    }
}

extension MatchValue: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// `MatchValue(email, v1, <redacted>)`: the bytes are personal data and never printed.
    public var description: String { "MatchValue(\(type.rawValue), v\(rulesVersion), <redacted>)" }
    /// Same as ``description``, so debugger output never shows the bytes.
    public var debugDescription: String { description }
    /// Reflection shows the type and rule-set version, and `<redacted>` in place of the bytes.
    public var customMirror: Mirror {
        Mirror(
            self, children: ["type": type, "rulesVersion": rulesVersion, "bytes": "<redacted>"], displayStyle: .struct)
    }
}
