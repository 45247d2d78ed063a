import Dispatch

/// A flat open-addressing hash index over the 32-byte records of one ``ElementBatch``: the
/// coordinator's hash set of one side, and every party's duplicate check.
///
/// Contract: built once from a batch (which it keeps, not copies: ``ElementBatch`` is copy-on-write),
/// then read-only; lookups take raw 32-byte records, so probing the other side allocates nothing.
/// Each slot is 8 bytes: the record index + 1 (low 32 bits, 0 = empty) and 32 bits of the
/// record's hash (high bits), so a probe touches a record only when the hash bits agree: a miss
/// costs one cache line of table instead of a random read of a record as well. Load factor ≤ 1/2,
/// so the index of n elements costs 32·n bytes of records plus at most 32·n bytes of table.
/// Thread-safety: immutable after construction, safe to share.
///
/// Why not `Dictionary<RistrettoElement, Int>`: it stores a 40-byte key/value per entry plus
/// metadata and hashes through the generic `Hashable` path; the coordinator must intersect at
/// ≥ 10 million elements per second (issue 6), which a flat table reaches with room to spare.
/// Why a seeded hash: the elements are public values that a malicious party can choose, so the
/// bucket is taken from Swift's per-process randomly seeded SipHash (`Hasher`) over the record,
/// not from its raw bytes, and crafted collisions cannot turn matching quadratic.
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5 and §11 "Timing and resource exhaustion".
public struct ElementIndex: Sendable {
    /// The indexed records.
    public let batch: ElementBatch
    /// Per slot: hash tag (high 32 bits) | record index + 1 (low 32 bits); 0 = empty.
    private var slots: [UInt64]
    private let mask: Int

    /// The index of `batch`, or the first duplicate found: `(first, second)` record indices with
    /// `first < second` and equal encodings.
    public static func build(_ batch: ElementBatch) -> (index: ElementIndex, duplicate: (first: Int, second: Int)?) {
        precondition(batch.count < Int(Int32.max), "an element index holds fewer than 2^31 - 1 elements")
        var capacity = 16
        while capacity < batch.count * 2 { capacity <<= 1 }
        var index = ElementIndex(batch: batch, slots: [UInt64](repeating: 0, count: capacity), mask: capacity - 1)
        let duplicate = index.fill()
        return (index, duplicate)
    }

    private mutating func fill() -> (first: Int, second: Int)? {
        let mask = self.mask
        return batch.withUnsafeBytes { records in
            slots.withUnsafeMutableBufferPointer { table in
                let base = records.baseAddress
                for i in 0..<batch.count {
                    let r = base!.advanced(by: i * RistrettoElement.byteCount)
                    let h = ElementIndex.bucket(r)
                    let tag = UInt64(truncatingIfNeeded: h) & 0xffff_ffff_0000_0000
                    var s = h & mask
                    while true {
                        let held = table[s]
                        if held == 0 {
                            table[s] = tag | UInt64(i + 1)
                            break
                        }
                        if held & 0xffff_ffff_0000_0000 == tag {
                            let j = Int(held & 0xffff_ffff) - 1
                            if ElementIndex.equal(base!.advanced(by: j * RistrettoElement.byteCount), r) {
                                return (j, i)
                            }
                        }
                        s = (s + 1) & mask
                    }
                }
                return nil
            }
        }
    }

    /// The batch index of the record equal to the 32 bytes at `record`, if any.
    public func firstIndex(ofRecord record: UnsafeRawPointer) -> Int? {
        batch.withUnsafeBytes { records in
            slots.withUnsafeBufferPointer { table in
                let h = ElementIndex.bucket(record)
                let tag = UInt64(truncatingIfNeeded: h) & 0xffff_ffff_0000_0000
                var s = h & mask
                while true {
                    let held = table[s]
                    if held == 0 { return nil }
                    if held & 0xffff_ffff_0000_0000 == tag {
                        let j = Int(held & 0xffff_ffff) - 1
                        if ElementIndex.equal(records.baseAddress!.advanced(by: j * RistrettoElement.byteCount), record)
                        {
                            return j
                        }
                    }
                    s = (s + 1) & mask
                }
            }
        }
    }

