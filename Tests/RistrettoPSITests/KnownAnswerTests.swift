import Testing

@_spi(Benchmarks) @testable import RistrettoPSI

/// RFC 9380 Appendix K.3: expand_message_xmd with SHA-512.
@Suite("RFC 9380 K.3 expand_message_xmd(SHA-512)")
struct ExpandMessageTests {
    @Test(arguments: Vectors.file.expand_message_xmd_sha512.tests)
    func vector(_ v: VectorFile.ExpandBlock.Test) throws {
        let dst = Vectors.bytes(Vectors.file.expand_message_xmd_sha512.DST)
        let out = try HashToGroup.expandMessageXMD(
            Vectors.bytes(v.msg), domainSeparationTag: dst, lengthInBytes: v.len_in_bytes)
        #expect(Hex.encode(out) == v.uniform_bytes)
    }

    @Test func rejectsLengthsOutsideTheRFCBounds() {
        #expect(throws: CryptoError(.invalidHashToGroupParameters, "")) {
            try HashToGroup.expandMessageXMD([1], domainSeparationTag: [1], lengthInBytes: 255 * 64 + 1)
        }
        #expect(throws: CryptoError(.invalidHashToGroupParameters, "")) {
            try HashToGroup.expandMessageXMD([1], domainSeparationTag: [1], lengthInBytes: 0)
        }
        #expect(throws: CryptoError(.invalidHashToGroupParameters, "")) {
            try HashToGroup(domainSeparationTag: [])
        }
    }

    /// RFC 9380 §5.3.3: a tag over 255 bytes is replaced by SHA-512("H2C-OVERSIZE-DST-" || tag),
    /// so hashing under the long tag equals hashing under its reduction.
    @Test func overlongTagIsReducedPerSection5_3_3() throws {
        let long = [UInt8](repeating: 0x41, count: 300)
        let reduced = SHA512.hash(Array("H2C-OVERSIZE-DST-".utf8) + long)
        let viaLong = try HashToGroup.expandMessageXMD([1, 2, 3], domainSeparationTag: long, lengthInBytes: 64)
        let viaReduced = try HashToGroup.expandMessageXMD([1, 2, 3], domainSeparationTag: reduced, lengthInBytes: 64)
        #expect(viaLong == viaReduced)
        #expect(try HashToGroup(domainSeparationTag: long).domainSeparationTag == reduced)
        #expect(
            try HashToGroup(domainSeparationTag: long).hash([9])
                == (try HashToGroup(domainSeparationTag: reduced).hash([9])))
    }

    /// The precomputed-state fast path used for hashing equals the general definition.
    @Test func fastPathMatchesGeneralExpansion() throws {
        let dst = DomainSeparation.hashToGroupTag(collaborationID: "3f1e2d4c-0000-4000-8000-000000000001")
        let h = try HashToGroup(domainSeparationTag: dst)
        for msg in [[], [0], Array("alice@example.com".utf8), [UInt8](repeating: 7, count: 300)] as [[UInt8]] {
            let uniform = try HashToGroup.expandMessageXMD(msg, domainSeparationTag: dst, lengthInBytes: 64)
            #expect(try h.hash(msg) == (try OneWayMap.map(uniform)))
        }
    }
}

/// RFC 9496 Appendix A.1: multiples of the generator.
@Suite("RFC 9496 A.1 generator multiples")
struct GeneratorMultipleTests {
    @Test(arguments: Vectors.file.ristretto255_generator_multiples.vectors)
    func multiple(_ v: VectorFile.Multiple) throws {
        if v.k == 0 {
            // 0·B is the identity, which the protocol never accepts.
            #expect(throws: CryptoError(.identityElement, "")) { try RistrettoElement(hex: v.encoding) }
            return
        }
        // k·B by scalar multiplication …
        var k = [UInt8](repeating: 0, count: 32)
        k[0] = UInt8(v.k)
        let scalar = try Scalar(consumingCanonicalBytes: &k)
        #expect(try RistrettoElement.generator.multiplied(by: scalar).hex == v.encoding)
        // … and by repeated addition, independently of the scalar path.
        var sum = RistrettoElement.generator
        for _ in 1..<v.k { sum = try sum.adding(.generator) }
        #expect(sum.hex == v.encoding)
        // The encoding decodes strictly and re-encodes to itself.
        #expect(try RistrettoElement(hex: v.encoding).hex == v.encoding)
    }
}

/// RFC 9496 Appendix A.2: every invalid encoding is rejected by the strict decoder.
@Suite("RFC 9496 A.2 invalid encodings")
struct InvalidEncodingTests {
    @Test(arguments: Vectors.file.ristretto255_invalid_encodings.vectors)
    func rejected(_ v: VectorFile.Invalid) {
        #expect(throws: CryptoError(.invalidElementEncoding, "")) { try RistrettoElement(hex: v.encoding) }
        #expect(throws: CryptoError.self) { try ElementBatch(validating: Vectors.bytes(v.encoding)) }
    }

