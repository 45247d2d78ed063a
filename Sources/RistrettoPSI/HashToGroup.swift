internal import CSodium

/// RFC 9380 `hash_to_ristretto255` for one domain-separation tag:
/// `expand_message_xmd(msg, DST, 64)` with SHA-512, then the RFC 9496 §4.3.4 one-way map
/// (`crypto_core_ristretto255_from_hash`).
///
/// Contract: the tag is fixed at construction (tags longer than 255 bytes are reduced per
/// RFC 9380 §5.3.3); ``hash(_:)`` is a pure function of the message. libsodium 1.0.18 has no
/// `crypto_core_ristretto255_from_string`, so `expand_message_xmd` is written here over
/// libsodium's SHA-512, with the constant `Z_pad` block absorbed once per tag.
/// Thread-safety: immutable value; share freely across threads.
/// - SeeAlso: RFC 9380 §5.3.1, §5.3.3, Appendix B; RFC 9496 §4.3.4; `Protocol/SPEC.md` §"Hash to group".
public struct HashToGroup: Sendable {
    /// The maximum tag length before the §5.3.3 reduction applies.
    public static let maxTagLength = 255
    /// RFC 9380 §5.3.3 prefix for reducing an over-long tag.
    static let oversizeTagPrefix = Array("H2C-OVERSIZE-DST-".utf8)
    /// Bytes of uniform output fed to the one-way map (`crypto_core_ristretto255_HASHBYTES`).
    static let uniformByteCount = 64

    /// The tag actually used (after any over-long reduction).
    public let domainSeparationTag: [UInt8]
    /// `DST_prime = DST || I2OSP(len(DST), 1)`.
    private let dstPrime: [UInt8]
    /// SHA-512 state after absorbing `Z_pad` (one 128-byte block of zeros).
    private let afterZPad: SHA512.Hasher

    /// Prepares hashing under `domainSeparationTag`.
    /// - Throws: ``CryptoError/Code/invalidHashToGroupParameters`` for an empty tag (RFC 9380 §3.1
    ///   requires a non-empty tag).
    public init(domainSeparationTag tag: [UInt8]) throws(CryptoError) {
        guard !tag.isEmpty else {
            throw CryptoError(
                .invalidHashToGroupParameters, "the domain-separation tag must not be empty (RFC 9380 §3.1)")
        }
        let dst = HashToGroup.reduceTag(tag)
        domainSeparationTag = dst
        dstPrime = dst + [UInt8(dst.count)]
        var h = SHA512.Hasher()
        h.update([UInt8](repeating: 0, count: SHA512.blockByteCount))
        afterZPad = h
    }

    /// The protocol's hasher for one collaboration (``DomainSeparation/hashToGroupTag(collaborationID:)``).
    public init(collaborationID: String) {
        try! self.init(domainSeparationTag: DomainSeparation.hashToGroupTag(collaborationID: collaborationID))
    }

    /// RFC 9380 §5.3.3: a tag over 255 bytes becomes `SHA-512("H2C-OVERSIZE-DST-" || DST)`.
    static func reduceTag(_ tag: [UInt8]) -> [UInt8] {
        guard tag.count > maxTagLength else { return tag }
        return SHA512.hash(oversizeTagPrefix + tag)
    }

