import Testing

@testable import RistrettoPSI

/// Record sealing: one X25519 agreement per file, XChaCha20-Poly1305 per record.
@Suite("Record sealing")
struct SealingTests {
    @Test func roundTripAndBinding() throws {
        let recipient = SealingKey.generate()
        let context = Array("CLEANROOM-V01-TEST".utf8) + [1, 2, 3]
        let sealer = try RecordSealer(recipient: recipient.publicKey, context: context)
        let records = (0..<50).map { Array("record-\($0)".utf8) }
        let sealed = records.map { sealer.seal($0) }
        #expect(sealed.allSatisfy { $0.count == 8 + RecordSealer.overhead || $0.count == 9 + RecordSealer.overhead })
        #expect(Set(sealed.map { Array($0.prefix(24)) }).count == 50, "nonces are unique")
        let opener = try RecordOpener(
            recipient: recipient, ephemeralPublicKey: sealer.ephemeralPublicKey, context: context)
        for (r, s) in zip(records, sealed) { #expect(try opener.open(s) == r) }

        // Another context (file, run or purpose), another recipient, or a flipped bit: refused.
        let wrongContext = try RecordOpener(
            recipient: recipient, ephemeralPublicKey: sealer.ephemeralPublicKey, context: context + [4])
        #expect(throws: CryptoError(.decryptionFailed, "")) { try wrongContext.open(sealed[0]) }
        let other = try RecordOpener(
            recipient: .generate(), ephemeralPublicKey: sealer.ephemeralPublicKey, context: context)
        #expect(throws: CryptoError(.decryptionFailed, "")) { try other.open(sealed[0]) }
        var flipped = sealed[0]
        flipped[30] ^= 1
        #expect(throws: CryptoError(.decryptionFailed, "")) { try opener.open(flipped) }
        #expect(throws: CryptoError(.decryptionFailed, "")) { try opener.open([1, 2, 3]) }
    }

    @Test func keysAreRedactedAndRoundTrip() throws {
        let key = SealingKey.generate()
        let copy = try key.withSecretBytes { try SealingKey(secretBytes: $0) }
        #expect(copy.publicKey == key.publicKey)
        let secretHex = key.withSecretBytes { Hex.encode($0) }
        #expect(!String(describing: key).contains(secretHex))
        #expect(!String(reflecting: key).contains(secretHex))
        #expect(throws: CryptoError(.invalidKey, "")) { try SealingPublicKey(bytes: [UInt8](repeating: 0, count: 32)) }
    }

    /// A small-order peer key gives an all-zero shared secret, which is refused.
    @Test func smallOrderPeerRefused() throws {
        var smallOrder = [UInt8](repeating: 0, count: 32)
        smallOrder[0] = 1  // u = 1 is a point of order 4: X25519 with it yields all zeros.
        let pk = try SealingPublicKey(bytes: smallOrder)
        #expect(throws: CryptoError(.invalidKey, "")) { try RecordSealer(recipient: pk, context: []) }
    }
}
