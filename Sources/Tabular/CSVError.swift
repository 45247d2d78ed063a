/// The one error type of the `Tabular` module.
///
/// Equality and hashing are by ``code`` only, so tests and callers match on stable codes while the
/// other properties carry the location. An error names the file, the data row, the line and the
/// column (by header name), and the rule that failed; it never contains field contents, because
/// fields are personal data.
/// - SeeAlso: `Protocol/SPEC.md` §"Input files" and §"Error codes" (the `csv.*` rows).
public struct CSVError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the ones listed in `Protocol/SPEC.md`.
    public enum Code: String, Sendable, CaseIterable {
        /// The input has no header: zero bytes, only a byte-order mark, or only blank lines.
        case emptyFile = "csv.empty_file"
        /// The input has a header and no data rows (only thrown when the caller asks for it).
        case headerOnly = "csv.header_only"
        /// The first line is blank while later lines are not, so there is no header to read.
        case blankHeader = "csv.blank_header"
        /// A column the caller requires is not in the header.
        case missingColumn = "csv.missing_column"
        /// Two header names are equal (compared case-insensitively, after trimming).
        case duplicateColumn = "csv.duplicate_column"
        /// A record has more or fewer fields than the header.
        case fieldCount = "csv.field_count"
        /// A quoted field is still open at the end of the input.
        case unterminatedQuote = "csv.unterminated_quote"
        /// A quote inside an unquoted field, or a character after a closing quote other than `,` or a line break.
        case strayQuote = "csv.stray_quote"
        /// A carriage return outside quotes that is not followed by a line feed.
        case bareCarriageReturn = "csv.bare_carriage_return"
        /// A record larger than the configured byte limit.
        case recordTooLong = "csv.record_too_long"
        /// A header name that is not valid UTF-8.
        case headerNotUTF8 = "csv.header_not_utf8"
        /// Opening, reading or writing the file failed.
        case io = "csv.io"
    }

    /// The stable code.
    public let code: Code
    /// A human-readable reason naming the rule that failed; never field contents.
    public let reason: String
    /// The display name of the file (for example `customers.csv`), never its contents.
    public let file: String
    /// The 1-based line on which the offending record starts, when the error concerns a record.
    public let line: Int?
    /// The 1-based data row (the header is not counted), when the error concerns a data row.
    public let row: Int?
    /// The header name of the offending column, when there is one.
    public let column: String?

    /// Creates an error; `reason` must not contain field contents.
    public init(
        _ code: Code, _ reason: String, file: String, line: Int? = nil, row: Int? = nil, column: String? = nil
    ) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
        self.row = row
        self.column = column
    }

    /// `customers.csv row 12 (line 13): csv.field_count: expected 4 fields, found 5`.
    public var description: String {
        let location: String
        switch (row, line) {
        case (let row?, let line?): location = "\(file) row \(row) (line \(line))"
        case (let row?, nil): location = "\(file) row \(row)"
        case (nil, let line?): location = "\(file) line \(line)"
        case (nil, nil): location = file
        }
        return "\(location): \(code.rawValue): \(reason)"
    }

    /// Compares codes only, so callers can match on a code whatever the location or reason.
    public static func == (lhs: CSVError, rhs: CSVError) -> Bool { lhs.code == rhs.code }
    /// Hashes the code only, consistent with `==`.
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
