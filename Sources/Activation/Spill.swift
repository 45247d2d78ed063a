import Foundation
import RistrettoPSI

/// How much of a set a spilling algorithm holds at once (one shuffle bucket, one join partition).
///
/// What a spilling pass holds is one piece plus a staging buffer per piece
/// (``ExternalShuffle/stageBytes``): `total / p + p × stage` bytes for `p` pieces, least at
/// `p = √(total / stage)`. So a set above ``wholeBytes`` is cut into that many pieces (at 100k
/// records of 178 bytes, 24 pieces of ≈ 0.7 MiB instead of one of 17 MiB), and never so few that
/// a piece exceeds ``bytes``. Scratch I/O goes through the page cache and costs ≈ 0.1 µs per record
/// against ≈ 50 µs of group arithmetic (`BENCHMARKS.md`).
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".
public enum SpillBudget {
    /// 32 MiB: the most one piece may hold, so a round's other buffers (chunks, tables) stay well
    /// under the 300 MB target of issue 6 at any set size. `CLEANROOM_SPILL_BYTES` overrides it
    /// (tests force many buckets).
    public static var bytes: Int {
        if let v = ProcessInfo.processInfo.environment["CLEANROOM_SPILL_BYTES"], let n = Int(v), n >= 4096 { return n }
        return 32 << 20
    }

    /// Sets of at most this many bytes (1 MiB) are held whole: cutting them saves less than the
    /// staging buffers cost.
    static let wholeBytes = 1 << 20

    /// The balance asks for at most this many pieces (256; a piece is then 8 MiB at 2 GiB): each
    /// is an open scratch file, and a step may hold three such sets at once. Larger sets are cut
    /// by the budget alone, as before the balance.
    static let maxBalancedPieces = 256

    /// Number of pieces for `count` records of `recordSize` bytes: one when the set is at most
    /// ``wholeBytes`` and `budget`; otherwise the memory-balanced count (at most
    /// ``maxBalancedPieces``), or more when a piece would exceed `budget`.
    public static func pieces(count: Int, recordSize: Int, budget: Int = bytes) -> Int {
        let total = count * recordSize
        let budget = max(1, budget)
        guard total > min(budget, wholeBytes) else { return 1 }
        let byBudget = (total + budget - 1) / budget
        guard total > wholeBytes else { return byBudget }
        let balanced = Int(Double(total / ExternalShuffle.stageBytes).squareRoot().rounded(.up))
        return max(byBudget, min(balanced, maxBalancedPieces))
    }
}

/// An exactly uniform random permutation of fixed-size records in bounded memory.
///
/// Each record goes to one of `B` buckets chosen uniformly and independently (rejection sampling
/// from the shuffle's own ``BufferedRandom``, keyed from libsodium's CSPRNG); each bucket is then
/// loaded, shuffled with Fisher–Yates from the same generator, and emitted, bucket after bucket. For any output order the probability is
/// `Σ_k Π_b (1/k_b!) / Bⁿ` over the bucket sizes `k`, the same for every order: exactly uniform,
/// with no key to protect. With one bucket nothing touches the scratch space.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Shuffling in bounded memory".
struct ExternalShuffle {
    let recordSize: Int
    let buckets: Int
    private var files: [any ScratchFile] = []
    private var memory: [UInt8] = []
    private var staged: [[UInt8]]
    private(set) var count = 0
    /// This shuffle's generator: a shuffle runs on one thread, so it needs no lock, and one
    /// `getrandom` call serves all its draws (SPEC §3.3 "Randomness").
    private let random = BufferedRandom()
    static let stageBytes = 32 << 10

    /// - Parameters:
    ///   - recordSize: bytes per record.
    ///   - expectedCount: the number of records that will be appended (sizes the buckets).
    ///   - scratch: where the buckets spill when there is more than one.
    ///   - budget: bytes a bucket aims at.
    /// - Throws: the scratch space's errors, making one file per bucket.
    init(recordSize: Int, expectedCount: Int, scratch: any ScratchSpace, budget: Int = SpillBudget.bytes) throws {
        self.recordSize = recordSize
        buckets = SpillBudget.pieces(count: expectedCount, recordSize: recordSize, budget: budget)
        staged = Array(repeating: [], count: buckets)
        if buckets > 1 {
            for _ in 0..<buckets { files.append(try scratch.makeFile()) }
        } else {
            memory.reserveCapacity(expectedCount * recordSize)
        }
    }

