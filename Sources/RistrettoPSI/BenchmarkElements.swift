internal import CSodium

extension RistrettoElement {
    /// Benchmark inputs only (`@_spi(Benchmarks)`; the protocol never adds elements): writes the
    /// encodings of `base + (first + k)·B` for `k` in `0..<count` to `out`, 32 bytes each, where
    /// `B` is the generator.
    ///
    /// Contract: distinct `first + k` give distinct elements (the group has prime order ℓ > 2⁶⁴),
    /// every output is a canonical, non-identity encoding (the strict decoder accepts it), and
    /// the result depends only on `base` and the indices, so ranges computed on different threads
    /// join into one sequence. Cost: one `crypto_scalarmult_ristretto255_base` for the start and
    /// one `crypto_core_ristretto255_add` (≈ 10 µs: two decodings and an encoding) per element,
    /// far cheaper than hash-to-group + blinding, which is what lets `cleanroom-bench
    /// coordinator-scale` write a 100M × 100M coordinator input without running rounds 1–4.
    /// - Throws: `crypto.identity_element` if an element is the identity (only when `base` is
    ///   `−(first + k)·B`, never for a base from hash-to-group), `crypto.primitive_failure` if
    ///   libsodium refuses.
    /// - Precondition: `out.count == count * 32`.
    /// - SeeAlso: `BENCHMARKS.md` "Coordinator at scale"; RFC 9496 §4.
    @_spi(Benchmarks)
    public static func writeProgression(
        base: RistrettoElement, first: UInt64, count: Int,
        into out: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        precondition(count >= 0 && out.count == count * Self.byteCount)
        guard count > 0 else { return }
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        // The start: base + first·B (base itself when first is 0; 0·B is the identity).
        var start = base
        if first > 0 {
            var scalar = [UInt8](repeating: 0, count: 32)
            Swift.withUnsafeBytes(of: first.littleEndian) { scalar.replaceSubrange(0..<8, with: $0) }
            var multiple = [UInt8](repeating: 0, count: 32)
            guard crypto_scalarmult_ristretto255_base(&multiple, scalar) == 0 else {
                throw CryptoError(.primitiveFailure, "ristretto255 base multiplication failed")
            }
            start = try base.adding(try RistrettoElement(validating: multiple))
        }
        start.withUnsafeBytes {
            UnsafeMutableRawPointer(o).copyMemory(from: $0.baseAddress!, byteCount: Self.byteCount)
        }
        let g = RistrettoElement.generator.bytes
        for k in 1..<count {
            let rc = crypto_core_ristretto255_add(o + k * Self.byteCount, o + (k - 1) * Self.byteCount, g)
            guard rc == 0 else { throw CryptoError(.primitiveFailure, "ristretto255 addition failed") }
            if UnsafeRawBufferPointer(start: o + k * Self.byteCount, count: Self.byteCount).allSatisfy({ $0 == 0 }) {
                throw CryptoError(.identityElement, "the sum is the identity element")
            }
        }
    }
}