    /// Hashes `message` to a group element.
    /// - Throws: ``CryptoError/Code/identityElement`` if the map lands on the identity
    ///   (probability about 2^-252; checked because the type must never hold it).
    public func hash(_ message: UnsafeRawBufferPointer) throws(CryptoError) -> RistrettoElement {
        var out = [UInt8](repeating: 0, count: RistrettoElement.byteCount)
        try out.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<UInt8>) throws(CryptoError) in
            try hash(message, into: o.baseAddress!)
        }
        return out.withUnsafeBytes { RistrettoElement(trustedBytes: $0) }
    }

    /// Hashes a byte array to a group element.
    public func hash(_ message: [UInt8]) throws(CryptoError) -> RistrettoElement {
        try message.withBytes { m throws(CryptoError) in try hash(m) }
    }

    /// Allocation-free core used by the batch API: writes the 32-byte encoding to `out`.
    func hash(_ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) throws(CryptoError) {
        // 64 bytes of uniform output: ell = 1, so b_1 is the whole result.
        var uniform = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &uniform) { (u: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            let up = u.baseAddress!.assumingMemoryBound(to: UInt8.self)
            expandOneBlock(message, into: up)
            _ = Sodium.ready
            // from_hash returns 0 in 1.0.18 unconditionally; the return code is still checked.
            guard crypto_core_ristretto255_from_hash(out, up) == 0 else {
                throw CryptoError(.primitiveFailure, "crypto_core_ristretto255_from_hash failed")
            }
        }
        if sodium_is_zero(out, RistrettoElement.byteCount) == 1 {
            throw CryptoError(.identityElement, "hash-to-group produced the identity element")
        }
    }

    /// `expand_message_xmd` for `len_in_bytes = 64` (ell = 1), from the precomputed `Z_pad` state.
    private func expandOneBlock(_ msg: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) {
        // b_0 = H(Z_pad || msg || I2OSP(64, 2) || I2OSP(0, 1) || DST_prime)
        var h0 = afterZPad
        h0.update(msg)
        let lengthAndZero: (UInt8, UInt8, UInt8) = (0, UInt8(HashToGroup.uniformByteCount), 0)
        withUnsafeBytes(of: lengthAndZero) { h0.update($0) }
        dstPrime.withUnsafeBytes { h0.update($0) }
        var b0 = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &b0) { h0.finalize(into: $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        // b_1 = H(b_0 || I2OSP(1, 1) || DST_prime)
        var h1 = SHA512.Hasher()
        withUnsafeBytes(of: b0) { h1.update($0) }
        withUnsafeBytes(of: UInt8(1)) { h1.update($0) }
        dstPrime.withUnsafeBytes { h1.update($0) }
        h1.finalize(into: out)
    }

    /// RFC 9380 §5.3.1 `expand_message_xmd` with SHA-512, for any output length (the K.3 vectors
    /// use 32 and 128 bytes). The tag is reduced per §5.3.3 if longer than 255 bytes.
    /// - Throws: ``CryptoError/Code/invalidHashToGroupParameters`` when `ell > 255`,
    ///   `lengthInBytes > 65535`, the length is zero, or the tag is empty.
    public static func expandMessageXMD(_ msg: [UInt8], domainSeparationTag tag: [UInt8], lengthInBytes: Int)
        throws(CryptoError) -> [UInt8]
    {
        let bInBytes = SHA512.byteCount
        let ell = (lengthInBytes + bInBytes - 1) / bInBytes
        guard lengthInBytes > 0, lengthInBytes <= 65535, ell <= 255 else {
            throw CryptoError(
                .invalidHashToGroupParameters,
                "expand_message_xmd length must be 1...\(255 * bInBytes) bytes (RFC 9380 §5.3.1)")
        }
        guard !tag.isEmpty else {
            throw CryptoError(
                .invalidHashToGroupParameters, "the domain-separation tag must not be empty (RFC 9380 §3.1)")
        }
        let dst = reduceTag(tag)
        let dstPrime = dst + [UInt8(dst.count)]
        let zPad = [UInt8](repeating: 0, count: SHA512.blockByteCount)
        let libStr: [UInt8] = [UInt8(lengthInBytes >> 8), UInt8(lengthInBytes & 0xff)]
        let b0 = SHA512.hash(zPad + msg + libStr + [0] + dstPrime)
        var bi = SHA512.hash(b0 + [1] + dstPrime)
        var uniform = bi
        if ell >= 2 {
            for i in 2...ell {
                let x = zip(b0, bi).map { $0 ^ $1 }
                bi = SHA512.hash(x + [UInt8(i)] + dstPrime)
                uniform += bi
            }
        }
        return Array(uniform.prefix(lengthInBytes))
    }
}

/// The unkeyed mapping used by Meta's Private-ID, Optable's matcher and the IAB Tech Lab OPJA
/// reference code: `crypto_core_ristretto255_from_hash(SHA-512(message))`, with no tag.
///
/// Contract: only for interoperating with those systems, selected explicitly in an agreement;
/// never the default. Without a tag, values are comparable across every deployment that uses it.
/// - SeeAlso: `Protocol/SPEC.md` §"Compatibility hash" (and why it is not the default).
public enum CompatibilityHash {
    /// `from_hash(SHA-512(message))`.
    public static func hash(_ message: UnsafeRawBufferPointer) throws(CryptoError) -> RistrettoElement {
        var out = [UInt8](repeating: 0, count: RistrettoElement.byteCount)
        try out.withUnsafeMutableBufferPointer { (o: inout UnsafeMutableBufferPointer<UInt8>) throws(CryptoError) in
            try hash(message, into: o.baseAddress!)
        }
        return out.withUnsafeBytes { RistrettoElement(trustedBytes: $0) }
    }

    /// `from_hash(SHA-512(message))` for a byte array.
    public static func hash(_ message: [UInt8]) throws(CryptoError) -> RistrettoElement {
        try message.withBytes { m throws(CryptoError) in try hash(m) }
    }

    static func hash(_ message: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>) throws(CryptoError) {
        var h = SHA512.Hasher()
        h.update(message)
        var digest = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        try withUnsafeMutableBytes(of: &digest) { (d: UnsafeMutableRawBufferPointer) throws(CryptoError) in
            let dp = d.baseAddress!.assumingMemoryBound(to: UInt8.self)
            h.finalize(into: dp)
            guard crypto_core_ristretto255_from_hash(out, dp) == 0 else {
                throw CryptoError(.primitiveFailure, "crypto_core_ristretto255_from_hash failed")
            }
        }
        if sodium_is_zero(out, RistrettoElement.byteCount) == 1 {
            throw CryptoError(.identityElement, "hash-to-group produced the identity element")
        }
    }
}

/// The one-way map alone (RFC 9496 §4.3.4), exposed for its known-answer vectors.
public enum OneWayMap {
    /// `crypto_core_ristretto255_from_hash` on 64 uniform bytes.
    /// - Throws: `.invalidLength` unless the input is 64 bytes; `.identityElement` for the identity.
    public static func map(_ uniform: [UInt8]) throws(CryptoError) -> RistrettoElement {
        guard uniform.count == HashToGroup.uniformByteCount else {
            throw CryptoError(.invalidLength, "the one-way map takes 64 bytes, got \(uniform.count)")
        }
        _ = Sodium.ready
        var out = [UInt8](repeating: 0, count: RistrettoElement.byteCount)
        let rc = crypto_core_ristretto255_from_hash(&out, uniform)
        guard rc == 0 else { throw CryptoError(.primitiveFailure, "crypto_core_ristretto255_from_hash failed") }
        guard sodium_is_zero(out, out.count) == 0 else {
            throw CryptoError(.identityElement, "the map produced the identity element")
        }
        return out.withUnsafeBytes { RistrettoElement(trustedBytes: $0) }
    }
}
