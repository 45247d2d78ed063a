import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// The bounded-memory building blocks (SPEC §9 "Bounded memory"): the external bucket shuffle and
/// the element partitions, with budgets small enough to force many buckets and partitions.
@Suite("Spilling shuffle and partitions")
struct SpillTests {
    static func records(_ n: Int, size: Int) -> [UInt8] {
        var out = [UInt8]()
        for i in 0..<n {
            var r = [UInt8](repeating: UInt8(truncatingIfNeeded: i * 7), count: size)
            withUnsafeBytes(of: UInt32(i).littleEndian) { r.replaceSubrange(0..<4, with: $0) }
            out += r
        }
        return out
    }

    @Test(
        "the bucket shuffle emits each record exactly once",
        arguments: [(1000, 1 << 20), (1000, 4096), (1, 4096), (0, 4096)])
    func shuffleIsAPermutation(n: Int, budget: Int) throws {
        let input = Self.records(n, size: 40)
        var s = try ExternalShuffle(recordSize: 40, expectedCount: n, scratch: MemoryScratch(), budget: budget)
        #expect(s.buckets == max(1, (n * 40 + budget - 1) / budget))
        try input.withUnsafeBytes { try s.append(UnsafeRawBufferPointer(rebasing: $0[0..<min($0.count, 4000)])) }
        if input.count > 4000 {
            try input.withUnsafeBytes { try s.append(UnsafeRawBufferPointer(rebasing: $0[4000...])) }
        }
        var out = [UInt8]()
        try s.drain { out += $0 }
        #expect(out.count == input.count)
        let chunk = { (b: [UInt8]) in stride(from: 0, to: b.count, by: 40).map { Array(b[$0..<($0 + 40)]) } }
        #expect(
            chunk(out).sorted { $0.lexicographicallyPrecedes($1) }
                == chunk(input).sorted { $0.lexicographicallyPrecedes($1) })
        if n == 1000 { #expect(out != input, "a shuffle of 1000 records left them in order") }
    }

