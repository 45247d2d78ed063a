import Foundation
import RistrettoPSI
import Testing

@testable import Activation
@testable import Workflow

/// Memory per scratch file is small and fixed whatever the set size (SPEC §9 "Bounded memory"):
/// one staging layer (the spilling algorithm's, ≤ 64 KiB per partition or bucket), files that
/// write such pieces at once and buffer only small appends, and the same content as the
/// in-memory scratch space with hundreds of partitions open on real files.
@Suite("Scratch files: fixed memory per file")
struct ScratchMemoryTests {
    static func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-scratch-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Deterministic distinct 32-byte values (distinct by their first 8 bytes).
    static func elements(_ n: Int, salt: UInt64 = 0) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(n * 32)
        for i in 0..<n {
            var x = (UInt64(i) &+ salt) &* 0x9E37_79B9_7F4A_7C15
            for _ in 0..<4 {
                withUnsafeBytes(of: x) { out.append(contentsOf: $0) }
                x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            }
        }
        return out
    }

    /// Descriptors of this process open on files under `dir` (other tests run in parallel, so
    /// only this test's directory counts).
    static func openDescriptors(under dir: String) -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter {
            ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) ?? "").hasPrefix(
                dir + "/")
        }.count
    }

    /// Appends of every size, reads in between: the file holds exactly what was appended, in
    /// order; large appends allocate no buffer, small ones at most `bufferSize`, a read frees it.
    @Test(
        "a scratch file keeps every byte in order and buffers only small appends",
        arguments: [1, 40, 16 << 10, 65_520, 300_000])
    func fileContentAndBuffer(piece: Int) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = try DirectoryScratch(directory: dir).makeFile() as! DirectoryScratch.File
        let mirror = try MemoryScratch().makeFile()
        let data = Self.elements(20_000)  // 640,000 bytes
        var at = 0
        var reads = 0
        while at < data.count {
            let end = min(data.count, at + piece + (at / piece) % 7)  // sizes vary around `piece`
            try data[at..<end].withUnsafeBytes {
                try file.append($0)
                try mirror.append($0)
            }
            // (malloc may round the reserved capacity up by a few bytes)
            #expect(file.heldBytes <= DirectoryScratch.File.bufferSize + 64)
            if end - at >= DirectoryScratch.File.directBytes {
                #expect(file.heldBytes == 0, "a large append was buffered")
            }
            at = end
            if at % 3 == 0 && reads < 50 {
                // A read in the middle sees everything appended so far and releases the buffer.
                reads += 1
                var head = [UInt8](repeating: 0, count: min(at, 1000))
                try head.withUnsafeMutableBytes { try file.read(at: at - $0.count, into: $0) }
                #expect(head == Array(data[(at - head.count)..<at]))
                #expect(file.heldBytes == 0)
            }
        }
        #expect(file.size == data.count && mirror.size == data.count)
        var back = [UInt8](repeating: 0, count: data.count)
        try back.withUnsafeMutableBytes { try file.read(at: 0, into: $0) }
        #expect(back == data)
        #expect(file.heldBytes == 0)
    }

    /// Hundreds of partitions on real files (a tiny budget): the partitions drained are those of
    /// the in-memory scratch space, record for record; staging never exceeds 32 KiB
    /// (``ExternalShuffle/stageBytes``) per partition and the files hold no buffer while they fill; every descriptor is closed after.
    @Test(
        "element partitions on files equal the in-memory ones, with fixed memory per partition",
        arguments: [4096, 1 << 20])
    func elementPartitionsOnFiles(budget: Int) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 60_000
        let a = Self.elements(n)
        let b = Self.elements(n, salt: UInt64(n / 2))  // n/2 in common
        let count = SpillBudget.pieces(count: 2 * n, recordSize: ElementPartitions.recordSize, budget: budget)
        if budget == 4096 { #expect(count > 1000, "the budget forces over a thousand partitions in all") }
        func drained(_ scratch: any ScratchSpace) throws -> (pairs: [[UInt8]], staging: Int, held: Int) {
            var pa = try ElementPartitions(expectedCount: n, scratch: scratch, partitions: count)
            var pb = try ElementPartitions(expectedCount: n, scratch: scratch, partitions: count)
            for k in stride(from: 0, to: n, by: 7_000) {
                let m = min(7_000, n - k)
                try a.withUnsafeBytes {
                    try pa.append(
                        elementsOf: UnsafeRawBufferPointer(rebasing: $0[(k * 32)..<((k + m) * 32)]), recordSize: 32,
                        firstPosition: k)
                }
                try b.withUnsafeBytes {
                    try pb.append(
                        elementsOf: UnsafeRawBufferPointer(rebasing: $0[(k * 32)..<((k + m) * 32)]), recordSize: 32,
                        firstPosition: k)
                }
            }
            let staging = pa.stagingCapacity + pb.stagingCapacity
            if scratch is DirectoryScratch && count > 1 { #expect(Self.openDescriptors(under: dir) == 2 * count) }
            var out: [[UInt8]] = []
            try ElementPartitions.drainPairs(&pa, &pb) { x, y in
                out.append(x.elements + y.elements + x.positions.flatMap { withUnsafeBytes(of: $0) { Array($0) } })
            }
            return (out, staging, 0)
        }
        let onFiles = try drained(DirectoryScratch(directory: dir + "/scratch"))
        let inMemory = try drained(MemoryScratch())
        #expect(onFiles.pairs.count == count)
        #expect(onFiles.pairs == inMemory.pairs)
        if count > 1 { #expect(onFiles.staging <= 2 * count * (ExternalShuffle.stageBytes + 64)) }
        #expect(Self.openDescriptors(under: dir) == 0, "a partition file was left open")
    }

    /// Records partitioned by a hash spill to 64 files, then re-split: the same partitions, in the
    /// same order, on files as in memory.
    @Test("record partitions on files equal the in-memory ones")
    func recordPartitionsOnFiles() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = Self.elements(40_000) + Self.elements(2_000)  // 2,000 repeated elements
        func drained(_ scratch: any ScratchSpace) throws -> [[UInt8]] {
            var parts = RecordPartitions(recordSize: 32, scratch: scratch, budget: 16_384)
            try data.withUnsafeBytes { try parts.append($0) }
            #expect(parts.spilled)
            var out: [[UInt8]] = []
            try parts.drain { out.append(Array($0)) }
            return out
        }
        let onFiles = try drained(DirectoryScratch(directory: dir + "/scratch"))
        #expect(onFiles == (try drained(MemoryScratch())))
        #expect(onFiles.reduce(0) { $0 + $1.count } == data.count)
    }

    /// The bucket shuffle on hundreds of files: each record once, staging bounded per bucket.
    @Test("the bucket shuffle on files emits each record once, with fixed memory per bucket")
    func shuffleOnFiles() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = Self.elements(50_000)
        var s = try ExternalShuffle(
            recordSize: 32, expectedCount: 50_000, scratch: DirectoryScratch(directory: dir + "/scratch"), budget: 4096)
        #expect(s.buckets == 391)
        try data.withUnsafeBytes { try s.append($0) }
        #expect(s.stagingCapacity <= s.buckets * (ExternalShuffle.stageBytes + 64))
        var out = [UInt8]()
        try s.drain { out += $0 }
        let chunk = { (b: [UInt8]) in stride(from: 0, to: b.count, by: 32).map { Array(b[$0..<($0 + 32)]) } }
        #expect(
            chunk(out).sorted { $0.lexicographicallyPrecedes($1) }
                == chunk(data).sorted { $0.lexicographicallyPrecedes($1) })
    }

    /// The CLI raises its soft limit on open files to the hard limit (one descriptor per partition).
    @Test("the open-file soft limit is raised to the hard limit")
    func openFileLimit() throws {
        let soft = Files.raiseOpenFileLimit()
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        #expect(limit.rlim_cur == limit.rlim_max)
        #expect(soft == (limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)))
    }
}
