import Foundation
import Testing

@testable import RistrettoPSI

/// The buffered ChaCha20 generator behind per-record nonces and shuffles (SPEC §3.3 "Randomness").
@Suite("Buffered random generator")
struct BufferedRandomTests {
    /// 32-byte pieces of a long stream (several refills) are all distinct and not zero: a
    /// generator that served a block twice, forgot to refill or served the wiped key slot fails.
    @Test("a long stream never repeats a 32-byte piece and is never zero")
    func streamDoesNotRepeat() {
        let random = BufferedRandom()
        // Odd sizes so reads straddle the 1024-byte block boundaries.
        var stream = [UInt8]()
        for size in [1, 7, 24, 1000, 33, 4096, 5] { stream += random.bytes(size) }
        let pieces = stride(from: 0, to: stream.count - 31, by: 32).map { Array(stream[$0..<($0 + 32)]) }
        #expect(Set(pieces).count == pieces.count)
        #expect(!pieces.contains([UInt8](repeating: 0, count: 32)))
    }

    @Test("two generators produce different streams")
    func instancesDiffer() {
        let a = BufferedRandom().bytes(64)
        let b = BufferedRandom().bytes(64)
        #expect(a != b)
    }

    /// 100,000 draws over 10 values (2³² is not a multiple of 10, so a modulo without rejection
    /// would be biased, though too little to see here) and over 6: χ² with 9 (5) degrees of
    /// freedom above 50 (40) happens by chance with probability below 10⁻⁶.
    @Test("index(below:) is uniform (χ²)", arguments: [(10, 50.0), (6, 40.0)])
    func indexIsUniform(bound: Int, limit: Double) {
        let random = BufferedRandom()
        var counts = [Int](repeating: 0, count: bound)
        let draws = 100_000
        for _ in 0..<draws {
            let i = random.index(below: bound)
            counts[i] += 1
        }
        let expected = Double(draws) / Double(bound)
        let chi2 = counts.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
        #expect(chi2 < limit, "χ² = \(chi2) over \(counts)")
    }

    @Test("bounds: 1 gives 0, large bounds stay in range")
    func bounds() {
        let random = BufferedRandom()
        #expect(random.index(below: 1) == 0)
        #expect(random.uniform(0) == 0 && random.uniform(1) == 0)
        let big = Int(UInt32.max) + 3
        var seenHigh = false
        for _ in 0..<64 {
            let i = random.index(below: big)
            #expect(i >= 0 && i < big)
            if i > Int(UInt32.max) / 2 { seenHigh = true }
        }
        #expect(seenHigh, "64 draws below 2^32 + 3 all landed in the lower half")
        for _ in 0..<1000 { #expect(random.uniform(3) < 3) }
    }

    /// Served bytes are wiped from the generator, the slot of the next key is wiped once the key
    /// moved, and each refill changes the key (fast key erasure).
    @Test("served bytes and spent keys are wiped")
    func servedBytesAreWiped() {
        let random = BufferedRandom()
        let key0 = Array(random.stateForTesting()[0..<32])
        let header = 64  // key ‖ next-key slot
        #expect(random.stateForTesting()[32..<header].allSatisfy { $0 == 0 }, "the next key's slot is wiped")
        let served = random.bytes(100)
        let state = random.stateForTesting()
        #expect(state[header..<(header + 100)].allSatisfy { $0 == 0 }, "served bytes stay in the generator")
        #expect(state[(header + 100)...].contains { $0 != 0 }, "unread keystream is kept")
        #expect(served.contains { $0 != 0 })
        _ = random.bytes(BufferedRandom.blockBytes)  // forces a refill
        let key1 = Array(random.stateForTesting()[0..<32])
        #expect(key1 != key0, "a refill replaces the key")
    }

    @Test("descriptions and reflection are redacted")
    func redacted() {
        let random = BufferedRandom()
        let stateHex = Hex.encode(random.stateForTesting()[0..<32])
        for text in [
            String(describing: random), String(reflecting: random),
            String(describing: Mirror(reflecting: random).children.map { $0.value }),
        ] {
            #expect(!text.contains(stateHex))
            #expect(text.contains("redacted"))
        }
    }

    @Test("records sealed with nonces from generators open, each nonce distinct")
    func sealingWithGenerator() throws {
        let recipient = SealingKey.generate()
        let context = Array("CLEANROOM-V01-TEST".utf8)
        let sealer = try RecordSealer(recipient: recipient.publicKey, context: context)
        let opener = try RecordOpener(
            recipient: recipient, ephemeralPublicKey: sealer.ephemeralPublicKey, context: context)
        var nonces = Set<[UInt8]>()
        for random in [BufferedRandom(), BufferedRandom()] {
            for i in 0..<200 {
                let plain = Array("record-\(i)".utf8)
                var out = [UInt8](repeating: 0, count: plain.count + RecordSealer.overhead)
                plain.withUnsafeBytes { p in out.withUnsafeMutableBytes { sealer.seal(p, into: $0, random: random) } }
                nonces.insert(Array(out.prefix(24)))
                #expect(try opener.open(out) == plain)
            }
        }
        #expect(nonces.count == 400)
    }
}