    /// The gathered Fisher–Yates (exchanges on indices, one copy per record, in pieces) gives the
    /// order that exchanging the records themselves in place gives for the same draws, whole
    /// records in every piece; the draws come from a fixed generator so both see the same ones.
    @Test(
        "the shuffle's gathered Fisher–Yates equals swapping the records in place",
        arguments: [
            (0, 40), (1, 40), (2, 40), (1000, 40), (1000, 4096), (5, 1 << 19), (3, (1 << 20) + 8),
        ])
    func gatheredShuffleMatchesInPlace(n: Int, recordSize: Int) throws {
        let input = (0..<(n * recordSize)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / recordSize) }
        func draws() -> (Int) -> Int {
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            return { below in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((state >> 33) % UInt64(below))
            }
        }
        var expected = input
        let index = draws()
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = index(i + 1)
                guard j != i else { continue }
                let a = Array(expected[(i * recordSize)..<((i + 1) * recordSize)])
                expected.replaceSubrange(
                    (i * recordSize)..<((i + 1) * recordSize), with: expected[(j * recordSize)..<((j + 1) * recordSize)]
                )
                expected.replaceSubrange((j * recordSize)..<((j + 1) * recordSize), with: a)
            }
        }
        var out = [UInt8]()
        var pieces = 0
        try input.withUnsafeBytes { records in
            try ExternalShuffle.emitShuffled(records, recordSize: recordSize, index: draws()) { piece in
                #expect(piece.count % recordSize == 0 && piece.count > 0)
                out += piece
                pieces += 1
            }
        }
        #expect(out == expected)
        #expect(
            pieces
                == (n == 0
                    ? 0
                    : (n + ExternalShuffle.pieceRecords(recordSize: recordSize) - 1)
                        / ExternalShuffle.pieceRecords(recordSize: recordSize)))
    }

    static let mib = 1 << 20
    /// (records, record size, budget, pieces)
    static let pieceCases: [(Int, Int, Int, Int)] = [
        (1000, 40, 32 * mib, 1),  // 40 KB: whole
        (26_214, 40, 32 * mib, 1),  // 1,048,560 bytes: still whole
        (26_215, 40, 32 * mib, 6),  // just above 1 MiB: √(1,048,600 / 32 Ki) ≈ 5.66, up
        (100_000, 178, 32 * mib, 24),  // a 100k round-3 shuffle, 17.8 MB: pieces of ≈ 0.74 MB
        (1_000_000, 178, 32 * mib, 74),  // 178 MB at 1M
        (10_000_000, 178, 32 * mib, 234),  // 1.78 GB: pieces of ≈ 7.3 MiB
        (100_000_000, 178, 32 * mib, 531),  // 17.8 GB: the balance stops at 256 pieces, the budget counts
        (100_000_000, 178, 8 * mib, 2122),  // a smaller budget, more pieces
        (1000, 40, 4096, 10),  // a small budget still forces many pieces
        (0, 40, 4096, 1),
    ]

    /// SpillBudget's rule (SPEC §9 "Bounded memory"): a set of at most 1 MiB is held whole; a larger
    /// one is cut into ≈ √(total / stage) pieces, the count that holds least (one piece plus a
    /// staging buffer per piece), and never into pieces above the budget.
    @Test("spill pieces: whole up to 1 MiB, then memory-balanced, never above the budget", arguments: pieceCases)
    func spillPieces(records: Int, recordSize: Int, budget: Int, pieces: Int) {
        let n = SpillBudget.pieces(count: records, recordSize: recordSize, budget: budget)
        #expect(n == pieces)
        // Whatever the count, no piece is planned above the budget.
        #expect(records * recordSize <= n * budget)
    }

    @Test("the match sorter sizes its runs by the same balance, and by the budget when nothing is expected")
    func sorterRunSize() {
        let record = MatchSorter.recordSize
        let big = MatchSorter(scratch: MemoryScratch(), budget: 32 << 20, expected: 100_000)
        let runs = SpillBudget.pieces(count: 100_000, recordSize: record, budget: 32 << 20)
        #expect(runs > 1)
        #expect(big.capacity == (100_000 + runs - 1) / runs)
        #expect(MatchSorter(scratch: MemoryScratch(), budget: 32 << 20, expected: 1000).capacity == (32 << 20) / record)
        #expect(MatchSorter(scratch: MemoryScratch(), budget: 32 << 20, expected: 0).capacity == (32 << 20) / record)
        #expect(MatchSorter(scratch: MemoryScratch(), budget: 1024, expected: 0).capacity == 64)
    }

    /// Three records through three buckets, 60,000 times: each of the 6 orders must come out
    /// about 10,000 times. The bound (χ² > 45 with 5 degrees of freedom) fails by chance with
    /// probability below 10⁻⁸, and fails surely for a bucket shuffle that is not uniform (e.g.
    /// one that keeps buckets in input order inside).
    @Test("the bucket shuffle is uniform over the orders of three records")
    func shuffleIsUniform() throws {
        var counts = [[UInt8]: Int]()
        let trials = 60_000
        for _ in 0..<trials {
            var s = try ExternalShuffle(recordSize: 1, expectedCount: 3, scratch: MemoryScratch(), budget: 1)
            #expect(s.buckets == 3)
            try [UInt8]([0, 1, 2]).withUnsafeBytes { try s.append($0) }
            var out = [UInt8]()
            try s.drain { out += $0 }
            counts[out, default: 0] += 1
        }
        #expect(counts.count == 6)
        let expected = Double(trials) / 6
        let chi2 = counts.values.reduce(0.0) { $0 + pow(Double($1) - expected, 2) / expected }
        #expect(chi2 < 45, "χ² = \(chi2) over \(counts)")
    }

    @Test("partitions hold every element once, with its position, and equal elements meet", arguments: [1 << 20, 4096])
    func partitionsKeepEveryElement(budget: Int) throws {
        // 500 distinct 32-byte values, the first 50 repeated at the end (positions 500..<550).
        var records = Self.records(500, size: 32)
        records += Array(records[0..<(50 * 32)])
        var parts = try ElementPartitions(expectedCount: 550, scratch: MemoryScratch(), budget: budget)
        try records.withUnsafeBytes { try parts.append(elementsOf: $0, recordSize: 32, firstPosition: 0) }
        #expect(parts.count == 550)
        var seen = Set<UInt64>()
        var duplicatePairs = 0
        try parts.drain { p in
            #expect(p.elements.count == p.positions.count * 32)
            for (i, pos) in p.positions.enumerated() {
                #expect(
                    Array(p.elements[(i * 32)..<(i * 32 + 32)])
                        == Array(records[(Int(pos) * 32)..<(Int(pos) * 32 + 32)]))
                seen.insert(pos)
            }
            p.elements.withUnsafeBytes { e in
                var rest = ElementJoin.intersect(records: e, UnsafeRawBufferPointer(start: nil, count: 0))
                if rest.duplicateInA != nil { duplicatePairs += 1 }
                _ = rest
                rest = ElementJoin.intersect(records: e, e)
                #expect(rest.matches.count == p.positions.count)
            }
        }
        #expect(seen == Set(0..<550))
        #expect(duplicatePairs >= 1)
    }

    /// Two sides partitioned with one count meet pairwise: every equal pair of elements across the
    /// sides is found in exactly one partition pair, whatever the budget.
    @Test("paired partitions meet: every cross-side match is found once", arguments: [1 << 20, 4096, 1024])
    func pairedPartitionsMeet(budget: Int) throws {
        let a = Self.records(400, size: 40)  // values 0..<400, 40-byte records
        // values 0..<300 and 350..<600
        let b = Self.records(300, size: 32) + Array(Self.records(600, size: 32)[(350 * 32)...])
        let count = SpillBudget.pieces(count: 400 + 550, recordSize: ElementPartitions.recordSize, budget: budget)
        var pa = try ElementPartitions(expectedCount: 400, scratch: MemoryScratch(), partitions: count)
        var pb = try ElementPartitions(expectedCount: 550, scratch: MemoryScratch(), partitions: count)
        try a.withUnsafeBytes { try pa.append(elementsOf: $0, recordSize: 40, firstPosition: 0) }
        try b.withUnsafeBytes { r in
            try pb.append(
                elementsOf: UnsafeRawBufferPointer(rebasing: r[0..<(100 * 32)]), recordSize: 32, firstPosition: 0)
            try pb.append(
                elementsOf: UnsafeRawBufferPointer(rebasing: r[(100 * 32)...]), recordSize: 32, firstPosition: 100)
        }
        var pairs: [(UInt64, UInt64)] = []
        var calls = 0
        try ElementPartitions.drainPairs(&pa, &pb) { x, y in
            calls += 1
            x.elements.withUnsafeBytes { ex in
                y.elements.withUnsafeBytes { ey in
                    for (i, j) in ElementJoin.intersect(records: ex, ey).matches {
                        pairs.append((y.positions[i], x.positions[j]))
                    }
                }
            }
        }
        #expect(calls == count)
        if budget == 1024 { #expect(count > 10, "the budget forces many partitions") }
        // Values 0..<300 sit at the same positions on both sides; 350..<400 at b's 300..<350.
        #expect(pairs.count == 350)
        let expected = (0..<300).map { "\($0)-\($0)" } + (300..<350).map { "\($0)-\($0 + 50)" }
        #expect(Set(pairs.map { "\($0.0)-\($0.1)" }) == Set(expected))
    }
}
