internal import CSodium

/// A non-zero scalar modulo the ristretto255 group order ℓ = 2^252 + 27742317777372353535851937790883648493:
/// a party's secret blinding key.
///
/// Contract: a `Scalar` is only ever made by the CSPRNG (``random()``), by a canonical, non-zero
/// decode (``init(canonicalBytes:)``), or by inverting another scalar; so every instance is in
/// [1, ℓ). The bytes live in ``SecureBytes`` (zeroed on release); the description is redacted; it is
/// neither `Equatable` nor `Codable` (use ``constantTimeEquals(_:)``).
/// Thread-safety: immutable; safe to share across threads for batch blinding.
/// - SeeAlso: `Protocol/SPEC.md` §"Blinding keys"; RFC 9496 §4.4 (scalar encoding).
public final class Scalar: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable
{
    /// Encoded size in bytes (little-endian).
    public static let byteCount = 32

    /// ℓ in little-endian bytes (RFC 9496 §4.4).
    static let groupOrder: [UInt8] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    ]

    let secret: SecureBytes

    private init(secret: SecureBytes) { self.secret = secret }

    /// A fresh uniformly random scalar in [1, ℓ) from libsodium's CSPRNG.
    ///
    /// `crypto_core_ristretto255_scalar_random` samples [0, ℓ); zero (probability 2^-252) is redrawn.
    public static func random() -> Scalar {
        _ = Sodium.ready
        while true {
            let s = SecureBytes(count: byteCount) { buf in
                crypto_core_ristretto255_scalar_random(buf.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            if !s.withUnsafeBytes({ Scalar.isZero($0) }) { return Scalar(secret: s) }
        }
    }

    /// Decodes a 32-byte little-endian scalar, rejecting values ≥ ℓ and zero.
    /// - Throws: ``CryptoError`` `.invalidLength`, `.nonCanonicalScalar`, `.zeroScalar`.
    public convenience init(canonicalBytes bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        try Scalar.validate(bytes)
        self.init(secret: SecureBytes(copying: bytes))
    }

    /// Decodes a scalar held in an ordinary array, then zeroes that array (also on failure), so
    /// only the secure copy remains.
    public convenience init(consumingCanonicalBytes bytes: inout [UInt8]) throws(CryptoError) {
        defer { SecureBytes.zero(&bytes) }
        let secret = try bytes.withBytes { raw throws(CryptoError) in
            try Scalar.validate(raw)
            return SecureBytes(copying: raw)
        }
        self.init(secret: secret)
    }

    static func validate(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        guard bytes.count == Scalar.byteCount else {
            throw CryptoError(.invalidLength, "a scalar is \(Scalar.byteCount) bytes, got \(bytes.count)")
        }
        guard Scalar.isCanonical(bytes) else {
            throw CryptoError(.nonCanonicalScalar, "scalar is not below the group order")
        }
        guard !Scalar.isZero(bytes) else {
            throw CryptoError(.zeroScalar, "scalar is zero")
        }
    }

    /// The multiplicative inverse modulo ℓ (used by the OPRF known-answer tests and unblinding).
    public func inverted() throws(CryptoError) -> Scalar {
        let out = try SecureBytes(count: Scalar.byteCount) { (dst: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            let rc = secret.withUnsafeBytes { src in
                crypto_core_ristretto255_scalar_invert(
                    dst.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    src.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            guard rc == 0 else { throw CryptoError(.primitiveFailure, "scalar inversion failed") }
        }
        return Scalar(secret: out)
    }

    /// Constant-time comparison of two scalars.
    public func constantTimeEquals(_ other: Scalar) -> Bool { secret.constantTimeEquals(other.secret) }

    /// Read access to the 32 secret bytes, e.g. to write a party's private state file.
    /// - Warning: the bytes are the party's blinding key. Never log them or write them outside the
    ///   private state directory; do not let them escape `body`.
    public func withSecretBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try secret.withUnsafeBytes(body)
    }

    /// Always `Scalar(redacted)`: a blinding key is never printed.
    public var description: String { "Scalar(redacted)" }
    /// Same as ``description``, so debugger output never shows the secret.
    public var debugDescription: String { description }
    /// Reflection shows `redacted` in place of the value.
    public var customMirror: Mirror { Mirror(self, children: ["value": "redacted"], displayStyle: .class) }

    /// `bytes < ℓ`, comparing from the most significant byte. Branches depend only on how the
    /// value compares to ℓ, which is leaked anyway by accepting or rejecting it.
    static func isCanonical(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 31
        while i >= 0 {
            let b = bytes[i]
            let l = groupOrder[i]
            if b < l { return true }
            if b > l { return false }
            i -= 1
        }
        return false  // equal to ℓ
    }

    static func isZero(_ bytes: UnsafeRawBufferPointer) -> Bool {
        _ = Sodium.ready
        return sodium_is_zero(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count) == 1
    }
}
