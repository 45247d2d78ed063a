internal import CSodium

/// A ristretto255 group element other than the identity, held as its 32-byte canonical encoding.
///
/// Contract: an element can only come from the strict decoder (``init(validating:)``), from
/// hash-to-group (``HashToGroup``, ``CompatibilityHash``) or from a group operation on valid
/// elements; so every instance is a canonical encoding of a non-identity element. Elements are
/// public values (blinded identifiers), so ordinary equality and hashing are fine.
/// - SeeAlso: RFC 9496 §4.3 (encode/decode); RFC 9497 §2.1 DeserializeElement;
///   `Protocol/SPEC.md` §"Group and primitives".
public struct RistrettoElement: Hashable, Sendable, CustomStringConvertible {
    /// Encoded size in bytes.
    public static let byteCount = 32

    /// Four little-endian words; a homogeneous tuple is laid out contiguously, so it doubles as
    /// the 32-byte encoding for libsodium without a heap allocation.
    var words: (UInt64, UInt64, UInt64, UInt64)

    /// Wraps bytes that are already known to be a valid, non-identity canonical encoding.
    init(trustedBytes bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == Self.byteCount)
        words = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
    }

    /// Strictly decodes a 32-byte encoding (RFC 9496 §4.3.1), rejecting the identity.
    ///
    /// The canonical-encoding rules (s < p, s even, top bit clear) are checked here, in Swift,
    /// before libsodium is asked: libsodium 1.0.18's `ristretto255_frombytes` ignores the top bit
    /// and so accepts encodings RFC 9496 requires rejecting. libsodium then performs the
    /// square-root, sign-of-t and y ≠ 0 checks.
    /// - Throws: ``CryptoError`` `.invalidLength`, `.invalidElementEncoding`, `.identityElement`.
    public init(validating bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        try Self.validate(bytes)
        self.init(trustedBytes: bytes)
    }

    /// Strictly decodes an element from a byte array; see ``init(validating:)-(UnsafeRawBufferPointer)``.
    public init(validating bytes: [UInt8]) throws(CryptoError) {
        self = try bytes.withBytes { raw throws(CryptoError) in try RistrettoElement(validating: raw) }
    }

    /// Strictly decodes an element from lowercase or uppercase hex.
    public init(hex: String) throws(CryptoError) {
        guard let bytes = Hex.decode(hex) else {
            throw CryptoError(.invalidLength, "element hex must be \(Self.byteCount * 2) hex digits")
        }
        try self.init(validating: bytes)
    }

    /// The checks of RFC 9496 §4.3.1 plus the identity rejection, without building an element.
    static func validate(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        guard bytes.count == byteCount else {
            throw CryptoError(.invalidLength, "an element encoding is \(byteCount) bytes, got \(bytes.count)")
        }
        guard isCanonicalFieldEncoding(bytes) else {
            throw CryptoError(
                .invalidElementEncoding, "not a canonical, non-negative field element encoding (RFC 9496 §4.3.1 step 1)"
            )
        }
        _ = Sodium.ready
        let p = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        if sodium_is_zero(p, byteCount) == 1 {
            throw CryptoError(.identityElement, "the identity element is not accepted")
        }
        guard crypto_core_ristretto255_is_valid_point(p) == 1 else {
            throw CryptoError(
                .invalidElementEncoding, "encoding does not decode to a group element (RFC 9496 §4.3.1 steps 2-3)")
        }
    }

    /// RFC 9496 §4.3.1 step 1: the little-endian integer s must satisfy s < p = 2^255 − 19 and be
    /// even (IS_NEGATIVE(s) = s mod 2 must be 0). Branch-free over the bytes: decoding runs on
    /// attacker-supplied public data, but a uniform cost keeps the coordinator's timing flat.
    static func isCanonicalFieldEncoding(_ s: UnsafeRawBufferPointer) -> Bool {
        // s ≥ p exactly when s[31] > 0x7f, or s[31] == 0x7f, s[1...30] all 0xff and s[0] ≥ 0xed.
        var allFF: UInt8 = 0xff
        for i in 1...30 { allFF &= s[i] }
        let topIs7F = s[31] == 0x7f
        let geP = s[31] & 0x80 != 0 || (topIs7F && allFF == 0xff && s[0] >= 0xed)
        let negative = s[0] & 1 == 1
        return !geP && !negative
    }

    /// The canonical 32-byte encoding.
    public var bytes: [UInt8] { Swift.withUnsafeBytes(of: words) { Array($0) } }

    /// Lowercase hex of the canonical encoding.
    public var hex: String { Swift.withUnsafeBytes(of: words) { Hex.encode($0) } }

    /// Calls `body` with the 32-byte canonical encoding, without copying.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: words, body)
    }

    /// The canonical encoding in lowercase hex. A blinded element (what the round messages carry)
    /// is public; an unblinded hash-to-group output `H(x)` is not: anyone who knows the
    /// collaboration's tag can test it against guessed identifiers, so it must never be logged.
    public var description: String { "RistrettoElement(\(hex))" }

    /// Byte equality of the canonical encodings, which is group-element equality since every
    /// instance is canonical. Not constant-time: the protocol compares only blinded elements,
    /// which are public.
    public static func == (a: RistrettoElement, b: RistrettoElement) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    /// Hashes the canonical encoding, consistent with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }

    /// The conventional generator B of RFC 9496 §4.4 (`e2f2ae0a…0d76`).
    public static let generator: RistrettoElement = {
        let b = Hex.decode("e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76")!
        return try! RistrettoElement(validating: b)
    }()

    /// `self × scalar` (blinding or re-blinding).
    ///
    /// Since the group has prime order and `scalar` is in [1, ℓ), the result is never the
    /// identity; libsodium's −1 return (identity result) is still checked and reported.
    /// - SeeAlso: `Protocol/SPEC.md` §"Blinding"; libsodium `crypto_scalarmult_ristretto255`.
    public func multiplied(by scalar: Scalar) throws(CryptoError) -> RistrettoElement {
        var out = RistrettoElement(zeroedForOutput: ())
        let rc = Self.scalarMultiply(
            into: &out.words, element: self, scalar: scalar)
        guard rc == 0 else { throw CryptoError(.primitiveFailure, "scalar multiplication produced the identity") }
        return out
    }

    /// Group addition, used by the RFC 9496 generator-multiple vectors. Internal: the protocol
    /// never adds elements.
    func adding(_ other: RistrettoElement) throws(CryptoError) -> RistrettoElement {
        var out = RistrettoElement(zeroedForOutput: ())
        let rc = Swift.withUnsafeMutableBytes(of: &out.words) { o in
            withUnsafeBytes { a in
                other.withUnsafeBytes { b in
                    crypto_core_ristretto255_add(
                        o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        a.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        b.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        guard rc == 0 else { throw CryptoError(.primitiveFailure, "ristretto255 addition failed") }
        if out.words == (0, 0, 0, 0) { throw CryptoError(.identityElement, "the sum is the identity element") }
        return out
    }

    private init(zeroedForOutput: Void) { words = (0, 0, 0, 0) }

    /// Raw `crypto_scalarmult_ristretto255`, writing the 32-byte result into `out`.
    static func scalarMultiply(into out: UnsafeMutablePointer<UInt8>, element: UnsafePointer<UInt8>, scalar: Scalar)
        -> Int32
    {
        scalar.secret.withUnsafeBytes { n in
            crypto_scalarmult_ristretto255(out, n.baseAddress!.assumingMemoryBound(to: UInt8.self), element)
        }
    }

    private static func scalarMultiply(
        into out: inout (UInt64, UInt64, UInt64, UInt64), element: RistrettoElement, scalar: Scalar
    ) -> Int32 {
        Swift.withUnsafeMutableBytes(of: &out) { o in
            element.withUnsafeBytes { e in
                scalarMultiply(
                    into: o.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    element: e.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    scalar: scalar)
            }
        }
    }
}

/// Test-only window on libsodium's own decoder, so the tests can show where it is laxer than RFC 9496.
enum LibsodiumDecoder {
    /// `crypto_core_ristretto255_is_valid_point` alone, without this module's strict checks.
    static func accepts(_ bytes: [UInt8]) -> Bool {
        _ = Sodium.ready
        precondition(bytes.count == RistrettoElement.byteCount)
        return crypto_core_ristretto255_is_valid_point(bytes) == 1
    }
}
