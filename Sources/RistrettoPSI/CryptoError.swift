/// The one error type of the crypto module.
///
/// Equality is by ``code`` only, so tests and callers match on stable codes while the reason can
/// carry context. A reason never contains an identifier, a scalar or key bytes.
/// - SeeAlso: `Protocol/SPEC.md` §"Error codes" (the `crypto.*` rows).
public struct CryptoError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the ones listed in `Protocol/SPEC.md`.
    public enum Code: String, Sendable, CaseIterable {
        /// An encoding that is not exactly 32 bytes (elements, scalars) or the expected size.
        case invalidLength = "crypto.invalid_length"
        /// A ristretto255 encoding that RFC 9496 §4.3.1 rejects (non-canonical, negative, not on the group).
        case invalidElementEncoding = "crypto.invalid_element_encoding"
        /// The identity element, which the protocol never accepts (RFC 9497 DeserializeElement).
        case identityElement = "crypto.identity_element"
        /// A scalar encoding that is ≥ the group order ℓ.
        case nonCanonicalScalar = "crypto.non_canonical_scalar"
        /// The zero scalar, which would blind every identifier to the identity.
        case zeroScalar = "crypto.zero_scalar"
        /// A domain-separation tag or requested output length outside RFC 9380 §5.3.1's bounds.
        case invalidHashToGroupParameters = "crypto.invalid_hash_to_group_parameters"
        /// A libsodium call reported failure where the inputs were valid.
        case primitiveFailure = "crypto.primitive_failure"
        /// A key file or key encoding of the wrong shape.
        case invalidKey = "crypto.invalid_key"
        /// A signature that does not verify.
        case invalidSignature = "crypto.invalid_signature"
        /// An authenticated ciphertext that does not open.
        case decryptionFailed = "crypto.decryption_failed"
    }

    /// The stable code.
    public let code: Code
    /// A human-readable reason naming the rule that failed (never secret or identifying bytes).
    public let reason: String
    /// Index of the offending element within a batch, when the error comes from a batch operation.
    public let index: Int?

    /// Creates an error with a stable `code`, a `reason` that names the rule (never secret or
    /// identifying bytes) and, for batch operations, the offending element's `index`.
    public init(_ code: Code, _ reason: String, index: Int? = nil) {
        self.code = code
        self.reason = reason
        self.index = index
    }

    /// The code's raw value and the reason, followed by the element index when there is one.
    public var description: String {
        if let index { return "\(code.rawValue): \(reason) (element \(index))" }
        return "\(code.rawValue): \(reason)"
    }

    /// Compares codes only, so callers can match on a code whatever the reason or index.
    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }
    /// Hashes the code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The same error, located at `index` of a batch.
    func at(index: Int) -> CryptoError { CryptoError(code, reason, index: index) }
}
