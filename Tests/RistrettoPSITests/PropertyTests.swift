import Testing

@testable import RistrettoPSI

/// Properties the protocol relies on, over many random inputs and keys.
@Suite("Blinding properties")
struct PropertyTests {
    static let hasher = HashToGroup(collaborationID: "6a0c9a52-1f7e-4c55-9d0e-2b5b7c4f8a11")

    /// (H(x)·a)·b == (H(x)·b)·a: the property that lets two parties meet on doubly-blinded values.
    @Test func blindingCommutes() throws {
        for i in 0..<200 {
            let x = SecureRandom.bytes(1 + i % 40)
            let a = Scalar.random()
            let b = Scalar.random()
            let hx = try Self.hasher.hash(x)
            #expect(try hx.multiplied(by: a).multiplied(by: b) == (try hx.multiplied(by: b).multiplied(by: a)))
        }
    }

    /// The batch path equals the element-by-element path in the same order, whatever the thread count.
    @Test func batchMatchesScalarPath() throws {
        let messages = (0..<1000).map { _ in SecureRandom.bytes(16) }
        let a = Scalar.random()
        let b = Scalar.random()
        let batch = try ElementBatch.hashing(messages, with: Self.hasher).multiplied(by: a)
        let reblinded = try batch.multiplied(by: b)
        #expect(batch.count == 1000 && reblinded.count == 1000)
        for (i, m) in messages.enumerated() {
            let single = try Self.hasher.hash(m).multiplied(by: a)
            #expect(batch[i] == single)
            #expect(reblinded[i] == (try single.multiplied(by: b)))
        }
        // Round-trip through the strict batch decoder.
        let decoded = try batch.withUnsafeBytes { try ElementBatch(validating: $0) }
        #expect(decoded == batch)
    }

    /// Distinct tags give unrelated elements: no collisions across collaborations.
    @Test func distinctTagsGiveUnrelatedElements() throws {
        let other = HashToGroup(collaborationID: "6a0c9a52-1f7e-4c55-9d0e-2b5b7c4f8a12")
        var seen = Set<RistrettoElement>()
        for i in 0..<200 {
            let x = Array("person-\(i)@example.com".utf8)
            let e1 = try Self.hasher.hash(x)
            let e2 = try other.hash(x)
            #expect(e1 != e2)
            #expect(seen.insert(e1).inserted && seen.insert(e2).inserted)
        }
        // The tagless compatibility mapping is a third, unrelated function.
        #expect(try CompatibilityHash.hash([1, 2, 3]) != (try Self.hasher.hash([1, 2, 3])))
    }

    /// The compatibility hash is exactly from_hash(SHA-512(message)).
    @Test func compatibilityHashDefinition() throws {
        let m = Array("interop".utf8)
        #expect(try CompatibilityHash.hash(m) == (try OneWayMap.map(SHA512.hash(m))))
        let batch = try ElementBatch.compatibilityHashing([m, [0]])
        #expect(batch[0] == (try CompatibilityHash.hash(m)))
    }

    /// Fresh keys: the same input blinded under two random scalars gives unrelated values.
    @Test func freshScalarsGiveUnrelatedValues() throws {
        let e = try Self.hasher.hash(Array("same person".utf8))
        #expect(try e.multiplied(by: .random()) != (try e.multiplied(by: .random())))
        #expect(!Scalar.random().constantTimeEquals(.random()))
    }

    /// A batch decode reports the index of the first invalid record.
    @Test func batchDecodeNamesTheBadIndex() throws {
        var bytes = try ElementBatch.hashing((0..<500).map { [UInt8($0 % 256), UInt8($0 / 256)] }, with: Self.hasher)
            .withUnsafeBytes { Array($0) }
        bytes[321 * 32 + 31] |= 0x80
        bytes[400 * 32] = 0xff
        do {
            _ = try ElementBatch(validating: bytes)
            Issue.record("a corrupted batch decoded")
        } catch {
            #expect(error.code == .invalidElementEncoding)
            #expect(error.index == 321)
        }
    }

    /// The shuffle is a permutation (same multiset) and moves elements.
    @Test func shuffleIsAPermutation() throws {
        let batch = try ElementBatch.hashing((0..<256).map { [UInt8($0)] }, with: Self.hasher)
        var shuffled = batch
        shuffled.shuffle()
        #expect(Set(shuffled) == Set(batch))
        #expect(shuffled.count == batch.count)
        #expect(shuffled != batch)  // probability of the identity permutation: 1/256!
    }
}

