import Foundation
import Testing

@testable import RistrettoPSI

/// The fast paths the benchmarks rely on give exactly the answers of the plain ones (no timing here).
@Suite("Batch fast paths")
struct BatchPerformancePathTests {
    static let hasher = HashToGroup(collaborationID: "6a0c9a52-1f7e-4c55-9d0e-2b5b7c4f8a11")

    static func batch(_ n: Int) throws -> ElementBatch {
        try ElementBatch.hashing((0..<n).map { Array("person-\($0)@example.com".utf8) }, with: hasher)
    }

    /// Fused decode-and-multiply equals strict decode then multiply, on the serial path (fewer than
    /// 128 records) and the parallel one. (The thread count is not changed here: `setenv` while
    /// other tests read the environment would race.)
    @Test(arguments: [1, 100, 700])
    func fusedReblindEqualsDecodeThenMultiply(count: Int) throws {
        let b = Scalar.random()
        let bytes = try Self.batch(count).withUnsafeBytes { Array($0) }
        #expect(
            try ElementBatch.multiplying(validating: bytes, by: b)
                == (try ElementBatch(validating: bytes).multiplied(by: b)))
    }

    /// Every kind of bad record is refused by the fused path with the strict decoder's code and index.
    static let badRecords: [(String, [UInt8])] = [
        ("identity", [UInt8](repeating: 0, count: 32)),
        ("top bit set (libsodium 1.0.18 alone accepts it)", [UInt8](repeating: 0, count: 31) + [0x80]),
        ("negative (odd) field element", [0x01] + [UInt8](repeating: 0, count: 31)),
        ("not below p", [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f]),
        // RFC 9496 Appendix A.2, "non-square x^2".
        ("non-square x^2", Hex.decode("26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371")!),
    ]

    @Test(arguments: badRecords)
    func fusedReblindRefusesLikeTheStrictDecoder(name: String, bad: [UInt8]) throws {
        var bytes = try Self.batch(300).withUnsafeBytes { Array($0) }
        bytes.replaceSubrange(150 * 32..<151 * 32, with: bad)
        var strict: CryptoError?
        do { _ = try ElementBatch(validating: bytes) } catch { strict = error }
        var fused: CryptoError?
        do { _ = try ElementBatch.multiplying(validating: bytes, by: Scalar.random()) } catch { fused = error }
        #expect(strict != nil, "\(name) must be refused by the strict decoder")
        #expect(fused?.code == strict?.code, "\(name)")
        #expect(fused?.index == 150 && strict?.index == 150, "\(name)")
    }

    /// The flat index finds exactly what a Set finds, and names the first duplicate pair.
    @Test func indexAgreesWithASet() throws {
        let consumer = try Self.batch(2000)
        let provider = try ElementBatch.hashing(
            (1000..<3500).map { Array("person-\($0)@example.com".utf8) }, with: Self.hasher)
        let (index, duplicate) = ElementIndex.build(consumer)
        #expect(duplicate == nil)
        var found: [(Int, Int)] = []
        index.forEachMatch(in: provider) { i, j in found.append((i, j)) }
        #expect(found.count == 1000)
        for (i, j) in found { #expect(provider[i] == consumer[j]) }
        #expect(found.map(\.0) == Array(0..<1000), "matches come in the probe side's order")
        let parallel = index.matches(in: provider)
        #expect(
            parallel.map(\.0) == found.map(\.0) && parallel.map(\.1) == found.map(\.1),
            "the parallel probe finds the same pairs in the same order")
        for j in [0, 999, 1999] { #expect(index.firstIndex(of: consumer[j]) == j) }
        #expect(index.firstIndex(of: provider[2499]) == nil)

        var withDuplicate = consumer
        withDuplicate.append(consumer[17])
        let (_, dup) = ElementIndex.build(withDuplicate)
        #expect(dup?.first == 17 && dup?.second == 2000)
        #expect(ElementIndex.build(ElementBatch()).duplicate == nil)
    }

    /// The partitioned join gives the flat index's answers, with one partition or many.
    @Test(arguments: [16_384, 64, 1])
    func partitionedJoinAgreesWithTheIndex(partitionTarget: Int) throws {
        let a = try Self.batch(2000)
        let b = try ElementBatch.hashing(
            (1000..<3500).map { Array("person-\($0)@example.com".utf8) }, with: Self.hasher)
        let join = ElementJoin.intersect(a, b, partitionTarget: partitionTarget)
        let (index, _) = ElementIndex.build(a)
        let expected = index.matches(in: b)
        #expect(join.duplicateInA == nil && join.duplicateInB == nil)
        #expect(join.matches.map(\.0) == expected.map(\.0) && join.matches.map(\.1) == expected.map(\.1))

        // Duplicates on either side: the pair a sequential scan finds first.
        var a2 = a
        var b2 = b
        a2.append(a[1500])
        a2.append(a[3])
        b2.append(b[10])
        b2.append(b[2499])
        let dup = ElementJoin.intersect(a2, b2, partitionTarget: partitionTarget)
        #expect(dup.duplicateInA?.first == 1500 && dup.duplicateInA?.second == 2000)
        #expect(dup.duplicateInB?.first == 10 && dup.duplicateInB?.second == 2500)
        #expect(ElementIndex.build(a2).duplicate?.second == 2000)
        #expect(ElementJoin.intersect(ElementBatch(), ElementBatch()).matches.isEmpty)
    }
}

