import Foundation

/// Where the parser's bytes come from: an in-memory array served in chunks, or a file handle.
enum ByteSource {
    case memory([UInt8], offset: Int)
    case file(FileHandle)
    case exhausted
}

/// Where a parsed record starts, and whether it was a blank line (no bytes before its line break).
struct RecordInfo: Equatable {
    var line: Int
    var row: Int
    var isBlank: Bool
}

/// The RFC 4180 state machine, fed one chunk at a time.
///
/// It parses one record at a time into `bytes` (the unquoted field bytes) and `ends` (the end
/// offset of each field), reusing their storage when no ``CSVRecord`` still refers to it. Memory is
/// bounded by `maxRecordBytes` plus one chunk: a record is rejected as soon as it grows past the
/// limit, before the rest of it is read.
struct Parser {
    static let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ","), cr = UInt8(ascii: "\r"),
        lf = UInt8(ascii: "\n")
    /// RFC 3629's encoding of U+FEFF, skipped once at the start of the input.
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    private enum State { case fieldStart, unquoted, quoted, quoteInQuoted, afterCR }

    let file: String
    let chunkSize: Int
    let maxRecordBytes: Int
    var source: ByteSource
    var chunk: [UInt8] = []
    var pos = 0
    /// The line number of the next unread byte.
    var line = 1
    /// The row number the next record gets: 0 for the header, then 1, 2, …
    var nextRow = 0
    var bytes: [UInt8] = []
    var ends: [Int] = []
    /// Column names for errors, once the header is known.
    var columnNames: [String] = []
    private var started = false

    init(source: ByteSource, file: String, chunkSize: Int, maxRecordBytes: Int) {
        self.source = source
        self.file = file
        self.chunkSize = max(1, chunkSize)
        self.maxRecordBytes = max(1, maxRecordBytes)
    }

    /// Replaces `chunk` with the next chunk of input; `false` at the end of the input.
    private mutating func refill() throws(CSVError) -> Bool {
        switch source {
        case .exhausted:
            return false
        case .memory(let all, let offset):
            guard offset < all.count else {
                source = .exhausted
                return false
            }
            let end = all.count - offset <= chunkSize ? all.count : offset + chunkSize
            chunk = offset == 0 && end == all.count ? all : Array(all[offset..<end])
            source = .memory(all, offset: end)
        case .file(let handle):
            let data: Data?
            do { data = try handle.read(upToCount: chunkSize) } catch {
                throw CSVError(.io, "read failed (\(Self.errorCode(error)))", file: file)
            }
            guard let data, !data.isEmpty else {
                source = .exhausted
                return false
            }
            chunk.removeAll(keepingCapacity: true)
            chunk.append(contentsOf: data)
        }
        pos = 0
        return true
    }

    /// Skips a UTF-8 byte-order mark at the very start, even when it spans several chunks.
    private mutating func skipByteOrderMark() throws(CSVError) {
        started = true
        while chunk.count - pos < Self.byteOrderMark.count {
            let kept = Array(chunk[pos...])
            guard try refill() else {
                chunk = kept
                pos = 0
                break
            }
            chunk = kept + chunk
            pos = 0
        }
        if chunk[pos...].starts(with: Self.byteOrderMark) { pos += Self.byteOrderMark.count }
    }

    private func error(_ code: CSVError.Code, _ reason: String, _ info: RecordInfo, field: Int?) -> CSVError {
        let column = field.flatMap { $0 < columnNames.count ? columnNames[$0] : nil }
        let at = field.map { " in field \($0 + 1)" + (column.map { " (column \"\($0)\")" } ?? "") } ?? ""
        return CSVError(
            code, reason + at, file: file, line: info.line, row: info.row == 0 ? nil : info.row, column: column)
    }

    /// Parses the next record into `bytes` and `ends`; `nil` at the end of the input.
    ///
    /// A blank line is a record with one empty field and `isBlank` set; the reader decides what it
    /// means. Throws `csv.unterminated_quote`, `csv.stray_quote`, `csv.bare_carriage_return`,
    /// `csv.record_too_long` or `csv.io`, located at the record's first line.
    mutating func parseRecord() throws(CSVError) -> RecordInfo? {
        if !started { try skipByteOrderMark() }
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        var info = RecordInfo(line: line, row: nextRow, isBlank: false)
        var state = State.fieldStart
        var size = 0  // bytes of the record so far, line break excluded

        func finish() -> RecordInfo {
            info.isBlank = ends.isEmpty && size == 0
            ends.append(bytes.count)
            nextRow += 1
            return info
        }

        while true {
            if pos == chunk.count {
                guard try refill() else {
                    switch state {
                    case .fieldStart where ends.isEmpty && size == 0:
                        return nil
                    case .quoted:
                        throw error(
                            .unterminatedQuote, "quoted field is not closed before the end of the file", info,
                            field: ends.count)
                    case .fieldStart, .unquoted, .quoteInQuoted, .afterCR:
                        return finish()
                    }
                }
            }
            switch state {
            case .fieldStart:
                switch chunk[pos] {
                case Self.quote:
                    pos += 1
                    size += 1
                    try checkSize(size, info)
                    state = .quoted
                case Self.comma:
                    pos += 1
                    size += 1
                    try checkSize(size, info)
                    ends.append(bytes.count)
                case Self.lf:
                    pos += 1
                    line += 1
                    return finish()
                case Self.cr:
                    pos += 1
                    state = .afterCR
                default:
                    state = .unquoted
                }
            case .unquoted:
                let start = pos
                // Scanned through the buffer, not `chunk[pos]` on the mutable parser, which
                // reloads and bounds-checks the array on every byte of every field.
                pos = chunk.withUnsafeBufferPointer { b in
                    var p = start
                    while p < b.count {
                        let c = b[p]
                        if c == Self.comma || c == Self.quote || c == Self.cr || c == Self.lf { break }
                        p += 1
                    }
                    return p
                }
                try take(start, &size, info)
                guard pos < chunk.count else { continue }
                switch chunk[pos] {
                case Self.comma:
                    pos += 1
                    size += 1
                    try checkSize(size, info)
                    ends.append(bytes.count)
                    state = .fieldStart
                case Self.lf:
                    pos += 1
                    line += 1
                    return finish()
                case Self.cr:
                    pos += 1
                    state = .afterCR
                default:
                    throw error(.strayQuote, "quote inside an unquoted field", info, field: ends.count)
                }
            case .quoted:
                let start = pos
                var lines = 0
                pos = chunk.withUnsafeBufferPointer { b in
                    var p = start
                    while p < b.count {
                        let c = b[p]
                        if c == Self.quote { break }
                        if c == Self.lf { lines += 1 }
                        p += 1
                    }
                    return p
                }
                line += lines
                try take(start, &size, info)
                guard pos < chunk.count else { continue }
                pos += 1
                size += 1
                try checkSize(size, info)
                state = .quoteInQuoted
            case .quoteInQuoted:
                switch chunk[pos] {
                case Self.quote:
                    pos += 1
                    size += 1
                    try checkSize(size, info)
                    bytes.append(Self.quote)
                    state = .quoted
                case Self.comma:
                    pos += 1
                    size += 1
                    try checkSize(size, info)
                    ends.append(bytes.count)
                    state = .fieldStart
                case Self.lf:
                    pos += 1
                    line += 1
                    return finish()
                case Self.cr:
                    pos += 1
                    state = .afterCR
                default:
                    throw error(
                        .strayQuote, "character after a closing quote (expected a comma or a line break)", info,
                        field: ends.count)
                }
            case .afterCR:
                guard chunk[pos] == Self.lf else {
                    throw error(
                        .bareCarriageReturn, "carriage return not followed by a line feed", info, field: ends.count)
                }
                pos += 1
                line += 1
                return finish()
            }
        }
    }

    /// Appends `chunk[start..<pos]` to the current field, unless that takes the record past the limit.
    private mutating func take(_ start: Int, _ size: inout Int, _ info: RecordInfo) throws(CSVError) {
        guard pos > start else { return }
        size += pos - start
        try checkSize(size, info)
        bytes.append(contentsOf: chunk[start..<pos])
    }

    private func checkSize(_ size: Int, _ info: RecordInfo) throws(CSVError) {
        guard size > maxRecordBytes else { return }
        throw error(.recordTooLong, "record is longer than the limit of \(maxRecordBytes) bytes", info, field: nil)
    }

    /// A stable, content-free summary of a Foundation error, e.g. `NSCocoaErrorDomain 260`.
    static func errorCode(_ error: any Error) -> String {
        let ns = error as NSError
        return "\(ns.domain) \(ns.code)"
    }
}