    /// A shuffle of `records` (whole records, already gathered) as its one bucket, held in that
    /// buffer itself: what a prepare's in-place deduplication hands over, so the survivors are
    /// not copied into a second buffer of the set's size.
    init(recordSize: Int, adopting records: [UInt8]) {
        precondition(records.count % recordSize == 0, "partial record")
        self.recordSize = recordSize
        buckets = 1
        staged = [[]]
        memory = records
        count = records.count / recordSize
    }

    /// Whether the records are held in memory, as one bucket, and none was appended yet.
    var isEmptyInMemory: Bool { buckets == 1 && count == 0 }

    /// Appends whole records.
    mutating func append(_ records: UnsafeRawBufferPointer) throws {
        precondition(records.count % recordSize == 0)
        let n = records.count / recordSize
        count += n
        guard buckets > 1 else {
            memory.append(contentsOf: records)
            return
        }
        for i in 0..<n {
            let b = Int(random.uniform(UInt32(buckets)))
            try Self.stage(
                UnsafeRawBufferPointer(rebasing: records[(i * recordSize)..<((i + 1) * recordSize)]), in: &staged[b],
                to: files[b])
        }
    }

    /// Appends one record given in two pieces (`head ‖ tail`, ``recordSize`` bytes together),
    /// as ``append(_:)`` would a whole record: the same bucket draw, without the caller first
    /// assembling the record in a buffer of its own.
    mutating func append(_ head: UnsafeRawBufferPointer, _ tail: UnsafeRawBufferPointer) throws {
        precondition(head.count + tail.count == recordSize, "a record is head and tail")
        count += 1
        guard buckets > 1 else {
            memory.append(contentsOf: head)
            memory.append(contentsOf: tail)
            return
        }
        let b = Int(random.uniform(UInt32(buckets)))
        if staged[b].count + recordSize > Self.stageBytes {
            try staged[b].withUnsafeBytes { try files[b].append($0) }
            staged[b].removeAll(keepingCapacity: true)
        }
        if staged[b].capacity < Self.stageBytes { staged[b].reserveCapacity(Self.stageBytes) }
        staged[b].append(contentsOf: head)
        staged[b].append(contentsOf: tail)
    }

    /// Emits every record once, in the shuffled order, one bucket at a time (`body` gets whole
    /// records; at most one bucket is held). Consumes the shuffle.
    mutating func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if buckets == 1 {
            let m = memory
            memory = []
            try m.withUnsafeBytes {
                try Self.emitShuffled($0, recordSize: recordSize, index: { random.index(below: $0) }, body)
            }
            return
        }
        for b in 0..<buckets {
            // The bucket's staged tail goes to its file just before the file is read, so no
            // file buffers a tail while the other buckets are drained.
            try staged[b].withUnsafeBytes { try files[b].append($0) }
            staged[b] = []
            var bucket = [UInt8](repeating: 0, count: files[b].size)
            try bucket.withUnsafeMutableBytes { try files[b].read(at: 0, into: $0) }
            files[b].remove()
            try bucket.withUnsafeBytes {
                try Self.emitShuffled($0, recordSize: recordSize, index: { random.index(below: $0) }, body)
            }
        }
        files = []
    }

    /// Bytes reserved by the staging buffers (≤ ``stageBytes`` per bucket), for the tests.
    var stagingCapacity: Int { staged.reduce(0) { $0 + $1.capacity } }

    /// Appends `record` to a partition's or bucket's staging buffer, writing the buffer to
    /// `file` first when the record would not fit: the buffer never exceeds ``stageBytes`` (its
    /// capacity is reserved exactly, so it never doubles), and it is the only staging layer
    /// (a scratch file writes pieces this large at once). - SeeAlso: SPEC §9 "Bounded memory".
    @inline(__always)
    static func stage(_ record: UnsafeRawBufferPointer, in staged: inout [UInt8], to file: any ScratchFile) throws {
        if staged.count + record.count > stageBytes {
            try staged.withUnsafeBytes { try file.append($0) }
            staged.removeAll(keepingCapacity: true)
        }
        if staged.capacity < stageBytes { staged.reserveCapacity(stageBytes) }
        staged.append(contentsOf: record)
    }

    /// Records per piece ``emitShuffled(_:recordSize:index:_:)`` hands on: about 1 MiB, which
    /// stays in cache between the gather and the caller's hashing and writing.
    static func pieceRecords(recordSize: Int) -> Int { max(1, (1 << 20) / recordSize) }

    /// Emits `records` in a Fisher–Yates order, in pieces of whole records: for `i` from the last
    /// record down to 1, record `i` is exchanged with record `index(i + 1)` (uniform below
    /// `i + 1`; the shuffle's generator). The exchanges are made on 4-byte indices, then each
    /// record is copied once, into a piece, instead of swapped through three copies at random
    /// places of the whole bucket: the same draws give the same order as swapping the records
    /// in place (the tests compare both).
    static func emitShuffled(
        _ records: UnsafeRawBufferPointer, recordSize: Int, index: (Int) -> Int,
        _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let n = records.count / recordSize
        guard n > 1 else {
            if n == 1 { try body(records) }
            return
        }
        precondition(n <= Int(UInt32.max), "a bucket holds fewer than 2^32 records")
        var order = [UInt32](unsafeUninitializedCapacity: n) { o, initialized in
            for i in 0..<n { o[i] = UInt32(truncatingIfNeeded: i) }
            initialized = n
        }
        order.withUnsafeMutableBufferPointer { o in
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = index(i + 1)
                guard j != i else { continue }
                o.swapAt(i, j)
            }
        }
        let step = pieceRecords(recordSize: recordSize)
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: min(n, step) * recordSize, alignment: 8)
        defer { piece.deallocate() }
        let src = records.baseAddress!
        var at = 0
        while at < n {
            let count = min(step, n - at)
            for k in 0..<count {
                (piece.baseAddress! + k * recordSize).copyMemory(
                    from: src + Int(order[at + k]) * recordSize, byteCount: recordSize)
            }
            try body(UnsafeRawBufferPointer(rebasing: piece[..<(count * recordSize)]))
            at += count
        }
    }
}

