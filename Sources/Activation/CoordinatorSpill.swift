import Foundation
import Gzip
import RistrettoPSI

// The coordinator's bounded-memory pieces (SPEC §9 "Bounded memory", "Coordinator"): the provider
// row of every provider position, the matched pairs sorted by (row, element) through sorted runs
// on scratch files, and delivery objects written to scratch files with their SHA-256 (and gzip)
// computed on the way.

/// One matched pair: the provider row it belongs to, the matched element (as four big-endian
/// words, so integer order is byte order), and the consumer and provider positions.
struct MatchRecord {
    var row: UInt64
    var e0: UInt64, e1: UInt64, e2: UInt64, e3: UInt64
    var consumerPosition: UInt64
    var providerPosition: UInt64

    init(row: UInt64, element: UnsafeRawPointer, consumerPosition: UInt64, providerPosition: UInt64) {
        self.row = row
        e0 = UInt64(bigEndian: element.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        e1 = UInt64(bigEndian: element.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        e2 = UInt64(bigEndian: element.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        e3 = UInt64(bigEndian: element.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
        self.consumerPosition = consumerPosition
        self.providerPosition = providerPosition
    }

    /// Row first, then the element's bytes: the first record of a row is the row's lowest
    /// matching element, the one whose consumer attributes accompany the row (SPEC §6 round 5).
    @inline(__always)
    static func precedes(_ a: MatchRecord, _ b: MatchRecord) -> Bool {
        if a.row != b.row { return a.row < b.row }
        if a.e0 != b.e0 { return a.e0 < b.e0 }
        if a.e1 != b.e1 { return a.e1 < b.e1 }
        if a.e2 != b.e2 { return a.e2 < b.e2 }
        return a.e3 < b.e3
    }
}

/// Sorts ``MatchRecord``s in bounded memory: records gather in a buffer of about the spill
/// budget, each full buffer is sorted and written to a scratch file as a run, and ``drain(_:)``
/// merges the runs (a binary heap over one block per run). With one run nothing is written.
/// A buffer is sorted as one slice per worker on every core, the slices then merged as they
/// are written or drained (``sortSlices(_:)``), so the sort is not a stretch on one thread.
struct MatchSorter {
    static let recordSize = MemoryLayout<MatchRecord>.stride
    static let blockRecords = 1024
    let capacity: Int
    let scratch: any ScratchSpace
    private var buffer: [MatchRecord] = []
    private var runs: [(file: any ScratchFile, count: Int)] = []
    private(set) var count = 0

    /// - Parameters:
    ///   - scratch: where each full buffer is written as a sorted run.
    ///   - budget: bytes a buffer aims at (64 records at least).
    ///   - expected: an upper bound on the records to come (sizes the first buffer).
    init(scratch: any ScratchSpace, budget: Int, expected: Int) {
        self.scratch = scratch
        let byBudget = max(64, budget / Self.recordSize)
        // As many runs as SpillBudget balances for the expected records (the merge holds one
        // block of ≈ 56 KiB per run), so a buffer is not sized for the whole set.
        let runs = SpillBudget.pieces(count: expected, recordSize: Self.recordSize, budget: budget)
        capacity = runs > 1 ? max(64, min(byBudget, (expected + runs - 1) / runs)) : byBudget
        buffer.reserveCapacity(min(capacity, expected))
    }

    var runCount: Int { runs.count }

    mutating func append(_ r: MatchRecord) throws {
        buffer.append(r)
        count += 1
        if buffer.count == capacity { try spill() }
    }

    private mutating func spill() throws {
        let slices = Self.sortSlices(&buffer)
        let file = try scratch.makeFile()
        if slices.count == 1 {
            try buffer.withUnsafeBytes { try file.append($0) }
        } else {
            // The slices merged into the run through one staged block (no second buffer).
            var staged: [MatchRecord] = []
            staged.reserveCapacity(Self.blockRecords)
            try Self.merge(buffer, slices) { r in
                staged.append(r)
                if staged.count == Self.blockRecords {
                    try staged.withUnsafeBytes { try file.append($0) }
                    staged.removeAll(keepingCapacity: true)
                }
            }
            try staged.withUnsafeBytes { try file.append($0) }
        }
        runs.append((file, buffer.count))
        buffer.removeAll(keepingCapacity: true)
    }

    /// Records from which a buffer is sorted as slices on every core.
    static let parallelSortRecords = 1024

    /// Sorts `buffer` as one slice per worker, the slices on every core at once, and returns the
    /// slices (one when there is one worker or few records), to be merged. Every record's key
    /// (row, element) is distinct, so the merged order is the one a single sort gives.
    static func sortSlices(_ buffer: inout [MatchRecord]) -> [Range<Int>] {
        let n = buffer.count
        let pieces = n >= parallelSortRecords ? Parallel.workerCount : 1
        guard pieces > 1 else {
            buffer.sort(by: MatchRecord.precedes)
            return [0..<n]
        }
        let slices = (0..<pieces).map { (n * $0 / pieces)..<(n * ($0 + 1) / pieces) }
        buffer.withUnsafeMutableBufferPointer { b in
            let base = SendableRecords(b)
            DispatchQueue.concurrentPerform(iterations: pieces) { i in
                var slice = UnsafeMutableBufferPointer(rebasing: base.records[slices[i]])
                slice.sort(by: MatchRecord.precedes)
            }
        }
        return slices
    }

    /// Hands the records of sorted `slices` of `buffer` to `body` in order (a scan of the few
    /// slices' heads per record).
    static func merge(_ buffer: [MatchRecord], _ slices: [Range<Int>], _ body: (MatchRecord) throws -> Void) rethrows {
        var at = slices.map(\.lowerBound)
        while true {
            var best = -1
            for i in slices.indices where at[i] < slices[i].upperBound {
                if best < 0 || MatchRecord.precedes(buffer[at[i]], buffer[at[best]]) { best = i }
            }
            if best < 0 { return }
            try body(buffer[at[best]])
            at[best] += 1
        }
    }

    /// A buffer's records handed to the sorting threads, each of which sorts its own slice.
    private struct SendableRecords: @unchecked Sendable {
        let records: UnsafeMutableBufferPointer<MatchRecord>
        init(_ records: UnsafeMutableBufferPointer<MatchRecord>) { self.records = records }
    }

    /// Hands every record to `body` in (row, element) order. Consumes the sorter.
    mutating func drain(_ body: (MatchRecord) throws -> Void) throws {
        if runs.isEmpty {
            let slices = Self.sortSlices(&buffer)
            if slices.count == 1 {
                for r in buffer { try body(r) }
            } else {
                try Self.merge(buffer, slices, body)
            }
            buffer = []
            return
        }
        if !buffer.isEmpty { try spill() }
        buffer = []
        // One cursor per run: a block of records read from its file.
        var blocks = [[MatchRecord]](repeating: [], count: runs.count)
        var next = [Int](repeating: 0, count: runs.count)  // next record of the run to load
        var at = [Int](repeating: 0, count: runs.count)  // position inside the block
        func load(_ k: Int) throws -> Bool {
            let n = min(Self.blockRecords, runs[k].count - next[k])
            guard n > 0 else {
                blocks[k] = []
                return false
            }
            var block = [MatchRecord](unsafeUninitializedCapacity: n) { _, c in c = n }
            try block.withUnsafeMutableBytes { try runs[k].file.read(at: next[k] * Self.recordSize, into: $0) }
            blocks[k] = block
            next[k] += n
            at[k] = 0
            return true
        }
        var heap: [Int] = []
        func less(_ a: Int, _ b: Int) -> Bool { MatchRecord.precedes(blocks[a][at[a]], blocks[b][at[b]]) }
        func siftDown(_ i0: Int) {
            var i = i0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < heap.count && less(heap[l], heap[m]) { m = l }
                if r < heap.count && less(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m)
                i = m
            }
        }
        for k in 0..<runs.count where try load(k) { heap.append(k) }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
        while let k = heap.first {
            try body(blocks[k][at[k]])
            at[k] += 1
            if at[k] == blocks[k].count, !(try load(k)) {
                heap[0] = heap[heap.count - 1]
                heap.removeLast()
            }
            if !heap.isEmpty { siftDown(0) }
        }
        for r in runs { r.file.remove() }
        runs = []
    }
}

/// The provider row of each provider position, from the verified private copy of the payload:
/// in memory when it fits the spill budget (8 bytes a position), else in a scratch file read
/// one row at a time.
struct RowTable {
    private var memory: [UInt64]?
    private let file: (any ScratchFile)?
    private var staged: [UInt8] = []

    init(count: Int, budget: Int, scratch: any ScratchSpace) throws {
        if count * 8 <= budget {
            memory = []
            memory!.reserveCapacity(count)
            file = nil
        } else {
            memory = nil
            file = try scratch.makeFile()
        }
    }

    /// Appends the rows of whole payload records (each starts with its row, big-endian).
    mutating func append(records: UnsafeRawBufferPointer, recordSize: Int) throws {
        let n = records.count / recordSize
        if memory != nil {
            for i in 0..<n {
                memory!.append(
                    UInt64(bigEndian: records.loadUnaligned(fromByteOffset: i * recordSize, as: UInt64.self)))
            }
            return
        }
        staged.removeAll(keepingCapacity: true)
        for i in 0..<n {
            staged.append(
                contentsOf: UnsafeRawBufferPointer(rebasing: records[(i * recordSize)..<(i * recordSize + 8)]))
        }
        try staged.withUnsafeBytes { try file!.append($0) }
    }

    func row(_ position: UInt64) throws -> UInt64 {
        if let memory { return memory[Int(position)] }
        var v: UInt64 = 0
        try withUnsafeMutableBytes(of: &v) { try file!.read(at: Int(position) * 8, into: $0) }
        return UInt64(bigEndian: v)
    }
}

/// One delivery object written to a scratch file as its lines come: gzip-compressed on the way
/// when asked, and SHA-256 of the stored bytes computed while writing.
final class DeliveryObjectWriter {
    let name: String
    private let file: any ScratchFile
    private let compressor: Gzip.Compressor?
    private var hasher = SHA256.Hasher()
    private var staged: [UInt8] = []
    private(set) var records = 0
    static let stageBytes = 64 << 10

    init(name: String, gzip: Bool, scratch: any ScratchSpace) throws {
        self.name = name
        file = try scratch.makeFile()
        do { compressor = gzip ? try Gzip.Compressor() : nil } catch {
            throw ActivationError(.cryptoFailure, "compressing the delivery failed: \(error.code.rawValue)")
        }
        staged.reserveCapacity(Self.stageBytes)
    }

    func write(_ bytes: [UInt8]) throws {
        staged += bytes
        if staged.count >= Self.stageBytes { try flush() }
    }

    func line(_ bytes: [UInt8]) throws {
        try write(bytes)
        records += 1
    }

    private func flush() throws {
        guard !staged.isEmpty else { return }
        if let compressor {
            do { try store(try compressor.compress(staged)) } catch let e as Gzip.Error {
                throw ActivationError(.cryptoFailure, "compressing the delivery failed: \(e.code.rawValue)")
            }
        } else {
            try store(staged)
        }
        staged.removeAll(keepingCapacity: true)
    }

    private func store(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        try bytes.withUnsafeBytes { b in
            hasher.update(b)
            try file.append(b)
        }
    }

    /// The finished object (its content is the scratch file, kept alive by the plan).
    func finish() throws -> DeliveryPlan.Object {
        try flush()
        if let compressor {
            do { try store(try compressor.finish()) } catch let e as Gzip.Error {
                throw ActivationError(.cryptoFailure, "compressing the delivery failed: \(e.code.rawValue)")
            }
        }
        return DeliveryPlan.Object(
            name: name, content: ObjectContent(file: file), sha256: hasher.finalize(), records: records)
    }
}
