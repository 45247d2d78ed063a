import Foundation
import Testing

@testable import Activation

/// Round 5's delivery reads a block's records by spans (``RecordGather``): whatever the gap, each
/// slot holds the record at its position, fewer reads are made as the gap grows, and a read that
/// fails fails only the records that cannot be read alone.
@Suite("Round 5 gathers a block's records by spans")
struct RecordGatherTests {
    /// A scratch file of `count` records of `size` bytes (record i filled from i), counting reads
    /// and failing every read that covers byte `failAt`.
    final class CountingFile: ScratchFile, @unchecked Sendable {
        let bytes: [UInt8]
        let failAt: Int?
        private let lock = NSLock()
        private var readsMade = 0
        var reads: Int { lock.withLock { readsMade } }
        struct Failure: Error, Equatable { let offset: Int }

        init(count: Int, size: Int, failAt: Int? = nil) {
            bytes = (0..<(count * size)).map { UInt8(truncatingIfNeeded: ($0 / size) &* 31 &+ $0 % size) }
            self.failAt = failAt
        }
        var size: Int { bytes.count }
        func append(_ b: UnsafeRawBufferPointer) throws { fatalError("read-only") }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
            precondition(offset >= 0 && offset + buffer.count <= bytes.count)
            lock.withLock { readsMade += 1 }
            if let failAt, (offset..<(offset + buffer.count)).contains(failAt) { throw Failure(offset: offset) }
            bytes.withUnsafeBytes {
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)]))
            }
        }
        func remove() {}
    }

    static func record(_ file: CountingFile, _ position: Int, size: Int) -> [UInt8] {
        Array(file.bytes[(position * size)..<((position + 1) * size)])
    }

    @Test(
        "each slot holds its record, in the block's order, whatever the gap", arguments: [0, 1, 100, 8 << 10, 1 << 30])
    func slotsHoldTheirRecords(gap: Int) {
        let size = 37
        let file = CountingFile(count: 5_000, size: size)
        var rng = SystemRandomNumberGenerator()
        // Random positions (unique, as delivered rows' positions are), some runs of neighbours.
        var positions = Array(Set((0..<600).map { _ in Int.random(in: 0..<5_000, using: &rng) }))
        positions.shuffle(using: &rng)
        positions += [4_999, 0, 2_000, 2_001, 2_002]
        let g = RecordGather(file: file, recordSize: size, gapBytes: gap, positions: positions)
        #expect(g.failures.allSatisfy { $0 == nil })
        for (k, p) in positions.enumerated() {
            #expect(Array(g.records[(k * size)..<((k + 1) * size)]) == Self.record(file, p, size: size), "slot \(k)")
        }
        if gap >= 1 << 30 { #expect(file.reads <= (5_000 * size) / RecordGather.spanBytes + 1) }
        if gap == 0 { #expect(file.reads > positions.count / 2) }
    }

    @Test("a large gap reads a dense block in far fewer reads than records")
    func fewerReads() {
        let size = 178
        let positions = Array(stride(from: 0, to: 100_000, by: 25)).shuffled()
        let one = CountingFile(count: 100_000, size: size)
        _ = RecordGather(file: one, recordSize: size, gapBytes: 0, positions: positions)
        let spans = CountingFile(count: 100_000, size: size)
        _ = RecordGather(file: spans, recordSize: size, gapBytes: 8 << 10, positions: positions)
        #expect(one.reads == positions.count)
        #expect(spans.reads * 10 < positions.count)
    }

    /// A file of 2^50 bytes computed from the offset (so positions past 2^40 can be read).
    final class VirtualFile: ScratchFile, @unchecked Sendable {
        var size: Int { 1 << 50 }
        static func byte(_ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: offset &* 2_654_435_761 >> 7) }
        func append(_ b: UnsafeRawBufferPointer) throws { fatalError("read-only") }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
            for i in 0..<buffer.count { buffer[i] = Self.byte(offset + i) }
        }
        func remove() {}
    }

    @Test("positions past 2^40 records (sorted without packing) still fill their slots")
    func farPositions() {
        let size = 16
        let positions = [(1 << 40) + 5, 3, (1 << 40) + 4, 1 << 45, 7]
        let g = RecordGather(file: VirtualFile(), recordSize: size, gapBytes: 8 << 10, positions: positions)
        for (k, p) in positions.enumerated() {
            #expect(
                Array(g.records[(k * size)..<((k + 1) * size)]) == (0..<size).map { VirtualFile.byte(p * size + $0) },
                "slot \(k)")
        }
    }

    @Test(
        "a failed read fails only the records it cannot read (a failed span is read again record by record)",
        arguments: [0, 8 << 10])
    func failedReadFailsItsSlots(gap: Int) {
        let size = 40
        let bad = 1_234
        let file = CountingFile(count: 3_000, size: size, failAt: bad * size + 7)
        let positions = [2_999, bad, 5, bad + 1, bad - 1, 2_000]
        let g = RecordGather(file: file, recordSize: size, gapBytes: gap, positions: positions)
        #expect(g.failures[1] != nil)
        // Its neighbours share its span when the gap is large; they are read again alone and kept.
        #expect(g.failures.enumerated().allSatisfy { $0.offset == 1 || $0.element == nil }, "only the bad record fails")
        for (k, p) in positions.enumerated() where g.failures[k] == nil {
            #expect(Array(g.records[(k * size)..<((k + 1) * size)]) == Self.record(file, p, size: size))
        }
    }
}