    /// Documents why the strict checks exist: Debian's libsodium 1.0.18 accepts encodings with the
    /// top bit set (its canonicality check masks bit 255). The strict decoder rejects all of them,
    /// whichever libsodium version is linked; this test shows the gap without depending on it.
    @Test func strictDecoderCoversLibsodiumsLaxness() throws {
        let b = RistrettoElement.generator.bytes
        var highBit = b
        highBit[31] |= 0x80
        #expect(throws: CryptoError(.invalidElementEncoding, "")) { try RistrettoElement(validating: highBit) }
        if CryptoLibrary.libsodiumVersion.hasPrefix("1.0.18") {
            #expect(LibsodiumDecoder.accepts(highBit), "libsodium 1.0.18 is expected to accept a top-bit-set encoding")
        }
        for v in Vectors.file.ristretto255_invalid_encodings.vectors {
            var flipped = Vectors.bytes(v.encoding)
            flipped[31] |= 0x80
            #expect(throws: CryptoError.self) { try RistrettoElement(validating: flipped) }
        }
        // Every valid multiple with the top bit set is rejected too.
        for v in Vectors.file.ristretto255_generator_multiples.vectors where v.k > 0 {
            var e = Vectors.bytes(v.encoding)
            e[31] |= 0x80
            #expect(throws: CryptoError(.invalidElementEncoding, "")) { try RistrettoElement(validating: e) }
        }
    }

    @Test func identityAndWrongLengthsRejected() {
        #expect(throws: CryptoError(.identityElement, "")) {
            try RistrettoElement(validating: [UInt8](repeating: 0, count: 32))
        }
        #expect(throws: CryptoError(.invalidLength, "")) {
            try RistrettoElement(validating: [UInt8](repeating: 2, count: 31))
        }
        #expect(throws: CryptoError(.invalidLength, "")) {
            try RistrettoElement(validating: [UInt8](repeating: 2, count: 33))
        }
        #expect(throws: CryptoError(.invalidLength, "")) {
            try ElementBatch(validating: [UInt8](repeating: 2, count: 33))
        }
    }

    /// p itself, p + 1 and 2^255 − 1 are non-canonical even when libsodium's arithmetic would wrap.
    @Test func fieldBoundaryEncodings() {
        let p: [UInt8] = [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
        var pMinus2 = p
        pMinus2[0] = 0xeb
        #expect(!RistrettoElement.isCanonicalFieldEncoding(p.withUnsafeBytes { $0 }))
        #expect(RistrettoElement.isCanonicalFieldEncoding(pMinus2.withUnsafeBytes { $0 }) == false)  // odd → negative
        var pMinus1Even = p
        pMinus1Even[0] = 0xec
        #expect(RistrettoElement.isCanonicalFieldEncoding(pMinus1Even.withUnsafeBytes { $0 }))
    }
}

/// RFC 9496 Appendix A.3: the one-way map from 64 uniform bytes.
@Suite("RFC 9496 A.3 one-way map")
struct OneWayMapTests {
    @Test(arguments: Vectors.file.ristretto255_one_way_map.vectors)
    func map(_ v: VectorFile.MapVector) throws {
        #expect(try OneWayMap.map(Vectors.bytes(v.input)).hex == v.output)
    }

    @Test(arguments: Vectors.file.ristretto255_one_way_map.equivalent_inputs.inputs)
    func equivalentInput(_ input: String) throws {
        #expect(
            try OneWayMap.map(Vectors.bytes(input)).hex
                == Vectors.file.ristretto255_one_way_map.equivalent_inputs.output)
    }
}

/// hash_to_ristretto255 for the RFC 9497 inputs (outputs from libsodium's test suite, tied to
/// RFC 9497 by the OPRF vectors below).
@Suite("hash_to_ristretto255 on the RFC 9497 inputs")
struct HashToGroupVectorTests {
    @Test(arguments: Vectors.file.hash_to_ristretto255_rfc9497_inputs.vectors)
    func vector(_ v: VectorFile.H2G) throws {
        let h = try HashToGroup(domainSeparationTag: Vectors.bytes(v.DST))
        #expect(try h.hash(Vectors.bytes(v.msg)).hex == v.output)
        // The batch path gives the same element.
        let batch = try ElementBatch.hashing([Vectors.bytes(v.msg)], with: h)
        #expect(batch[0].hex == v.output)
    }
}