/// Elements with their positions, split into partitions by a seeded hash of the element, so that
/// equal elements always meet in one partition and one partition fits the budget: what lets a
/// round refuse duplicates, and the coordinator join, without holding a whole set.
///
/// Records are `element (32) ‖ position (u64, little-endian)`; partitions are emitted in order,
/// each with its records in append order. With one partition nothing touches the scratch space.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Coordinator".
struct ElementPartitions {
    static let recordSize = 40
    let partitions: Int
    private var files: [any ScratchFile] = []
    private var memory: [UInt8] = []
    private var staged: [[UInt8]]
    private(set) var count = 0

    init(expectedCount: Int, scratch: any ScratchSpace, partitions: Int? = nil, budget: Int = SpillBudget.bytes) throws
    {
        self.partitions =
            partitions ?? SpillBudget.pieces(count: expectedCount, recordSize: Self.recordSize, budget: budget)
        staged = Array(repeating: [], count: self.partitions)
        if self.partitions > 1 {
            for _ in 0..<self.partitions { files.append(try scratch.makeFile()) }
        } else {
            memory.reserveCapacity(expectedCount * Self.recordSize)
        }
    }

    /// Appends the leading 32 bytes of each of `records` (of `recordSize` bytes), numbered from `firstPosition`.
    mutating func append(elementsOf records: UnsafeRawBufferPointer, recordSize: Int, firstPosition: Int) throws {
        let n = records.count / recordSize
        for i in 0..<n {
            let e = records.baseAddress! + i * recordSize
            var pos = UInt64(firstPosition + i).littleEndian
            let p = partitions == 1 ? 0 : ElementJoin.spillPartition(e, of: partitions)
            if partitions == 1 {
                memory.append(contentsOf: UnsafeRawBufferPointer(start: e, count: 32))
                withUnsafeBytes(of: &pos) { memory.append(contentsOf: $0) }
            } else {
                // As ExternalShuffle.stage, for a record made of two pieces.
                if staged[p].count + Self.recordSize > ExternalShuffle.stageBytes {
                    try staged[p].withUnsafeBytes { try files[p].append($0) }
                    staged[p].removeAll(keepingCapacity: true)
                }
                if staged[p].capacity < ExternalShuffle.stageBytes {
                    staged[p].reserveCapacity(ExternalShuffle.stageBytes)
                }
                staged[p].append(contentsOf: UnsafeRawBufferPointer(start: e, count: 32))
                withUnsafeBytes(of: &pos) { staged[p].append(contentsOf: $0) }
            }
        }
        count += n
    }

    /// Bytes reserved by the staging buffers (≤ ``ExternalShuffle/stageBytes`` per partition), for the tests.
    var stagingCapacity: Int { staged.reduce(0) { $0 + $1.capacity } }

