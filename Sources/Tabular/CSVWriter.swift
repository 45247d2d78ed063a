import Foundation

/// An RFC 4180 CSV writer into a byte sink.
///
/// A field is quoted when it contains a comma, a quote, CR or LF, when it starts with a UTF-8
/// byte-order mark, or when it is the only field of its record and empty (so the record is not a
/// blank line, which the reader would not return at the end of a file); quotes inside are doubled.
/// Records end with LF by default. Every record must have as many fields as the first one.
///
/// Bytes are collected in a buffer and handed to the sink whenever it passes the flush threshold
/// and on ``flush()``; the sink sees every byte exactly once, in order, so a caller can hash the
/// output while it is written (wrap the sink, or pass an observer to ``init(fileHandle:displayName:lineEnding:observer:)``).
///
/// Not copyable (its buffer must be flushed exactly once); not thread-safe.
/// - Warning: call ``flush()`` before dropping the writer: unflushed bytes are not written
///   (a debug build traps if they are dropped without an earlier error).
/// - SeeAlso: `Protocol/SPEC.md` §"Input files"
public struct CSVWriter: ~Copyable {
    /// The line break written after each record.
    public enum LineEnding: Sendable {
        /// `\n`, the default.
        case lf
        /// `\r\n`, as RFC 4180 writes it.
        case crlf
    }

    /// Receives the output bytes in order; the buffer is only valid during the call.
    public typealias Sink = (UnsafeRawBufferPointer) throws(CSVError) -> Void

    private let sink: Sink
    private let lineEnding: LineEnding
    private let flushThreshold: Int
    private let file: String
    private var buffer: [UInt8] = []
    private var fieldCount: Int?
    private var failure: CSVError?
    /// How many records have been written (header included).
    public private(set) var recordCount = 0

    /// Creates a writer that hands its output to `sink`.
    ///
    /// - Parameters:
    ///   - displayName: the name errors use.
    ///   - lineEnding: `.lf` (default) or `.crlf`.
    ///   - flushThreshold: buffered bytes that trigger a call to `sink` (default 64 KiB).
    ///   - sink: receives the bytes; an error it throws is rethrown by the write or flush that called it.
    public init(
        displayName: String = "<output>", lineEnding: LineEnding = .lf, flushThreshold: Int = 1 << 16,
        sink: @escaping Sink
    ) {
        self.sink = sink
        self.file = displayName
        self.lineEnding = lineEnding
        self.flushThreshold = max(1, flushThreshold)
        buffer.reserveCapacity(self.flushThreshold)
    }

    /// Creates a writer into an open file; `observer` sees every byte just before it is written
    /// (for example to hash the file), and a failed write throws `csv.io`.
    public init(
        fileHandle: FileHandle, displayName: String, lineEnding: LineEnding = .lf,
        observer: ((UnsafeRawBufferPointer) -> Void)? = nil
    ) {
        self.init(displayName: displayName, lineEnding: lineEnding) { (bytes) throws(CSVError) in
            observer?(bytes)
            do { try fileHandle.write(contentsOf: Data(bytes)) } catch {
                throw CSVError(.io, "write failed (\(Parser.errorCode(error)))", file: displayName)
            }
        }
    }

    deinit {
        assert(buffer.isEmpty || failure != nil, "CSVWriter dropped with unflushed bytes; call flush()")
    }

    /// Appends one record.
    ///
    /// Throws `csv.field_count` (naming the expected and actual counts) when the record's field count
    /// differs from the first record's, without writing any of it (the writer stays usable); rethrows
    /// a sink error, after which every call throws it again.
    public mutating func write<Field: Collection<UInt8>>(_ fields: some Sequence<Field>) throws(CSVError) {
        if let failure { throw failure }
        let mark = buffer.count
        var count = 0
        var iterator = fields.makeIterator()
        var next = iterator.next()
        while let field = next {
            next = iterator.next()
            if count > 0 { buffer.append(Parser.comma) }
            append(field, only: count == 0 && next == nil)
            count += 1
        }
        if let expected = fieldCount, expected != count {
            buffer.removeSubrange(mark...)
            throw CSVError(
                .fieldCount, "record \(recordCount + 1): expected \(expected) fields, found \(count)", file: file)
        }
        fieldCount = count
        if lineEnding == .crlf { buffer.append(Parser.cr) }
        buffer.append(Parser.lf)
        recordCount += 1
        if buffer.count >= flushThreshold { try flush() }
    }

    /// Appends one record of strings, written as their UTF-8 bytes; as the generic `write(_:)`.
    public mutating func write(_ fields: [String]) throws(CSVError) {
        try write(fields.lazy.map { $0.utf8 })
    }

    /// Hands every buffered byte to the sink. Call it once more after the last record.
    public mutating func flush() throws(CSVError) {
        if let failure { throw failure }
        guard !buffer.isEmpty else { return }
        let sink = self.sink
        let result: Result<Void, CSVError> = buffer.withUnsafeBytes { raw in
            Result { () throws(CSVError) in try sink(raw) }
        }
        if case .failure(let error) = result {
            failure = error
            throw error
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// The bytes of `records` as one CSV document (tests, small outputs).
    ///
    /// Throws `csv.field_count` if the records do not all have the same number of fields.
    public static func encode<Field: Collection<UInt8>>(
        _ records: [[Field]], lineEnding: LineEnding = .lf
    ) throws(CSVError) -> [UInt8] {
        var output: [UInt8] = []
        var writer = CSVWriter(lineEnding: lineEnding) { (bytes) throws(CSVError) in output.append(contentsOf: bytes) }
        for record in records { try writer.write(record) }
        try writer.flush()
        return output
    }

    private mutating func append<Field: Collection<UInt8>>(_ field: Field, only: Bool) {
        let needsQuotes =
            (only && field.isEmpty) || field.starts(with: Parser.byteOrderMark)
            || field.contains { $0 == Parser.comma || $0 == Parser.quote || $0 == Parser.cr || $0 == Parser.lf }
        guard needsQuotes else {
            buffer.append(contentsOf: field)
            return
        }
        buffer.append(Parser.quote)
        for byte in field {
            if byte == Parser.quote { buffer.append(Parser.quote) }
            buffer.append(byte)
        }
        buffer.append(Parser.quote)
    }
}