/// RFC 9497 Appendix A.1 ristretto255-SHA512: Blind → BlindedElement, Evaluate →
/// EvaluationElement, Finalize → Output. Exercises hash-to-group, scalar multiplication,
/// inversion and SHA-512 together.
@Suite("RFC 9497 A.1 OPRF(ristretto255, SHA-512)")
struct OPRFTests {
    @Test(arguments: OPRFCase.all)
    func vector(_ v: OPRFCase) throws {
        let input = Vectors.bytes(v.input)
        var blindBytes = Vectors.bytes(v.blind)
        let blind = try Scalar(consumingCanonicalBytes: &blindBytes)
        var skBytes = Vectors.bytes(v.skSm)
        let sk = try Scalar(consumingCanonicalBytes: &skBytes)

        // Blind: BlindedElement = blind · HashToGroup(input)
        let h = try HashToGroup(domainSeparationTag: Vectors.bytes(v.hashToGroupDST))
        let blinded = try h.hash(input).multiplied(by: blind)
        #expect(blinded.hex == v.blindedElement)

        // Evaluate: EvaluationElement = skS · BlindedElement (decoded strictly, as a server would)
        let evaluated = try RistrettoElement(hex: v.blindedElement).multiplied(by: sk)
        #expect(evaluated.hex == v.evaluationElement)

        // Finalize: unblind with blind⁻¹ and hash with the "Finalize" label.
        let unblinded = try RistrettoElement(hex: v.evaluationElement).multiplied(by: try blind.inverted())
        let u = unblinded.bytes
        let transcript =
            [UInt8(input.count >> 8), UInt8(input.count & 0xff)] + input
            + [UInt8(u.count >> 8), UInt8(u.count & 0xff)] + u + Array("Finalize".utf8)
        #expect(Hex.encode(SHA512.hash(transcript)) == v.output)
    }
}

/// RFC 4231 test cases 1, 2 and 6 (key longer than the block) for the SigV4 HMAC.
@Suite struct HMACSHA256Tests {
    static let cases: [(key: String, data: String, tag: String)] = [
        (
            String(repeating: "0b", count: 20), "4869205468657265",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        ),
        (
            "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ),
        (
            String(repeating: "aa", count: 131),
            "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        ),
    ]
    @Test(arguments: 0..<3) func rfc4231(_ i: Int) {
        let c = Self.cases[i]
        #expect(Hex.encode(HMACSHA256.authenticate(Hex.decode(c.data)!, key: Hex.decode(c.key)!)) == c.tag)
    }
}

/// The benchmark SPI `writeProgression` (`cleanroom-bench coordinator-scale`'s elements): RFC 9496
/// A.1's multiples from the generator, and ranges that join into one sequence whatever the split.
@Suite("Benchmark element progressions")
struct ProgressionTests {
    @Test func generatorMultiplesFromTheRFC() throws {
        let vectors = Vectors.file.ristretto255_generator_multiples.vectors.filter { $0.k > 0 }.sorted { $0.k < $1.k }
        let n = vectors.last!.k
        // base B, first 0: B, 2B, …, nB.
        var out = [UInt8](repeating: 0, count: n * 32)
        try out.withUnsafeMutableBytes {
            try RistrettoElement.writeProgression(base: .generator, first: 0, count: n, into: $0)
        }
        for v in vectors { #expect(Hex.encode(out[((v.k - 1) * 32)..<(v.k * 32)]) == v.encoding, "k = \(v.k)") }
        // A start past zero: base + first·B, i.e. (first + 1)B, …
        var tail = [UInt8](repeating: 0, count: 3 * 32)
        try tail.withUnsafeMutableBytes {
            try RistrettoElement.writeProgression(base: .generator, first: UInt64(n - 3), count: 3, into: $0)
        }
        #expect(tail == Array(out[((n - 3) * 32)...]))
    }

    @Test func rangesJoinAndDecodeStrictly() throws {
        let base = try RistrettoElement.generator.multiplied(by: Scalar.random())
        var whole = [UInt8](repeating: 0, count: 300 * 32)
        try whole.withUnsafeMutableBytes {
            try RistrettoElement.writeProgression(base: base, first: 1_000_000, count: 300, into: $0)
        }
        var pieces = [UInt8]()
        for (first, count) in [(1_000_000, 1), (1_000_001, 120), (1_000_121, 179)] {
            var p = [UInt8](repeating: 0, count: count * 32)
            try p.withUnsafeMutableBytes {
                try RistrettoElement.writeProgression(base: base, first: UInt64(first), count: count, into: $0)
            }
            pieces += p
        }
        #expect(pieces == whole)
        let batch = try ElementBatch(validating: whole)
        #expect(batch.count == 300)
        #expect(Set(stride(from: 0, to: whole.count, by: 32).map { Array(whole[$0..<($0 + 32)]) }).count == 300)
    }
}