    /// One partition, loaded: its elements back to back (for ``ElementJoin/intersect(records:_:)``)
    /// and their positions.
    struct Partition {
        var elements: [UInt8]
        var positions: [UInt64]
    }

    /// Hands each partition to `body` in turn (one held at a time). Consumes the partitions.
    mutating func drain(_ body: (Partition) throws -> Void) throws {
        for p in 0..<partitions { try body(try take(p)) }
        files = []
    }

    static func split(_ raw: [UInt8]) -> Partition {
        let n = raw.count / recordSize
        var elements = [UInt8](repeating: 0, count: n * 32)
        var positions = [UInt64](repeating: 0, count: n)
        raw.withUnsafeBytes { r in
            elements.withUnsafeMutableBytes { e in
                for i in 0..<n {
                    (e.baseAddress! + i * 32).copyMemory(from: r.baseAddress! + i * recordSize, byteCount: 32)
                    positions[i] = UInt64(
                        littleEndian: r.loadUnaligned(fromByteOffset: i * recordSize + 32, as: UInt64.self))
                }
            }
        }
        return Partition(elements: elements, positions: positions)
    }
}

/// Fixed-size records keyed by their leading 32-byte element, split into partitions so that
/// equal elements meet in one partition and a partition fits the budget, when the number of
/// records is not known in advance (a prepare step streams its input): what lets rounds 1 and 2
/// deduplicate their own blinded elements without holding a whole set.
///
/// Records stay in memory until they exceed ``memoryLimit`` (2 MiB, or the budget if smaller);
/// then they are spread over ``fanout`` scratch files by a seeded hash of the element, and later records follow them. A
/// partition found larger than the budget when drained is split again, by an independent hash,
/// into as many pieces as its size needs (a piece that does not shrink, i.e. one element
/// repeated, is taken whole). Within a partition records keep their append order, so the first
/// record of an element there is the first appended.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Rounds 1 and 2".
struct RecordPartitions {
    let recordSize: Int
    let budget: Int
    let level: Int
    private let scratch: any ScratchSpace
    private var memory: [UInt8] = []
    private var files: [any ScratchFile] = []
    private var staged: [[UInt8]] = []
    private(set) var count = 0
    /// Files made at the first spill: 64 × 32 MiB covers 2 GiB of records in one pass, while the
    /// staging buffers (32 KiB each, the only staging layer) stay at 2 MiB.
    static let fanout = 64
    /// Records held before the first spill: as much as the staging buffers it then needs
    /// (``fanout`` × ``ExternalShuffle/stageBytes``, 2 MiB; ``SpillBudget``), or the budget if smaller.
    var memoryLimit: Int { min(budget, Self.fanout * ExternalShuffle.stageBytes) }

    init(recordSize: Int, scratch: any ScratchSpace, budget: Int = SpillBudget.bytes, level: Int = 0) {
        precondition(recordSize >= 32)
        self.recordSize = recordSize
        self.scratch = scratch
        self.budget = budget
        self.level = level
    }

    /// Whether the records have gone to scratch files.
    var spilled: Bool { !files.isEmpty }

