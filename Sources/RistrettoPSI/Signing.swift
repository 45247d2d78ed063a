internal import CSodium

/// An Ed25519 signing key (libsodium `crypto_sign_ed25519`), used by the parties to sign
/// agreements and messages and by the coordinator to sign audit entries.
///
/// Contract: the 32-byte seed and the expanded 64-byte secret key live in ``SecureBytes``; the
/// description is redacted; it is neither `Equatable` nor `Codable`.
/// Thread-safety: immutable; signing from several threads is safe.
/// - SeeAlso: RFC 8032 §5.1; `Protocol/SPEC.md` §"Signatures".
public final class SigningKey: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Seed size in bytes.
    public static let seedByteCount = 32
    /// Signature size in bytes.
    public static let signatureByteCount = 64

    private let secretKey: SecureBytes  // 64 bytes: seed || public key
    /// The matching public key.
    public let verifyingKey: VerifyingKey

    /// A fresh key from libsodium's CSPRNG.
    public static func generate() -> SigningKey {
        _ = Sodium.ready
        var pk = [UInt8](repeating: 0, count: VerifyingKey.byteCount)
        let sk = SecureBytes(count: 64) { buf in
            _ = crypto_sign_ed25519_keypair(&pk, buf.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return SigningKey(secretKey: sk, publicKey: pk)
    }

    /// Re-derives a key from its 32-byte seed (the form kept in a party's key file).
    /// - Throws: `.invalidKey` unless the seed is 32 bytes.
    public convenience init(seed: UnsafeRawBufferPointer) throws(CryptoError) {
        guard seed.count == SigningKey.seedByteCount else {
            throw CryptoError(.invalidKey, "an Ed25519 seed is 32 bytes, got \(seed.count)")
        }
        _ = Sodium.ready
        var pk = [UInt8](repeating: 0, count: VerifyingKey.byteCount)
        let sk = try SecureBytes(count: 64) { (buf: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            guard
                crypto_sign_ed25519_seed_keypair(
                    &pk, buf.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    seed.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            else {
                throw CryptoError(.primitiveFailure, "Ed25519 key derivation failed")
            }
        }
        self.init(secretKey: sk, publicKey: pk)
    }

    private init(secretKey: SecureBytes, publicKey: [UInt8]) {
        self.secretKey = secretKey
        self.verifyingKey = VerifyingKey(trusted: publicKey)
    }

    /// Read access to the 32-byte seed, to write a private key file.
    /// - Warning: the seed is the whole private key; keep it out of logs and shared directories.
    public func withSeed<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secretKey.withUnsafeBytes {
            try body(UnsafeRawBufferPointer(rebasing: $0.prefix(SigningKey.seedByteCount)))
        }
    }

    /// A detached Ed25519 signature over `message`.
    public func signature(for message: UnsafeRawBufferPointer) -> [UInt8] {
        var sig = [UInt8](repeating: 0, count: SigningKey.signatureByteCount)
        secretKey.withUnsafeBytes { sk in
            // crypto_sign_ed25519_detached always returns 0 for a valid secret key.
            let rc = crypto_sign_ed25519_detached(
                &sig, nil, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                UInt64(message.count), sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            precondition(rc == 0, "Ed25519 signing failed")
        }
        return sig
    }

    /// A detached Ed25519 signature over a byte sequence.
    public func signature<C: Collection>(for message: C) -> [UInt8] where C.Element == UInt8 {
        Array(message).withUnsafeBytes { signature(for: $0) }
    }

    /// Names the key type and the public key only; the secret is shown as `redacted`.
    public var description: String { "SigningKey(Ed25519, public \(verifyingKey.hex), secret redacted)" }
    /// Same as ``description``, so debugger output never shows the secret.
    public var debugDescription: String { description }
    /// Reflection shows the public key and `redacted` in place of the secret.
    public var customMirror: Mirror {
        Mirror(self, children: ["publicKey": verifyingKey.hex, "secret": "redacted"], displayStyle: .class)
    }
}

/// An Ed25519 public key.
///
/// Contract: 32 bytes that libsodium accepts as a point; small-order keys are rejected so a
/// signature cannot verify under a degenerate key. Public, so `Equatable`/`Hashable`.
public struct VerifyingKey: Hashable, Sendable, CustomStringConvertible {
    /// Size in bytes.
    public static let byteCount = 32
    /// The 32-byte encoding.
    public let bytes: [UInt8]

    init(trusted bytes: [UInt8]) { self.bytes = bytes }

    /// Decodes a public key, rejecting wrong lengths, invalid points and small-order points.
    public init(bytes: [UInt8]) throws(CryptoError) {
        _ = Sodium.ready
        guard bytes.count == VerifyingKey.byteCount else {
            throw CryptoError(.invalidKey, "an Ed25519 public key is 32 bytes, got \(bytes.count)")
        }
        guard crypto_core_ed25519_is_valid_point(bytes) == 1 else {
            throw CryptoError(.invalidKey, "not a valid Ed25519 public key (invalid or small-order point)")
        }
        self.bytes = bytes
    }

    /// Decodes a public key from hex.
    public init(hex: String) throws(CryptoError) {
        guard let b = Hex.decode(hex) else { throw CryptoError(.invalidKey, "public key is not hex") }
        try self.init(bytes: b)
    }

    /// Lowercase hex of the key.
    public var hex: String { Hex.encode(bytes) }
    /// The key in lowercase hex; a public key is safe to print.
    public var description: String { "VerifyingKey(\(hex))" }

    /// Whether `signature` is a valid Ed25519 signature by this key over `message`.
    public func isValidSignature(_ signature: [UInt8], for message: UnsafeRawBufferPointer) -> Bool {
        _ = Sodium.ready
        guard signature.count == SigningKey.signatureByteCount else { return false }
        return crypto_sign_ed25519_verify_detached(
            signature, message.baseAddress?.assumingMemoryBound(to: UInt8.self),
            UInt64(message.count), bytes) == 0
    }

    /// Whether `signature` is valid over a byte sequence.
    public func isValidSignature<C: Collection>(_ signature: [UInt8], for message: C) -> Bool where C.Element == UInt8 {
        Array(message).withUnsafeBytes { isValidSignature(signature, for: $0) }
    }

    /// Throws ``CryptoError/Code/invalidSignature`` unless the signature verifies.
    public func verify<C: Collection>(_ signature: [UInt8], for message: C) throws(CryptoError)
    where C.Element == UInt8 {
        guard isValidSignature(signature, for: message) else {
            throw CryptoError(.invalidSignature, "Ed25519 signature does not verify")
        }
    }
}

/// Cryptographically secure random bytes from libsodium's CSPRNG (`randombytes_buf`).
public enum SecureRandom {
    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { randombytes_buf(&out, count) }
        return out
    }

    /// A uniform integer in `0..<upperBound` without modulo bias (`randombytes_uniform`).
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        _ = Sodium.ready
        return randombytes_uniform(upperBound)
    }

    /// A uniform index in `0..<upperBound` for any `Int` bound (used by shuffles beyond 2^32 rows).
    public static func index(below upperBound: Int) -> Int {
        precondition(upperBound > 0)
        if upperBound <= Int(UInt32.max) { return Int(uniform(UInt32(upperBound))) }
        // Rejection sampling on 64-bit values.
        let bound = UInt64(upperBound)
        let limit = UInt64.max - UInt64.max % bound
        while true {
            var r: UInt64 = 0
            withUnsafeMutableBytes(of: &r) { randombytes_buf($0.baseAddress!, 8) }
            if r < limit { return Int(r % bound) }
        }
    }
}
