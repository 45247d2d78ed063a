internal import CSodium

/// SHA-256 (FIPS 180-4) through libsodium's `crypto_hash_sha256`.
public enum SHA256 {
    /// Digest size in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `bytes`.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBufferPointer { o in
            _ = crypto_hash_sha256(o.baseAddress!, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        return out
    }

    /// The SHA-256 digest of a byte sequence.
    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        if let r = bytes.withContiguousStorageIfAvailable({ hash(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(bytes).withUnsafeBytes { hash($0) }
    }

    /// An incremental SHA-256, for streaming a file's body through the hash once.
    public struct Hasher: Sendable {
        private var state = crypto_hash_sha256_state()
        public init() {
            _ = Sodium.ready
            _ = crypto_hash_sha256_init(&state)
        }
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            _ = crypto_hash_sha256_update(&state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
            if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
                Array(bytes).withUnsafeBytes { update($0) }
            }
        }
        public mutating func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: SHA256.byteCount)
            _ = crypto_hash_sha256_final(&state, &out)
            return out
        }
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
        public init() {
            _ = Sodium.ready
            _ = crypto_hash_sha512_init(&state)
        }
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard bytes.count > 0 else { return }
            _ = crypto_hash_sha512_update(&state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }
        public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
            if bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) == nil {
                Array(bytes).withUnsafeBytes { update($0) }
            }
        }
        public mutating func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: SHA512.byteCount)
            _ = crypto_hash_sha512_final(&state, &out)
            return out
        }
        /// Writes the 64-byte digest into `out` without allocating.
        mutating func finalize(into out: UnsafeMutablePointer<UInt8>) {
            _ = crypto_hash_sha512_final(&state, out)
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
            _ = crypto_auth_hmacsha256_update(&state, message.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(message.count))
        }
        _ = crypto_auth_hmacsha256_final(&state, &out)
        // The state holds the key's inner and outer pads.
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return out
    }

    /// The HMAC-SHA-256 tag of `message` under `key` (byte sequences).
    public static func authenticate<M: Collection, K: Collection>(_ message: M, key: K) -> [UInt8] where M.Element == UInt8, K.Element == UInt8 {
        Array(message).withUnsafeBytes { m in Array(key).withUnsafeBytes { k in authenticate(m, key: k) } }
    }
}
