import Foundation

/// A streaming RFC 4180 reader of a CSV file with a header row.
///
/// The first record is the ``Header``; ``next()`` returns the data records one at a time, reading
/// the input in chunks (1 MiB by default), so memory is bounded by one record plus one chunk
/// whatever the file size. Accepted: a UTF-8 byte-order mark at the start (skipped), LF and CRLF
/// line breaks, a last line without a line break, quoted fields containing commas, `""` and line
/// breaks, empty fields. Blank lines at the very end of the file are not records; a blank line
/// anywhere else is a record with one empty field (so, with more than one column, a
/// `csv.field_count` error). Duplicate records are returned as they are.
///
/// Nothing is skipped or truncated silently: every malformed record throws at its row, and once
/// ``next()`` has thrown it throws the same error on every later call. Errors name the file, the
/// data row, the line and the column, never field contents.
///
/// Not copyable (it owns a read position in a file); not thread-safe; use one reader per task.
/// - SeeAlso: `Protocol/SPEC.md` §"Input files"
public struct CSVReader: ~Copyable {
    /// Limits and policies of a reader.
    public struct Options: Sendable {
        /// The largest record accepted, in bytes as they appear in the file (quotes and commas
        /// included, the line break excluded). Default 1 MiB. A longer record is `csv.record_too_long`.
        public var maxRecordBytes: Int
        /// How many bytes each read asks for. Default 1 MiB; values below 1 are treated as 1.
        public var chunkSize: Int
        /// When `true`, a file with a header and no data rows throws `csv.header_only` at the end
        /// instead of returning zero records. Default `false`: the caller decides (see ``CSVReader/rowCount``).
        public var rejectHeaderOnly: Bool

        /// Creates options; every argument has the documented default.
        public init(maxRecordBytes: Int = 1 << 20, chunkSize: Int = 1 << 20, rejectHeaderOnly: Bool = false) {
            self.maxRecordBytes = maxRecordBytes
            self.chunkSize = chunkSize
            self.rejectHeaderOnly = rejectHeaderOnly
        }
    }

    /// The header, read and validated when the reader was created.
    public let header: Header
    /// The display name used in errors.
    public var file: String { header.file }
    /// How many data records ``next()`` has returned so far.
    public private(set) var rowCount = 0

    var parser: Parser
    private let options: Options
    /// Blank lines already read that are followed by a non-blank record: returned before it.
    private var pendingBlank: (count: Int, line: Int, row: Int) = (0, 0, 0)
    /// The record (still in the parser's buffers) or error that followed those blank lines.
    private var pendingAfterBlanks: Result<RecordInfo, CSVError>?
    private var failure: CSVError?
    private var finished = false