/// The pipeline's building blocks (the prepare rounds' overlap of reading with arithmetic).
@Suite("Pipeline helpers")
struct PipelineHelperTests {
    @Test("forEachRange hands out every index exactly once", arguments: [0, 1, 63, 64, 1_000, 5_003])
    func rangesCoverEveryIndexOnce(count: Int) {
        var hits = [Int](repeating: 0, count: count)
        hits.withUnsafeMutableBufferPointer { h in
            Parallel.forEachRange(count: count) { range in
                for i in range { h[i] += 1 }
            }
        }
        #expect(hits.allSatisfy { $0 == 1 })
    }

    @Test("a job returns its work's result, rethrows its error, and joins again to the same outcome")
    func jobOutcome() throws {
        struct Refused: Error, Equatable { let n: Int }
        let hasher = BatchPerformancePathTests.hasher
        let messages = (0..<500).map { Array("member-\($0)".utf8) }
        let job = Parallel.Job { try ElementBatch.hashing(messages, with: hasher) }
        let here = try ElementBatch.hashing(messages, with: hasher)
        #expect(try job.join() == here)
        #expect(try job.join() == here)
        let failing = Parallel.Job<Int> { throw Refused(n: 7) }
        #expect(throws: Refused(n: 7)) { try failing.join() }
        #expect(throws: Refused(n: 7)) { try failing.join() }
    }

    @Test("records sealed from several threads at once all open, each with its own nonce")
    func sealingFromSeveralThreads() throws {
        let recipient = SealingKey.generate()
        let context = Array("pipeline test".utf8)
        let sealer = try RecordSealer(recipient: recipient.publicKey, context: context)
        let n = 4_000
        let plainSize = 66
        let sealedSize = plainSize + RecordSealer.overhead
        var sealed = [UInt8](repeating: 0, count: n * sealedSize)
        sealed.withUnsafeMutableBytes { out in
            Parallel.forEachRange(count: n) { range in
                for i in range {
                    let record = sealer.seal([UInt8](repeating: UInt8(i % 251), count: plainSize))
                    record.withUnsafeBytes {
                        UnsafeMutableRawBufferPointer(rebasing: out[(i * sealedSize)..<((i + 1) * sealedSize)])
                            .copyMemory(from: $0)
                    }
                }
            }
        }
        let opener = try RecordOpener(
            recipient: recipient, ephemeralPublicKey: sealer.ephemeralPublicKey, context: context)
        var nonces = Set<[UInt8]>()
        for i in 0..<n {
            let record = Array(sealed[(i * sealedSize)..<((i + 1) * sealedSize)])
            nonces.insert(Array(record.prefix(24)))
            #expect(try opener.open(record) == [UInt8](repeating: UInt8(i % 251), count: plainSize))
        }
        #expect(nonces.count == n)
    }
}
