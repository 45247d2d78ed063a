import Foundation
import Testing

@testable import RistrettoPSI

/// SHA-256 known answers from `Protocol/vectors/fips180-sha256.json` (NIST's own examples; the
/// file names each vector's source). Loaded relative to this file, like ``Vectors``.
struct SHA256Vector: Decodable, Sendable, CustomTestStringConvertible {
    let name: String
    let message_ascii: String
    let `repeat`: Int
    let digest: String
    var testDescription: String { name }

    var message: [UInt8] { Array(String(repeating: message_ascii, count: self.repeat).utf8) }

    static let all: [SHA256Vector] = {
        struct File: Decodable {
            struct Block: Decodable { let tests: [SHA256Vector] }
            let sha256: Block
        }
        let url = Vectors.packageRoot.appendingPathComponent("Protocol/vectors/fips180-sha256.json")
        do { return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).sha256.tests } catch {
            fatalError("cannot load \(url.path): \(error)")
        }
    }()
}

/// Reproducible pseudo-random bytes (SplitMix64), so a failing length can be replayed.
private func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return UInt8(truncatingIfNeeded: z ^ (z >> 31))
    }
}

@Suite("SHA-256 (FIPS 180-4) through libcrypto")
struct SHA256Tests {
    @Test(arguments: SHA256Vector.all)
    func knownAnswerOneShot(_ v: SHA256Vector) {
        #expect(Hex.encode(SHA256.hash(v.message)) == v.digest)
    }

    @Test(arguments: SHA256Vector.all)
    func knownAnswerStreamed(_ v: SHA256Vector) {
        var h = SHA256.Hasher()
        let m = v.message
        var i = 0
        while i < m.count {
            let n = min(1000, m.count - i)
            h.update(m[i..<i + n])
            i += n
        }
        #expect(Hex.encode(h.finalize()) == v.digest)
    }

    /// The libsodium reference agrees with the standard too, so the cross-check below compares
    /// against a known-good implementation.
    @Test(arguments: SHA256Vector.all)
    func libsodiumReferenceKnownAnswer(_ v: SHA256Vector) {
        #expect(Hex.encode(v.message.withUnsafeBytes { SHA256.libsodiumHash($0) }) == v.digest)
    }

    /// Every length across the block and padding edges (55/56, 63/64/65, …) and some long ones.
    static let lengths =
        Array(0...300) + [447, 448, 449, 511, 512, 513, 1000, 4095, 4096, 4097, 65_535, 65_537, 1 << 20, (1 << 20) + 3]

    @Test(arguments: lengths)
    func matchesLibsodiumOnRandomInput(_ length: Int) {
        let bytes = pseudoRandomBytes(length, seed: UInt64(length) &* 0x1234_5678_9ABC_DEF1)
        let reference = bytes.withUnsafeBytes { SHA256.libsodiumHash($0) }
        #expect(SHA256.hash(bytes) == reference)
        var h = SHA256.Hasher()
        h.update(bytes)
        #expect(h.finalize() == reference)
    }

    /// Pieces of one size, and of sizes that change from piece to piece, equal the one-shot digest.
    @Test(arguments: [1, 2, 3, 7, 31, 32, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4096, 65_543, 300_000])
    func streamingInPiecesEqualsOneShot(_ piece: Int) {
        let bytes = pseudoRandomBytes(200_003, seed: 0xC1EA_4200 + UInt64(piece))
        let expected = SHA256.hash(bytes)
        var fixed = SHA256.Hasher()
        var varying = SHA256.Hasher()
        var i = 0
        while i < bytes.count {
            let n = min(piece, bytes.count - i)
            bytes[i..<i + n].withUnsafeBytes { fixed.update($0) }
            i += n
        }
        i = 0
        var size = piece
        while i < bytes.count {
            let n = min(size, bytes.count - i)
            varying.update(bytes[i..<i + n])
            i += n
            size = size * 3 % 1009 + 1
        }
        varying.update([UInt8]())
        #expect(fixed.finalize() == expected)
        #expect(varying.finalize() == expected)
    }

    /// A copy taken mid-stream forks the state (value semantics, as with the libsodium state struct).
    @Test func copyMidStreamForksTheState() {
        let a = pseudoRandomBytes(100, seed: 1)
        let b = pseudoRandomBytes(70, seed: 2)
        let c = pseudoRandomBytes(5000, seed: 3)
        var h = SHA256.Hasher()
        h.update(a)
        var g = h
        h.update(b)
        let fromH = h.finalize()
        let copyBeforeC = g
        g.update(c)
        #expect(fromH == SHA256.hash(a + b))
        #expect(g.finalize() == SHA256.hash(a + c))
        var untouched = copyBeforeC
        #expect(untouched.finalize() == SHA256.hash(a))
    }

    /// After ``SHA256/Hasher/finalize()`` the hasher starts over at the empty message.
    @Test func finalizeStartsOver() {
        var h = SHA256.Hasher()
        h.update(Array("abc".utf8))
        _ = h.finalize()
        #expect(Hex.encode(h.finalize()) == SHA256Vector.all[0].digest)
        h.update(Array("abc".utf8))
        #expect(Hex.encode(h.finalize()) == SHA256Vector.all[1].digest)
    }

    /// Hashers and one-shot calls on many threads at once give the same digests.
    @Test func concurrentUseAgrees() async {
        let inputs = (0..<64).map { pseudoRandomBytes(1000 + $0 * 37, seed: UInt64($0)) }
        let expected = inputs.map { b in b.withUnsafeBytes { SHA256.libsodiumHash($0) } }
        let agreeing = await withTaskGroup(of: Bool.self) { group in
            for (input, digest) in zip(inputs, expected) {
                group.addTask {
                    var h = SHA256.Hasher()
                    h.update(input)
                    return h.finalize() == digest && SHA256.hash(input) == digest
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(agreeing == inputs.count)
    }
}

/// SHA-512's hasher (libsodium's, used by hash-to-group) starts over after `finalize` as
/// SHA-256's does: libsodium wipes the state in its final step, so a reused hasher used to hash
/// from a zeroed state. Known answers: FIPS 180-4 examples (the empty message, "abc").
@Suite("SHA-512 hasher")
struct SHA512HasherTests {
    static let abc =
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    static let empty =
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        + "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"

    @Test func finalizeStartsOver() {
        var h = SHA512.Hasher()
        h.update(Array("abc".utf8))
        #expect(Hex.encode(h.finalize()) == Self.abc)
        #expect(Hex.encode(h.finalize()) == Self.empty)
        h.update(Array("abc".utf8))
        #expect(Hex.encode(h.finalize()) == Self.abc)
        #expect(Hex.encode(SHA512.hash(Array("abc".utf8))) == Self.abc)
    }
}