    /// Opens the file at `path` and reads its header.
    ///
    /// - Parameters:
    ///   - path: the file to read.
    ///   - displayName: the name errors use; defaults to the last path component.
    ///   - options: the record-size limit, read size and header-only policy; see ``Options``.
    /// - Throws: `csv.io` if the file cannot be opened or read; `csv.empty_file`, `csv.blank_header`,
    ///   `csv.header_not_utf8`, `csv.duplicate_column` or a parse error for the header.
    /// - SeeAlso: `Protocol/SPEC.md` §"Input files"
    public init(path: String, displayName: String? = nil, options: Options = Options()) throws(CSVError) {
        let name = displayName ?? URL(fileURLWithPath: path).lastPathComponent
        let handle: FileHandle
        do { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) } catch {
            throw CSVError(.io, "cannot open for reading (\(Parser.errorCode(error)))", file: name)
        }
        try self.init(source: .file(handle), file: name, options: options)
    }

    /// Reads CSV from bytes in memory (tests, fuzzing, small inputs); otherwise as ``init(path:displayName:options:)``.
    /// - SeeAlso: `Protocol/SPEC.md` §"Input files"
    public init(bytes: [UInt8], displayName: String = "<memory>", options: Options = Options()) throws(CSVError) {
        try self.init(source: .memory(bytes, offset: 0), file: displayName, options: options)
    }

    private init(source: ByteSource, file: String, options: Options) throws(CSVError) {
        var parser = Parser(
            source: source, file: file, chunkSize: options.chunkSize, maxRecordBytes: options.maxRecordBytes)
        guard let first = try parser.parseRecord() else {
            throw CSVError(.emptyFile, "no header: the file is empty", file: file)
        }
        if first.isBlank {
            var later = try parser.parseRecord()
            while let blank = later, blank.isBlank { later = try parser.parseRecord() }
            if later == nil {
                throw CSVError(.emptyFile, "no header: the file has only blank lines", file: file)
            }
            throw CSVError(.blankHeader, "the first line is blank; expected the header", file: file, line: 1)
        }
        var names: [String] = []
        names.reserveCapacity(parser.ends.count)
        var start = 0
        for (i, end) in parser.ends.enumerated() {
            guard let name = String(validating: parser.bytes[start..<end], as: UTF8.self) else {
                throw CSVError(.headerNotUTF8, "header field \(i + 1) is not valid UTF-8", file: file, line: first.line)
            }
            names.append(Header.trim(name))
            start = end
        }
        self.header = try Header(trimmedNames: names, file: file)
        parser.columnNames = header.names
        self.parser = parser
        self.options = options
    }

    /// The next data record, or `nil` at the end of the file.
    ///
    /// Throws `csv.field_count` (a record whose field count differs from the header's),
    /// `csv.unterminated_quote`, `csv.stray_quote`, `csv.bare_carriage_return`,
    /// `csv.record_too_long`, `csv.io`, or `csv.header_only` (only with
    /// ``Options/rejectHeaderOnly``). After an error every call throws it again; after `nil` every
    /// call returns `nil`.
    /// - SeeAlso: `Protocol/SPEC.md` §"Input files"
    public mutating func next() throws(CSVError) -> CSVRecord? {
        if let failure { throw failure }
        if finished { return nil }
        do throws(CSVError) {
            guard let record = try nextRecord() else {
                finished = true
                if options.rejectHeaderOnly && rowCount == 0 {
                    throw CSVError(.headerOnly, "the file has a header and no data rows", file: file)
                }
                return nil
            }
            guard record.count == header.count else {
                throw CSVError(
                    .fieldCount, "expected \(header.count) fields, found \(record.count)", file: file,
                    line: record.line, row: record.row)
            }
            rowCount += 1
            return record
        } catch {
            failure = error
            throw error
        }
    }

    /// Reads every remaining record into memory.
    ///
    /// - Warning: for tests and small files only; a large file should be iterated with ``next()``.
    public mutating func readAll() throws(CSVError) -> [CSVRecord] {
        var all: [CSVRecord] = []
        while let record = try next() { all.append(record) }
        return all
    }

    /// The next record of any field count; resolves blank lines (records unless only blank lines follow).
    private mutating func nextRecord() throws(CSVError) -> CSVRecord? {
        if pendingBlank.count > 0 {
            defer { pendingBlank = (pendingBlank.count - 1, pendingBlank.line + 1, pendingBlank.row + 1) }
            return CSVRecord(bytes: [], ends: [0], line: pendingBlank.line, row: pendingBlank.row)
        }
        if let pending = pendingAfterBlanks {
            pendingAfterBlanks = nil
            return currentRecord(try pending.get())
        }
        guard let info = try parser.parseRecord() else { return nil }
        guard info.isBlank else { return currentRecord(info) }
        // A blank line: a record only if something other than blank lines follows it.
        var blanks = 1
        while true {
            let following = Result { () throws(CSVError) in try parser.parseRecord() }
            switch following {
            case .success(nil):
                return nil
            case .success(let next?) where next.isBlank:
                blanks += 1
            case .success(let next?):
                pendingAfterBlanks = .success(next)
                pendingBlank = (blanks - 1, info.line + 1, info.row + 1)
                return CSVRecord(bytes: [], ends: [0], line: info.line, row: info.row)
            case .failure(let error):
                pendingAfterBlanks = .failure(error)
                pendingBlank = (blanks - 1, info.line + 1, info.row + 1)
                return CSVRecord(bytes: [], ends: [0], line: info.line, row: info.row)
            }
        }
    }

    private func currentRecord(_ info: RecordInfo) -> CSVRecord {
        CSVRecord(bytes: parser.bytes, ends: parser.ends, line: info.line, row: info.row)
    }
}
