/// Every value a prepare left out under ``InvalidValuePolicy/skipAndReport``, in input order, in
/// bounded memory.
///
/// Contract: ``count`` counts every skip; ``earliest`` holds the first ``keptInMemory`` of them
/// (what a summary prints); each later one goes to a file of the party's private scratch space as
/// 12 bytes (row, then the indexes of its column name and rule code among the few seen), so an
/// input with millions of invalid values costs disk, not memory. ``forEach(_:)`` yields every skip
/// again, in input order. A skip says where and why, never what: no value is held or written.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", `Protocol/BAD_INPUT.md`.
public struct SkippedValues {
    /// Skips held in memory (and printed by the CLI's summary, which shows up to 50).
    public static let keptInMemory = 100
    static let recordSize = 12

    /// Every skip, the spilled ones included.
    public private(set) var count = 0
    /// The first ``keptInMemory`` skips, in input order.
    public private(set) var earliest: [SkippedValue] = []
    /// Column names and rule codes, by the index a spilled record carries: a handful at most
    /// (the identifier columns and the identifier rules), so a linear search is the fast one.
    private var names: [String] = []
    private var file: (any ScratchFile)?

    /// No skips; the scratch file is made only when a skip goes past ``keptInMemory``.
    public init() {}

    /// Records one skip; the ones after the first ``keptInMemory`` are appended to a scratch file
    /// made on first need.
    mutating func append(_ skip: SkippedValue, scratch: any ScratchSpace) throws {
        count += 1
        guard earliest.count == Self.keptInMemory else {
            earliest.append(skip)
            return
        }
        let column = nameIndex(skip.column)
        let code = nameIndex(skip.code)
        if file == nil { file = try scratch.makeFile() }
        let row = UInt64(skip.row)
        try withUnsafeTemporaryAllocation(byteCount: Self.recordSize, alignment: 1) { r in
            r.storeBytes(of: row.littleEndian, toByteOffset: 0, as: UInt64.self)
            r.storeBytes(of: column.littleEndian, toByteOffset: 8, as: UInt16.self)
            r.storeBytes(of: code.littleEndian, toByteOffset: 10, as: UInt16.self)
            try file!.append(UnsafeRawBufferPointer(r))
        }
    }

    private mutating func nameIndex(_ name: String) -> UInt16 {
        if let i = names.firstIndex(of: name) { return UInt16(i) }
        precondition(names.count < Int(UInt16.max), "column names and rule codes are few")
        names.append(name)
        return UInt16(names.count - 1)
    }

    /// Calls `body` with every skip in input order: the ones in memory, then the spilled ones,
    /// read back 4,096 at a time.
    public func forEach(_ body: (SkippedValue) throws -> Void) throws {
        for s in earliest { try body(s) }
        guard let file else { return }
        // This value's own skips only: a copy taken before later appends shares the file.
        let size = min(file.size, (count - earliest.count) * Self.recordSize)
        var buffer = [UInt8](repeating: 0, count: 4096 * Self.recordSize)
        var offset = 0
        while offset < size {
            let n = min(buffer.count, size - offset)
            try buffer.withUnsafeMutableBytes { b in
                try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<n]))
                for k in stride(from: 0, to: n, by: Self.recordSize) {
                    let row = UInt64(littleEndian: b.loadUnaligned(fromByteOffset: k, as: UInt64.self))
                    let column = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: k + 8, as: UInt16.self)))
                    let code = Int(UInt16(littleEndian: b.loadUnaligned(fromByteOffset: k + 10, as: UInt16.self)))
                    try body(SkippedValue(row: Int(row), column: names[column], code: names[code]))
                }
            }
            offset += n
        }
    }

    /// Every skip in one array: for the in-memory rounds (tests, vectors, fuzzers), whose inputs
    /// are small; a streamed step reads them with ``forEach(_:)`` instead.
    public func all() throws -> [SkippedValue] {
        var out: [SkippedValue] = []
        out.reserveCapacity(count)
        try forEach { out.append($0) }
        return out
    }
}
