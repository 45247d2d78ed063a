/// One data record: its fields as raw bytes, and where it starts in the file.
///
/// Fields are unquoted (`""` inside a quoted field becomes one `"`) but otherwise exactly the
/// file's bytes: not decoded, not trimmed, not required to be UTF-8; the identifier normalizer
/// decides what they mean. A record is a random-access collection of its fields. All fields share
/// one byte buffer, which the reader reuses for the next record when no record still refers to it.
///
/// `description` and reflection never show the field bytes, which are personal data.
/// - SeeAlso: `Protocol/SPEC.md` §"Input files"
public struct CSVRecord: RandomAccessCollection, Sendable, CustomStringConvertible, CustomReflectable {
    /// The unquoted bytes of all fields, back to back.
    @usableFromInline let bytes: [UInt8]
    /// The end offset in `bytes` of each field; field `i` is `bytes[ends[i-1]..<ends[i]]`.
    @usableFromInline let ends: [Int]
    /// The 1-based line on which the record starts (quoted line breaks make records span lines).
    public let line: Int
    /// The 1-based data-row number; the header is not counted, so the first data record is row 1.
    public let row: Int

    init(bytes: [UInt8], ends: [Int], line: Int, row: Int) {
        self.bytes = bytes
        self.ends = ends
        self.line = line
        self.row = row
    }

    /// Always 0: positions are 0-based field numbers.
    public var startIndex: Int { 0 }
    /// The number of fields.
    public var endIndex: Int { ends.count }

    /// The bytes of field `index` (0-based; `index < count`), sharing the record's storage.
    public subscript(index: Int) -> ArraySlice<UInt8> {
        bytes[(index == 0 ? 0 : ends[index - 1])..<ends[index]]
    }

    /// The field in the column `name` of `header`, or `nil` if the header has no such column.
    public subscript(column name: String, in header: Header) -> ArraySlice<UInt8>? {
        header.index(of: name).map { self[$0] }
    }

    /// The fields as arrays (allocates one array per field; prefer iterating the record).
    public var fields: [[UInt8]] { map { Array($0) } }

    /// Runs `body` with every field's bytes back to back and each field's end offset in them
    /// (field `i` is `bytes[ends[i-1]..<ends[i]]`, `ends.count == count`), without copying: how a
    /// caller keeps a record compactly with one copy, instead of one array per field (the
    /// prepares' per-row path).
    /// (Inlinable so that the caller's module specializes it: unspecialized, its generic
    /// closures cost a metadata lookup per row.)
    @inlinable
    public func withFieldStorage<R>(_ body: (_ bytes: UnsafeRawBufferPointer, _ ends: UnsafeBufferPointer<Int>) -> R)
        -> R
    {
        bytes.withUnsafeBytes { b in ends.withUnsafeBufferPointer { e in body(b, e) } }
    }

    /// The row, line and field count only; the contents are shown as `redacted`.
    public var description: String { "CSVRecord(row \(row), line \(line), \(count) fields, contents redacted)" }
    /// Reflection shows the row, line and field count, never the field bytes.
    public var customMirror: Mirror {
        Mirror(self, children: ["row": row, "line": line, "count": count], displayStyle: .struct)
    }
}