    /// The batch index of `element`, if indexed.
    public func firstIndex(of element: RistrettoElement) -> Int? {
        element.withUnsafeBytes { firstIndex(ofRecord: $0.baseAddress!) }
    }

    /// Calls `body(i, j)` for each record `i` of `other` (in order) equal to record `j` of the index.
    public func forEachMatch(in other: ElementBatch, _ body: (Int, Int) throws -> Void) rethrows {
        try other.withUnsafeBytes { probe in
            for i in 0..<other.count {
                if let j = firstIndex(ofRecord: probe.baseAddress!.advanced(by: i * RistrettoElement.byteCount)) {
                    try body(i, j)
                }
            }
        }
    }

    /// Every record of `other` equal to a record of the index, as `(i, j)` (record `i` of `other`,
    /// record `j` of the index) in `other`'s order; the probes run on every core (read-only table).
    public func matches(in other: ElementBatch) -> [(Int, Int)] {
        let n = other.count
        let workers = Parallel.workerCount
        let chunks = workers == 1 ? 1 : min(workers * 4, max(1, n / 4096))
        var perChunk = [[(Int, Int)]](repeating: [], count: chunks)
        other.withUnsafeBytes { probe in
            perChunk.withUnsafeMutableBufferPointer { slots in
                let slotsBox = UnsafeSendable(slots)
                let probeBox = UnsafeSendable(probe)
                let selfBox = UnsafeSendable(self)
                let work: @Sendable (Int) -> Void = { c in
                    var found: [(Int, Int)] = []
                    for i in (n * c / chunks)..<(n * (c + 1) / chunks) {
                        let r = probeBox.value.baseAddress!.advanced(by: i * RistrettoElement.byteCount)
                        if let j = selfBox.value.firstIndex(ofRecord: r) { found.append((i, j)) }
                    }
                    slotsBox.value[c] = found
                }
                if chunks == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: work) }
            }
        }
        return perChunk.flatMap { $0 }
    }

    /// Seeded SipHash of the record's four words (see the type's note on crafted collisions).
    @inline(__always)
    static func bucket(_ r: UnsafeRawPointer) -> Int {
        var h = Hasher()
        h.combine(r.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        h.combine(r.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        h.combine(r.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        h.combine(r.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        return h.finalize()
    }

    /// Equality of two public 32-byte records (no secret involved, so no constant-time compare).
    @inline(__always)
    static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> Bool {
        a.loadUnaligned(fromByteOffset: 0, as: UInt64.self) == b.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            && a.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
                == b.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            && a.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
                == b.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            && a.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
                == b.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
    }
}

/// The coordinator's intersection of two batches as a partitioned hash join: both sides are split
/// by the seeded hash into cache-sized partitions, and each partition is deduplicated and joined
/// in a small table, partitions in parallel on every core.
///
/// Contract: same answers as ``ElementIndex`` (build `a`, probe with `b`): the duplicate reported
/// for a side is the one a sequential scan finds first (smallest second index), and matches come
/// in `b`'s order. Why partitioned: a single table over a million elements misses the cache on
/// almost every probe (≈ 4.5 M elements/s measured); partitions that fit in cache, walked in
/// order, keep matching well above 10 M elements/s and are the same structure a join that spills
/// to disk uses (`Protocol/SPEC.md` §9 "Bounded memory").
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5 and §9 "Resource exhaustion".
public enum ElementJoin {
    /// What a join found: the first duplicate on each side and every match, with indices into the
    /// original batches (or record runs).
    public struct Outcome: Sendable {
        /// First duplicate pair in `a` (`first < second`), if any.
        public let duplicateInA: (first: Int, second: Int)?
        /// First duplicate pair in `b`, if any.
        public let duplicateInB: (first: Int, second: Int)?
        /// `(i, j)`: record `i` of `b` equals record `j` of `a`, in increasing `i`.
        public let matches: [(Int, Int)]
    }

    /// Elements per partition aimed at (a table of twice as many 8-byte slots stays in L2).
    static let partitionTarget = 16_384

    /// Joins `a` (the build side) with `b` (the probe side); see the type's contract for which
    /// duplicate is reported and the order of the matches.
    public static func intersect(_ a: ElementBatch, _ b: ElementBatch) -> Outcome {
        intersect(a, b, partitionTarget: partitionTarget)
    }

    /// `partitionTarget` is a parameter so that the tests can force many partitions on small sets.
    static func intersect(_ a: ElementBatch, _ b: ElementBatch, partitionTarget: Int) -> Outcome {
        a.withUnsafeBytes { ra in
            b.withUnsafeBytes { rb in intersect(records: ra, rb, partitionTarget: partitionTarget) }
        }
    }

    /// The same join over raw 32-byte records compared byte for byte (no group semantics): for
    /// partitions of already validated elements that a bounded-memory round spilled to its own
    /// scratch files and read back (`Protocol/SPEC.md` §9 "Bounded memory").
    public static func intersect(records a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Outcome {
        intersect(records: a, b, partitionTarget: partitionTarget)
    }

    /// Which of `partitions` spill partitions a 32-byte record belongs to: a seeded SipHash
    /// independent of the one the in-memory join partitions and probes with (so a spilled
    /// partition does not collapse into one in-memory partition), and unpredictable to whoever
    /// chose the elements (so nobody can pile a set into one partition).
    public static func spillPartition(_ record: UnsafeRawPointer, of partitions: Int) -> Int {
        var h = Hasher()
        h.combine(0x5350_494c_4c00 as UInt64)
        h.combine(record.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        h.combine(record.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        h.combine(record.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        h.combine(record.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        return Int(UInt64(truncatingIfNeeded: h.finalize()) % UInt64(partitions))
    }

    static func intersect(records a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, partitionTarget: Int)
        -> Outcome
    {
        precondition(a.count % 32 == 0 && b.count % 32 == 0, "32-byte records")
        let aCount = a.count / 32
        let bCount = b.count / 32
        precondition(
            aCount < Int(Int32.max) && bCount < Int(Int32.max), "a join side holds fewer than 2^31 - 1 elements")
        var bits = 0
        while (aCount + bCount) >> bits > partitionTarget && bits < 16 { bits += 1 }
        let partitions = 1 << bits
        // Radix-partition both sides in one sequential pass each: records, hashes and original
        // indices are copied partition by partition, so the per-partition work stays in cache.
        let pa = Partitioned(a, hashes: hashes(a), bits: bits)
        let pb = Partitioned(b, hashes: hashes(b), bits: bits)
        var dupA = [(Int, Int)?](repeating: nil, count: partitions)
        var dupB = [(Int, Int)?](repeating: nil, count: partitions)
        var matchOf = [Int32](repeating: -1, count: bCount)
        pa.records.withUnsafeBytes { ra in
            pb.records.withUnsafeBytes { rb in
                dupA.withUnsafeMutableBufferPointer { da in
                    dupB.withUnsafeMutableBufferPointer { db in
                        matchOf.withUnsafeMutableBufferPointer { mo in
                            let box = UnsafeSendable((ra, rb, da, db, mo))
                            let work: @Sendable (Int) -> Void = { p in
                                let (ra, rb, da, db, mo) = box.value
                                let aRange = pa.starts[p]..<pa.starts[p + 1]
                                let bRange = pb.starts[p]..<pb.starts[p + 1]
                                var table = [UInt64]()
                                da[p] = insertAll(aRange, pa.hashes, ra, into: &table).map {
                                    (Int(pa.order[$0.0]), Int(pa.order[$0.1]))
                                }
                                var tableB = [UInt64]()
                                db[p] = insertAll(bRange, pb.hashes, rb, into: &tableB).map {
                                    (Int(pb.order[$0.0]), Int(pb.order[$0.1]))
                                }
                                let mask = table.count - 1
                                for k in bRange {
                                    if let j = lookup(
                                        rb.baseAddress!.advanced(by: k * 32), pb.hashes[k], table, mask, ra)
                                    {
                                        mo[Int(pb.order[k])] = pa.order[j]
                                    }
                                }
                            }
                            if partitions == 1 || Parallel.workerCount == 1 {
                                for p in 0..<partitions { work(p) }
                            } else {
                                DispatchQueue.concurrentPerform(iterations: partitions, execute: work)
                            }
                        }
                    }
                }
            }
        }
        var matches: [(Int, Int)] = []
        for (i, j) in matchOf.enumerated() where j >= 0 { matches.append((i, Int(j))) }
        func first(_ d: [(Int, Int)?]) -> (first: Int, second: Int)? {
            d.compactMap { $0 }.min { $0.1 < $1.1 }.map { (first: $0.0, second: $0.1) }
        }
        return Outcome(duplicateInA: first(dupA), duplicateInB: first(dupB), matches: matches)
    }

    /// Seeded hashes of every record, in parallel.
    static func hashes(_ records: UnsafeRawBufferPointer) -> [UInt64] {
        let count = records.count / 32
        var out = [UInt64](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { o in
            _ = Parallel.firstFailure(count: count) { i in
                o[i] = UInt64(truncatingIfNeeded: ElementIndex.bucket(records.baseAddress!.advanced(by: i * 32)))
            }
        }
        return out
    }

    /// One side grouped by the top `bits` of the hash (a stable counting sort): partition `p` is
    /// local positions `starts[p]..<starts[p + 1]`; `order[k]` is the original index of local `k`,
    /// `hashes[k]` its hash and `records[32k..<32k+32]` its bytes.
    struct Partitioned: Sendable {
        let starts: [Int]
        let order: [Int32]
        let hashes: [UInt64]
        let records: [UInt8]

        init(_ src: UnsafeRawBufferPointer, hashes h: [UInt64], bits: Int) {
            let partitions = 1 << bits
            func part(_ x: UInt64) -> Int { bits == 0 ? 0 : Int(x >> UInt64(64 - bits)) }
            var starts = [Int](repeating: 0, count: partitions + 1)
            for x in h { starts[part(x) + 1] += 1 }
            for p in 0..<partitions { starts[p + 1] += starts[p] }
            var next = starts
            var order = [Int32](repeating: 0, count: h.count)
            var hashes = [UInt64](repeating: 0, count: h.count)
            var records = [UInt8](repeating: 0, count: h.count * 32)
            records.withUnsafeMutableBytes { dst in
                for (i, x) in h.enumerated() {
                    let p = part(x)
                    let k = next[p]
                    next[p] = k + 1
                    order[k] = Int32(i)
                    hashes[k] = x
                    dst.baseAddress!.advanced(by: k * 32).copyMemory(
                        from: src.baseAddress!.advanced(by: i * 32), byteCount: 32)
                }
            }
            self.starts = starts
            self.order = order
            self.hashes = hashes
            self.records = records
        }
    }

    /// Inserts the records in order into a fresh table; returns the first duplicate pair.
    static func insertAll(
        _ positions: Range<Int>, _ hashes: [UInt64], _ records: UnsafeRawBufferPointer,
        into table: inout [UInt64]
    ) -> (Int, Int)? {
        var capacity = 16
        while capacity < positions.count * 2 { capacity <<= 1 }
        table = [UInt64](repeating: 0, count: capacity)
        let mask = capacity - 1
        var duplicate: (Int, Int)?
        table.withUnsafeMutableBufferPointer { t in
            for i in positions {
                let r = records.baseAddress!.advanced(by: i * 32)
                let h = hashes[i]
                let tag = h & 0xffff_ffff_0000_0000
                var s = Int(truncatingIfNeeded: h) & mask
                while true {
                    let held = t[s]
                    if held == 0 {
                        t[s] = tag | UInt64(i + 1)
                        break
                    }
                    if held & 0xffff_ffff_0000_0000 == tag {
                        let j = Int(held & 0xffff_ffff) - 1
                        if ElementIndex.equal(records.baseAddress!.advanced(by: j * 32), r) {
                            if duplicate == nil { duplicate = (j, i) }
                            break
                        }
                    }
                    s = (s + 1) & mask
                }
            }
        }
        return duplicate
    }

    static func lookup(
        _ r: UnsafeRawPointer, _ h: UInt64, _ table: [UInt64], _ mask: Int, _ records: UnsafeRawBufferPointer
    ) -> Int? {
        let tag = h & 0xffff_ffff_0000_0000
        var s = Int(truncatingIfNeeded: h) & mask
        while true {
            let held = table[s]
            if held == 0 { return nil }
            if held & 0xffff_ffff_0000_0000 == tag {
                let j = Int(held & 0xffff_ffff) - 1
                if ElementIndex.equal(records.baseAddress!.advanced(by: j * 32), r) { return j }
            }
            s = (s + 1) & mask
        }
    }
}