/// Scalars: only valid values can be made.
@Suite("Scalars")
struct ScalarTests {
    @Test func rejectsOrderZeroAndWrongLength() {
        var l = Scalar.groupOrder
        #expect(throws: CryptoError(.nonCanonicalScalar, "")) { try Scalar(consumingCanonicalBytes: &l) }
        #expect(l.allSatisfy { $0 == 0 }, "the caller's copy is zeroed even on failure")
        var above = [UInt8](repeating: 0xff, count: 32)
        #expect(throws: CryptoError(.nonCanonicalScalar, "")) { try Scalar(consumingCanonicalBytes: &above) }
        var zero = [UInt8](repeating: 0, count: 32)
        #expect(throws: CryptoError(.zeroScalar, "")) { try Scalar(consumingCanonicalBytes: &zero) }
        var short = [UInt8](repeating: 1, count: 31)
        #expect(throws: CryptoError(.invalidLength, "")) { try Scalar(consumingCanonicalBytes: &short) }
    }

    @Test func lMinusOneIsAccepted() throws {
        var lm1 = Scalar.groupOrder
        lm1[0] -= 1
        let s = try Scalar(consumingCanonicalBytes: &lm1)
        // (ℓ−1)·B = −B, and (ℓ−1)·(ℓ−1)·B = B.
        #expect(try RistrettoElement.generator.multiplied(by: s).multiplied(by: s) == .generator)
    }

    @Test func inverseUndoesBlinding() throws {
        let a = Scalar.random()
        let e = try PropertyTests.hasher.hash([42])
        #expect(try e.multiplied(by: a).multiplied(by: a.inverted()) == e)
    }

    @Test func consumingInitZeroesTheSource() throws {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = 7
        let s = try Scalar(consumingCanonicalBytes: &bytes)
        #expect(bytes == [UInt8](repeating: 0, count: 32))
        s.withSecretBytes { #expect($0[0] == 7) }
    }
}

/// Secrets never show in descriptions, debug descriptions or reflection.
@Suite("Secret redaction")
struct SecretRedactionTests {
    @Test func scalarRevealsNothing() throws {
        var bytes = [UInt8](repeating: 0, count: 32)
        bytes[0] = 0xab
        bytes[1] = 0xcd
        let s = try Scalar(consumingCanonicalBytes: &bytes)
        let texts = [
            String(describing: s), String(reflecting: s), "\(s)",
            String(describing: Mirror(reflecting: s).children.map { $0 }),
        ]
        for t in texts {
            #expect(!t.lowercased().contains("abcd"))
            #expect(!t.contains("171"))  // 0xab in decimal, as a dump of [UInt8] would show it
        }
        #expect(String(describing: s).contains("redacted"))
    }

    @Test func signingKeyRevealsNothing() throws {
        let seed = [UInt8](repeating: 0x5a, count: 32)
        let key = try seed.withUnsafeBytes { try SigningKey(seed: $0) }
        for t in [
            String(describing: key), String(reflecting: key),
            String(describing: Mirror(reflecting: key).children.map { $0 }),
        ] {
            #expect(!t.contains("5a5a5a5a"))
            #expect(!t.contains("90, 90"))
            #expect(t.contains("redacted"))
        }
        // The public half is not secret and is shown, so a key can be identified in logs.
        #expect(String(describing: key).contains(key.verifyingKey.hex))
    }

    @Test func secureBytesRevealNothing() {
        let b = [UInt8](repeating: 0x42, count: 8)
        let s = b.withUnsafeBytes { SecureBytes(copying: $0) }
        #expect(!String(describing: s).contains("66"))
        #expect(!String(reflecting: s).contains("42"))
        let t = b.withUnsafeBytes { SecureBytes(copying: $0) }
        #expect(s.constantTimeEquals(t))
    }
}

/// Ed25519 signatures through libsodium.
@Suite("Signatures")
struct SignatureTests {
    /// RFC 8032 §7.1 TEST 1 (empty message).
    @Test func rfc8032Test1() throws {
        let seed = Hex.decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")!
        let key = try seed.withUnsafeBytes { try SigningKey(seed: $0) }
        #expect(key.verifyingKey.hex == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let sig = key.signature(for: [UInt8]())
        #expect(
            Hex.encode(sig)
                == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
        #expect(key.verifyingKey.isValidSignature(sig, for: [UInt8]()))
    }

    @Test func tamperedMessageOrSignatureFails() {
        let key = SigningKey.generate()
        let msg = Array("agreement".utf8)
        var sig = key.signature(for: msg)
        #expect(key.verifyingKey.isValidSignature(sig, for: msg))
        #expect(!key.verifyingKey.isValidSignature(sig, for: Array("agreemenT".utf8)))
        sig[0] ^= 1
        #expect(throws: CryptoError(.invalidSignature, "")) { try key.verifyingKey.verify(sig, for: msg) }
        #expect(!SigningKey.generate().verifyingKey.isValidSignature(key.signature(for: msg), for: msg))
    }

    @Test func smallOrderPublicKeyRejected() {
        // The identity point (y = 1) has small order.
        var identity = [UInt8](repeating: 0, count: 32)
        identity[0] = 1
        #expect(throws: CryptoError(.invalidKey, "")) { try VerifyingKey(bytes: identity) }
    }
}
