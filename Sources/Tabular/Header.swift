/// The column names of a CSV file, read from its first record.
///
/// Names are decoded as UTF-8 and trimmed of leading and trailing spaces and tabs. No two names
/// are equal case-insensitively (the reader rejects such a header with `csv.duplicate_column`), so
/// both the exact and the case-insensitive lookup are unambiguous. Immutable and `Sendable`.
/// - SeeAlso: `Protocol/SPEC.md` §"Input files"
public struct Header: Sendable, Equatable, CustomStringConvertible {
    /// The trimmed column names, in file order.
    public let names: [String]
    /// The display name of the file the header came from, used in errors.
    public let file: String
    private let exact: [String: Int]
    private let folded: [String: Int]

    /// Validates decoded names: trims them and rejects case-insensitive duplicates.
    ///
    /// Throws `csv.duplicate_column` naming the column and both positions (1-based).
    init(trimmedNames names: [String], file: String) throws(CSVError) {
        var exact: [String: Int] = [:]
        var folded: [String: Int] = [:]
        for (i, name) in names.enumerated() {
            if let first = folded[name.lowercased()] {
                throw CSVError(
                    .duplicateColumn,
                    "column \"\(name)\" (position \(i + 1)) duplicates column \"\(names[first])\" (position \(first + 1))",
                    file: file, line: 1, column: name)
            }
            folded[name.lowercased()] = i
            exact[name] = i
        }
        self.names = names
        self.file = file
        self.exact = exact
        self.folded = folded
    }

    /// Creates a header from column names, as the reader would: trimmed, duplicates rejected.
    ///
    /// Throws `csv.duplicate_column` when two names are equal case-insensitively after trimming.
    /// - SeeAlso: `Protocol/SPEC.md` §"Input files"
    public init(names: [String], file: String = "<header>") throws(CSVError) {
        try self.init(trimmedNames: names.map(Header.trim), file: file)
    }

    /// The number of columns; every data record must have exactly this many fields.
    public var count: Int { names.count }

    /// The 0-based index of the column whose trimmed name equals `name` exactly, or `nil`.
    ///
    /// For a column the caller cannot do without, use ``require(_:caseInsensitive:)``.
    public func index(of name: String) -> Int? { exact[name] }

    /// The 0-based index of the column whose name equals `name` ignoring case, or `nil`.
    public func index(ofCaseInsensitive name: String) -> Int? { folded[name.lowercased()] }

    /// The 0-based index of a required column.
    ///
    /// Throws `csv.missing_column` naming `name` and the file; the error lists no other names and no
    /// row data.
    /// - SeeAlso: `Protocol/SPEC.md` §"Input files"
    public func require(_ name: String, caseInsensitive: Bool = false) throws(CSVError) -> Int {
        if let i = caseInsensitive ? index(ofCaseInsensitive: name) : index(of: name) { return i }
        throw CSVError(
            .missingColumn,
            "required column \"\(name)\" is not in the header (\(count) column\(count == 1 ? "" : "s"))",
            file: file, line: 1, column: name)
    }

    /// The column names, quoted, in file order (names are not row data, so they may be shown).
    public var description: String { "Header(\(names.map { "\"\($0)\"" }.joined(separator: ", ")))" }

    /// Headers are equal when their names are, whatever file they came from.
    public static func == (lhs: Header, rhs: Header) -> Bool { lhs.names == rhs.names }

    /// Drops leading and trailing spaces and horizontal tabs (not other Unicode whitespace).
    static func trim(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(scalars[first...last])
    }
}