    /// The partition of the element at `e` among `n`, by a hash seeded with the split's level
    /// (Swift's per-process random seed makes it unpredictable to whoever chose the inputs).
    static func partition(_ e: UnsafeRawPointer, of n: Int, level: Int) -> Int {
        var h = Hasher()
        h.combine(0x5052_4550_0000 as UInt64 | UInt64(level))
        h.combine(e.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        h.combine(e.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        h.combine(e.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        h.combine(e.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        return Int(UInt64(truncatingIfNeeded: h.finalize()) % UInt64(n))
    }

    /// Appends whole records.
    mutating func append(_ records: UnsafeRawBufferPointer) throws {
        precondition(records.count % recordSize == 0, "partial record")
        count += records.count / recordSize
        if files.isEmpty {
            // Reserved once (untouched pages cost nothing), so growth never holds two copies.
            if memory.capacity == 0 { memory.reserveCapacity(memoryLimit + records.count) }
            memory.append(contentsOf: records)
            if memory.count > memoryLimit { try spill(into: Self.fanout) }
            return
        }
        try distribute(records)
    }

    private mutating func spill(into n: Int) throws {
        for _ in 0..<n { files.append(try scratch.makeFile()) }
        staged = Array(repeating: [], count: n)
        let held = memory
        memory = []
        try held.withUnsafeBytes { try distribute($0) }
    }

    private mutating func distribute(_ records: UnsafeRawBufferPointer) throws {
        let n = records.count / recordSize
        for i in 0..<n {
            let r = UnsafeRawBufferPointer(rebasing: records[(i * recordSize)..<((i + 1) * recordSize)])
            let p = Self.partition(r.baseAddress!, of: files.count, level: level)
            try ExternalShuffle.stage(r, in: &staged[p], to: files[p])
        }
    }

    /// The records, in append order, when they never spilled (one partition in memory): the
    /// buffer itself, handed over so its owner may rewrite it in place. Nil, and nothing
    /// consumed, when they went to scratch files.
    mutating func takeMemory() -> [UInt8]? {
        guard files.isEmpty else { return nil }
        let held = memory
        memory = []
        return held
    }

    /// Hands each partition's records (whole records, in append order) to `body`, one
    /// partition held at a time. Consumes the partitions.
    mutating func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if files.isEmpty {
            let held = memory
            memory = []
            try held.withUnsafeBytes { try body($0) }
            return
        }
        let all = files
        files = []
        for (p, f) in all.enumerated() {
            // The staged tail goes to its file just before the file is read (one buffer at a time).
            try staged[p].withUnsafeBytes { try f.append($0) }
            staged[p] = []
            let size = f.size
            if size > budget && level < 4 {
                // Too large to hold: split again by an independent hash, reading in pieces.
                var sub = RecordPartitions(recordSize: recordSize, scratch: scratch, budget: budget, level: level + 1)
                let pieces = (size + budget - 1) / budget * 2
                try sub.spill(into: pieces)
                let step = max(1, (1 << 20) / recordSize) * recordSize
                var chunk = [UInt8]()
                var at = 0
                while at < size {
                    let n = min(step, size - at)
                    chunk = [UInt8](repeating: 0, count: n)
                    try chunk.withUnsafeMutableBytes { try f.read(at: at, into: $0) }
                    try chunk.withUnsafeBytes { try sub.distribute($0) }
                    at += n
                }
                f.remove()
                sub.count = size / recordSize
                try sub.drainWhole(body, parentSize: size)
            } else {
                var raw = [UInt8](repeating: 0, count: size)
                try raw.withUnsafeMutableBytes { try f.read(at: 0, into: $0) }
                f.remove()
                try raw.withUnsafeBytes { try body($0) }
            }
        }
    }

    /// Drains a re-split partition: a piece that did not shrink (one element repeated) is taken
    /// whole rather than split forever.
    private mutating func drainWhole(_ body: (UnsafeRawBufferPointer) throws -> Void, parentSize: Int) throws {
        for p in 0..<files.count {
            try staged[p].withUnsafeBytes { try files[p].append($0) }
            staged[p] = []
        }
        if files.contains(where: { $0.size >= parentSize }) {
            let all = files
            files = []
            for f in all {
                var raw = [UInt8](repeating: 0, count: f.size)
                try raw.withUnsafeMutableBytes { try f.read(at: 0, into: $0) }
                f.remove()
                try raw.withUnsafeBytes { try body($0) }
            }
            return
        }
        try drain(body)
    }
}

extension ElementPartitions {
    /// Hands partition `p` of `a` and partition `p` of `b` to `body` together, for every `p` in
    /// order (one pair held at a time): two sides partitioned with the same count meet pairwise,
    /// because equal elements go to the same partition on both sides. Consumes both.
    /// - Precondition: `a.partitions == b.partitions`.
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Coordinator".
    static func drainPairs(
        _ a: inout ElementPartitions, _ b: inout ElementPartitions,
        _ body: (_ a: Partition, _ b: Partition) throws -> Void
    ) throws {
        precondition(a.partitions == b.partitions, "paired partitions need one partition count")
        for p in 0..<a.partitions {
            let pa = try a.take(p)
            let pb = try b.take(p)
            try body(pa, pb)
        }
        a.files = []
        b.files = []
    }

    /// Loads partition `p` and releases its storage (each partition is taken once).
    private mutating func take(_ p: Int) throws -> Partition {
        var raw: [UInt8]
        if partitions == 1 {
            raw = memory
            memory = []
        } else {
            try staged[p].withUnsafeBytes { try files[p].append($0) }
            staged[p] = []
            raw = [UInt8](repeating: 0, count: files[p].size)
            try raw.withUnsafeMutableBytes { try files[p].read(at: 0, into: $0) }
            files[p].remove()
        }
        return Self.split(raw)
    }
}
