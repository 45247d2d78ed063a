internal import COpenSSL
internal import CSodium

/// SHA-256 (FIPS 180-4) through OpenSSL's libcrypto (`SHA256_Init` / `Update` / `Final`).
///
/// libcrypto rather than libsodium because every message body, delivery object and manifest is
/// hashed, several of them more than once: libsodium 1.0.18's `crypto_hash_sha256` is portable C
/// (≈ 350 MB/s on the x86_64 reference machine), libcrypto uses the CPU's SHA extensions where
/// present (≈ 1.8 GB/s there) and is as fast as libsodium on the 32-byte inputs of normalization.
/// The one-context functions rather than EVP: same assembly, but no provider is loaded (EVP's
/// first fetch costs ≈ 2 MiB resident in every process), no allocation, and a context is a plain
/// struct, so a hasher is a value type whose copy forks the state.
/// Same function, same digests: the known-answer and cross-check tests pin both.
/// - SeeAlso: `Protocol/SPEC.md` §3 "Group and primitives".
public enum SHA256 {
    /// Digest size in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var h = Hasher()
        h.update(bytes)
        return h.finalize()
    }

    /// The SHA-256 digest of a byte sequence.
    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        if let r = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(bytes).withUnsafeBytes { hash($0) }
    }

    /// An incremental SHA-256, for streaming a file's body through the hash once.
    ///
    /// A value type: a copy taken mid-stream (a struct holding a hasher, copied) forks the state
    /// instead of sharing it. ``finalize()`` returns the digest and starts the hasher over at the
    /// empty message.
    public struct Hasher: Sendable {
        private var context = SHA256_CTX()

        /// A hasher at the empty message.
        public init() { Self.check(SHA256_Init(&context), "SHA256_Init") }

        /// Absorbs `bytes`; an empty buffer leaves the state unchanged.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            Self.check(SHA256_Update(&context, base, bytes.count), "SHA256_Update")
        }

        /// Absorbs a byte sequence, copying it only when its storage is not contiguous.
        public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
            if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
                Array(bytes).withUnsafeBytes { update($0) }
            }
        }

        /// The 32-byte digest of everything absorbed; the hasher then starts over at the empty message.
        public mutating func finalize() -> [UInt8] {
            let digest = [UInt8](unsafeUninitializedCapacity: SHA256.byteCount) { out, initialized in
                Self.check(SHA256_Final(out.baseAddress, &context), "SHA256_Final")
                initialized = SHA256.byteCount
            }
            Self.check(SHA256_Init(&context), "SHA256_Init")
            return digest
        }

        /// These calls cannot fail for an input (they return 1 unconditionally in OpenSSL 3); if
        /// one ever did, there is no safe digest to return instead, so the process stops rather
        /// than let a wrong hash through.
        private static func check(_ result: Int32, _ call: StaticString) {
            precondition(result == 1, "libcrypto \(call) failed for SHA-256")
        }
    }

    /// SHA-256 through libsodium's `crypto_hash_sha256`, the implementation used before libcrypto:
    /// kept only as the independent reference the cross-check tests compare against.
    static func libsodiumHash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_hash_sha256(
                o.baseAddress!, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        return out
    }
}

/// SHA-512 (FIPS 180-4) through libsodium's `crypto_hash_sha512`.
public enum SHA512 {
    /// Digest size in bytes.
    public static let byteCount = 64
    /// Input block size in bytes (`s_in_bytes` in RFC 9380 §5.3.1).
    public static let blockByteCount = 128

    /// The SHA-512 digest of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var h = Hasher()
        h.update(bytes)
        return h.finalize()
    }

    /// The SHA-512 digest of a byte sequence.
    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var h = Hasher()
        h.update(bytes)
        return h.finalize()
    }

    /// An incremental SHA-512. It is a value type: copying it forks the state, which the
    /// hash-to-group code uses to absorb the constant `Z_pad` block once per tag, not once per element.
    public struct Hasher: Sendable {
        fileprivate var state = crypto_hash_sha512_state()
        /// A hasher at the empty message.
        public init() {
            _ = Sodium.ready
            _ = crypto_hash_sha512_init(&state)
        }
        /// Absorbs `bytes`; an empty buffer leaves the state unchanged.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            _ = crypto_hash_sha512_update(
                &state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        /// Absorbs a byte sequence, copying it only when its storage is not contiguous.
        public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
            if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
                Array(bytes).withUnsafeBytes { update($0) }
            }
        }
        /// The 64-byte digest of everything absorbed; the hasher then starts over at the empty
        /// message, as ``SHA256/Hasher/finalize()`` does (libsodium's final step wipes the state,
        /// which a later update would otherwise have continued from).
        public mutating func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: SHA512.byteCount)
            finalize(into: &out)
            return out
        }
        /// Writes the 64-byte digest into `out` without allocating, then starts over like
        /// ``finalize()``.
        mutating func finalize(into out: UnsafeMutablePointer<UInt8>) {
            _ = crypto_hash_sha512_final(&state, out)
            _ = crypto_hash_sha512_init(&state)
        }
    }
}

/// HMAC-SHA-256 (RFC 2104) through libsodium's `crypto_auth_hmacsha256_*`, for AWS SigV4 request
/// signing. The multi-part API is used because SigV4 keys are not 32 bytes long
/// (`"AWS4" ‖ secret`, then 32-byte derived keys).
/// - SeeAlso: `Protocol/SPEC.md` §12 "Delivery to Amazon S3".
public enum HMACSHA256 {
    /// Tag size in bytes.
    public static let byteCount = 32

    /// The HMAC-SHA-256 tag of `message` under `key`.
    public static func authenticate(_ message: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> [UInt8] {
        _ = Sodium.ready
        var state = crypto_auth_hmacsha256_state()
        var out = [UInt8](repeating: 0, count: byteCount)
        // A zero-length key is legal HMAC; libsodium wants a non-null pointer all the same.
        var empty: UInt8 = 0
        if let k = key.baseAddress, key.count > 0 {
            _ = crypto_auth_hmacsha256_init(&state, k.assumingMemoryBound(to: UInt8.self), key.count)
        } else {
            _ = crypto_auth_hmacsha256_init(&state, &empty, 0)
        }
        if message.count > 0 {
            _ = crypto_auth_hmacsha256_update(
                &state, message.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(message.count))
        }
        _ = crypto_auth_hmacsha256_final(&state, &out)
        // The state holds the key's inner and outer pads.
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return out
    }

    /// The HMAC-SHA-256 tag of `message` under `key` (byte sequences).
    public static func authenticate<M: Collection, K: Collection>(_ message: M, key: K) -> [UInt8]
    where M.Element == UInt8, K.Element == UInt8 {
        Array(message).withUnsafeBytes { m in Array(key).withUnsafeBytes { k in authenticate(m, key: k) } }
    }
}
