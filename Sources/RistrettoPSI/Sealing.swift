internal import CSodium

/// An X25519 key pair for receiving sealed records (the provider's audience keys and the
/// consumer's delivered attributes; the coordinator's outer layer).
///
/// Contract: the 32-byte secret lives in ``SecureBytes``; the description is redacted.
/// - SeeAlso: `Protocol/SPEC.md` §"Sealing records".
public final class SealingKey: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// Secret size in bytes.
    public static let byteCount = 32
    let secret: SecureBytes
    /// The public half, which goes into the agreement.
    public let publicKey: SealingPublicKey

    /// A fresh key pair from libsodium's CSPRNG.
    public static func generate() -> SealingKey {
        _ = Sodium.ready
        var pk = [UInt8](repeating: 0, count: SealingPublicKey.byteCount)
        let sk = SecureBytes(count: byteCount) { buf in
            _ = crypto_box_keypair(&pk, buf.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return SealingKey(secret: sk, publicKey: SealingPublicKey(trusted: pk))
    }

    /// Rebuilds a key pair from its 32 secret bytes (a private key file).
    public convenience init(secretBytes: UnsafeRawBufferPointer) throws(CryptoError) {
        guard secretBytes.count == SealingKey.byteCount else {
            throw CryptoError(.invalidKey, "an X25519 secret key is 32 bytes, got \(secretBytes.count)")
        }
        _ = Sodium.ready
        var pk = [UInt8](repeating: 0, count: SealingPublicKey.byteCount)
        guard crypto_scalarmult_curve25519_base(&pk, secretBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
        else {
            throw CryptoError(.invalidKey, "X25519 public key derivation failed")
        }
        self.init(secret: SecureBytes(copying: secretBytes), publicKey: SealingPublicKey(trusted: pk))
    }

    private init(secret: SecureBytes, publicKey: SealingPublicKey) {
        self.secret = secret
        self.publicKey = publicKey
    }

    /// Read access to the 32 secret bytes, to write a private key file.
    /// - Warning: keep them out of logs and shared directories.
    public func withSecretBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try secret.withUnsafeBytes(body)
    }

    /// Names the key type and the public key only; the secret is shown as `redacted`.
    public var description: String { "SealingKey(X25519, public \(publicKey.hex), secret redacted)" }
    /// Same as ``description``, so debugger output never shows the secret.
    public var debugDescription: String { description }
    /// Reflection shows the public key and `redacted` in place of the secret.
    public var customMirror: Mirror {
        Mirror(self, children: ["publicKey": publicKey.hex, "secret": "redacted"], displayStyle: .class)
    }
}

/// An X25519 public key.
public struct SealingPublicKey: Hashable, Sendable, CustomStringConvertible {
    /// Size in bytes.
    public static let byteCount = 32
    /// The 32-byte encoding.
    public let bytes: [UInt8]

    init(trusted bytes: [UInt8]) { self.bytes = bytes }

    /// Decodes a public key; the all-zero key (and any key yielding an all-zero shared secret) is
    /// refused when used.
    public init(bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == SealingPublicKey.byteCount else {
            throw CryptoError(.invalidKey, "an X25519 public key is 32 bytes, got \(bytes.count)")
        }
        guard bytes.contains(where: { $0 != 0 }) else {
            throw CryptoError(.invalidKey, "the all-zero X25519 key is not accepted")
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
    public var description: String { "SealingPublicKey(\(hex))" }
}

/// Seals many records to one recipient with **one** key agreement per file and an AEAD per
/// record: X25519(ephemeral, recipient) → BLAKE2b-256 key → XChaCha20-Poly1305 with a random
/// 24-byte nonce per record.
///
/// Contract: `context` (collaboration, run and purpose) is bound as associated data into every
/// record, so a record cannot be moved to another file, run or purpose. A sealed record is
/// `nonce(24) ‖ ciphertext ‖ tag(16)`, i.e. ``overhead`` bytes longer than its plaintext.
/// Why not a sealed box per record: `crypto_box_seal` costs an X25519 key generation and a scalar
/// multiplication per record, as much as the blinding itself.
/// - SeeAlso: `Protocol/SPEC.md` §"Sealing records".
public final class RecordSealer: @unchecked Sendable, CustomStringConvertible {
    /// Bytes added to each record (nonce + tag).
    public static let overhead = 24 + 16
    /// The ephemeral public key the recipient needs to open the records; travels with the file.
    public let ephemeralPublicKey: SealingPublicKey
    private let key: SecureBytes
    private let context: [UInt8]

    /// Agrees a file key with `recipient` using a fresh ephemeral X25519 key (discarded at once).
    /// - Throws: `.invalidKey` when the agreement yields an all-zero secret (a small-order key).
    public init(recipient: SealingPublicKey, context: [UInt8]) throws(CryptoError) {
        let ephemeral = SealingKey.generate()
        ephemeralPublicKey = ephemeral.publicKey
        key = try RecordKeys.derive(
            secret: ephemeral.secret, peer: recipient,
            ephemeral: ephemeral.publicKey, recipient: recipient, context: context)
        self.context = context
    }

    /// Seals one record (thread-safe: nonces are random per call).
    public func seal(_ plaintext: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + RecordSealer.overhead)
        out.withUnsafeMutableBytes { o in
            let base = o.baseAddress!.assumingMemoryBound(to: UInt8.self)
            randombytes_buf(base, 24)
            var clen: UInt64 = 0
            key.withUnsafeBytes { k in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    base + 24, &clen, plaintext, UInt64(plaintext.count), context, UInt64(context.count), nil,
                    base, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return out
    }

    /// Seals `plaintext` into `out` (exactly ``overhead`` bytes longer) with a nonce drawn from
    /// `random`, without allocating: the per-record path of the prepares.
    ///
    /// Thread-safety: the sealer is shared, `random` is the calling thread's own.
    /// - SeeAlso: `Protocol/SPEC.md` §"Sealing records", §3.3 "Randomness".
    public func seal(
        _ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, random: BufferedRandom
    ) {
        precondition(
            out.count == plaintext.count + RecordSealer.overhead, "a sealed record is the plaintext plus nonce and tag")
        let base = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        random.fill(UnsafeMutableRawBufferPointer(start: base, count: 24))
        var clen: UInt64 = 0
        key.withUnsafeBytes { k in
            _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                base + 24, &clen, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                context, UInt64(context.count), nil, base, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Shows the ephemeral public key only; the file key is shown as `redacted`.
    public var description: String { "RecordSealer(ephemeral \(ephemeralPublicKey.hex), key redacted)" }
}

/// Opens records sealed by a ``RecordSealer`` for this recipient.
public final class RecordOpener: @unchecked Sendable, CustomStringConvertible {
    private let key: SecureBytes
    private let context: [UInt8]

    /// Re-derives the file key from the recipient's secret and the file's ephemeral public key.
    public init(recipient: SealingKey, ephemeralPublicKey: SealingPublicKey, context: [UInt8]) throws(CryptoError) {
        key = try RecordKeys.derive(
            secret: recipient.secret, peer: ephemeralPublicKey,
            ephemeral: ephemeralPublicKey, recipient: recipient.publicKey, context: context)
        self.context = context
    }

    /// Opens one record.
    /// - Throws: `.decryptionFailed` for a record that was altered, moved or sealed for someone else.
    public func open(_ sealed: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard sealed.count >= RecordSealer.overhead else {
            throw CryptoError(.decryptionFailed, "sealed record shorter than its nonce and tag")
        }
        var out = [UInt8](repeating: 0, count: sealed.count - RecordSealer.overhead)
        var mlen: UInt64 = 0
        let rc = sealed.withUnsafeBufferPointer { s in
            key.withUnsafeBytes { k in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    &out, &mlen, nil, s.baseAddress! + 24, UInt64(sealed.count - 24), context, UInt64(context.count),
                    s.baseAddress!, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw CryptoError(.decryptionFailed, "sealed record does not authenticate") }
        return out
    }

    /// Always `RecordOpener(key redacted)`: nothing about the file key is printed.
    public var description: String { "RecordOpener(key redacted)" }
}

enum RecordKeys {
    static let label = Array("CLEANROOM-V01-SEAL".utf8)

    /// key = BLAKE2b-256(key: X25519(secret, peer), msg: label ‖ ephemeral_pk ‖ recipient_pk ‖ context).
    static func derive(
        secret: SecureBytes, peer: SealingPublicKey, ephemeral: SealingPublicKey,
        recipient: SealingPublicKey, context: [UInt8]
    ) throws(CryptoError) -> SecureBytes {
        _ = Sodium.ready
        let shared = try SecureBytes(count: 32) { (s: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            let rc = secret.withUnsafeBytes { sk in
                crypto_scalarmult_curve25519(
                    s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    sk.baseAddress!.assumingMemoryBound(to: UInt8.self), peer.bytes)
            }
            guard rc == 0 else {
                throw CryptoError(.invalidKey, "X25519 agreement produced an all-zero secret (small-order key)")
            }
        }
        let info = label + ephemeral.bytes + recipient.bytes + context
        return SecureBytes(count: 32) { out in
            shared.withUnsafeBytes { k in
                _ = crypto_generichash(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), 32, info, UInt64(info.count),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self), 32)
            }
        }
    }
}

extension RecordOpener {
    /// Opens one record from `sealed` into the start of `out` without allocating (the provider's
    /// per-record path when opening a delivery); returns the plaintext's length,
    /// `sealed.count - RecordSealer.overhead`. Same checks as ``open(_:)``.
    ///
    /// Contract: `out` holds at least that many bytes and does not overlap `sealed`; thread-safe
    /// (the opener is only read). On a throw `out`'s bytes are unspecified.
    /// - Throws: `.decryptionFailed` for a record that was altered, moved or sealed for someone else.
    public func open(_ sealed: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(CryptoError)
        -> Int
    {
        guard sealed.count >= RecordSealer.overhead, let s = sealed.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else {
            throw CryptoError(.decryptionFailed, "sealed record shorter than its nonce and tag")
        }
        let n = sealed.count - RecordSealer.overhead
        precondition(out.count >= n, "the output holds the whole plaintext")
        var mlen: UInt64 = 0
        var empty: UInt8 = 0  // libsodium is handed a non-null output even for an empty plaintext
        let rc = withUnsafeMutablePointer(to: &empty) { e in
            key.withUnsafeBytes { k in
                crypto_aead_xchacha20poly1305_ietf_decrypt(
                    n == 0 ? e : out.baseAddress!.assumingMemoryBound(to: UInt8.self), &mlen, nil, s + 24,
                    UInt64(sealed.count - 24),
                    context, UInt64(context.count), s, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw CryptoError(.decryptionFailed, "sealed record does not authenticate") }
        return n
    }
}
