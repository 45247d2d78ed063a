import Identifiers

/// One data row of a party's input, already split into fields (raw bytes; the normalizer checks UTF-8).
///
/// Stored compactly (one allocation per row: the fields' end offsets, then their bytes back to
/// back) because a million-row input held as one array per field costs about three times its size
/// in allocator overhead (SPEC §9 "Bounded memory").
public struct InputRow: Sendable {
    /// 1-based data row number (header excluded), used in every error about this row.
    public let row: Int
    /// Number of fields.
    public let fieldCount: Int
    /// `fieldCount` little-endian u32 end offsets (relative to the data), then the data.
    private let storage: [UInt8]

    /// A row from its fields' bytes (copied into the compact storage).
    public init(row: Int, fields: [[UInt8]]) {
        self.row = row
        self.fieldCount = fields.count
        var s = [UInt8]()
        s.reserveCapacity(4 * fields.count + fields.reduce(0) { $0 + $1.count })
        var end: UInt32 = 0
        for f in fields {
            end += UInt32(f.count)
            for k in 0..<4 { s.append(UInt8(truncatingIfNeeded: end >> (8 * UInt32(k)))) }
        }
        for f in fields { s += f }
        self.storage = s
    }

    /// A row from its fields' bytes back to back and each field's end offset in them (field `i`
    /// is `bytes[ends[i-1]..<ends[i]]`), as a CSV reader holds a record: one allocation and one
    /// copy, the per-row path of the streamed prepares.
    public init(row: Int, bytes: UnsafeRawBufferPointer, ends: UnsafeBufferPointer<Int>) {
        precondition(
            ends.last.map { $0 == bytes.count } ?? bytes.isEmpty, "the last field ends at the end of the bytes")
        self.row = row
        self.fieldCount = ends.count
        let offsets = 4 * ends.count
        self.storage = [UInt8](unsafeUninitializedCapacity: offsets + bytes.count) { s, initialized in
            guard let start = s.baseAddress else {
                initialized = 0
                return
            }
            let base = UnsafeMutableRawPointer(start)
            var previous = 0
            for (i, end) in ends.enumerated() {
                precondition(end >= previous && end <= Int(UInt32.max), "field ends are ascending offsets")
                base.storeBytes(of: UInt32(truncatingIfNeeded: end).littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                previous = end
            }
            if let from = bytes.baseAddress, bytes.count > 0 {
                (base + offsets).copyMemory(from: from, byteCount: bytes.count)
            }
            initialized = offsets + bytes.count
        }
    }

    private func end(_ i: Int) -> Int {
        let o = 4 * i
        return Int(storage[o]) | Int(storage[o + 1]) << 8 | Int(storage[o + 2]) << 16 | Int(storage[o + 3]) << 24
    }

    /// Field `i` (`i < fieldCount`), without copying.
    public func field(_ i: Int) -> ArraySlice<UInt8> {
        precondition(i >= 0 && i < fieldCount)
        let base = 4 * fieldCount
        return storage[(base + (i == 0 ? 0 : end(i - 1)))..<(base + end(i))]
    }

    /// The fields as arrays (allocates one per field; prefer ``field(_:)``).
    public var fields: [[UInt8]] { (0..<fieldCount).map { Array(field($0)) } }
}

/// A column of a party's input that holds identifiers of one type.
public struct IdentifierColumn: Sendable {
    /// Zero-based position of the column in the input.
    public let index: Int
    /// The column's header name, used in errors and skip reports.
    public let name: String
    /// The identifier type its values are normalized as (`NORMALIZATION.md`).
    public let type: IdentifierType
    /// A column of `type` identifiers at `index`, named `name`.
    public init(index: Int, name: String, type: IdentifierType) {
        self.index = index
        self.name = name
        self.type = type
    }
}

/// What to do with a value that fails normalization.
public enum InvalidValuePolicy: Sendable {
    /// Refuse the whole input at the first invalid value (the default).
    case reject
    /// Leave the value out of matching, and report it: every skipped value is listed by row,
    /// column and rule in the summary, never silently.
    case skipAndReport
}

/// A value left out under ``InvalidValuePolicy/skipAndReport``: where and why, never what.
public struct SkippedValue: Sendable, CustomStringConvertible {
    /// 1-based data row number (header excluded).
    public let row: Int
    /// Header name of the column.
    public let column: String
    /// Stable code of the rule the value broke (an `identifier.*` code).
    public let code: String
    /// `row N, column 'name': code`, without the value.
    public var description: String { "row \(row), column '\(column)': \(code)" }
}

/// The provider's audience for one run.
///
/// Its rows are an array (read afresh by each prepare) or a source read once, in order (the
/// streamed CSV at the edge); with a source the audience is for one prepare, so it is not `Sendable`.
public struct ProviderAudience {
    /// Names the input (its file) in error reasons.
    public let source: String
    let rowStore: RowStore
    /// The rows, from the first: a new reader over an array, or the one-time source.
    public var rows: any InputRowSource { rowStore.source }
    /// Columns whose values are matched; a blank cell is absent, not an error.
    public let identifierColumns: [IdentifierColumn]
    /// The column of the key delivered for a matched row; a row kept for matching must hold
    /// 1…128 bytes there (`activation.invalid_input`).
    public let audienceKeyColumn: (index: Int, name: String)
    /// What to do with an identifier that fails normalization.
    public let invalidValues: InvalidValuePolicy
    /// The country calling code of this party's own national-format phone numbers (digits such
    /// as `"44"`), overriding the agreement's `matching.defaultCountryCallingCode` for this
    /// prepare only; `nil` keeps the agreement's. The setting is party-level
    /// (`Protocol/NORMALIZATION.md` §1): each party describes its own data, and a number read with
    /// the other party's country would be another subscriber's. Checked when the prepare starts
    /// (`activation.invalid_input`, naming `identifier.rules.invalid_country_code`).
    public let defaultCountryCallingCode: String?
    /// Rows read once from `rows`: the audience serves one prepare.
    public init(
        source: String, rows: any InputRowSource, identifierColumns: [IdentifierColumn],
        audienceKeyColumn: (index: Int, name: String), invalidValues: InvalidValuePolicy = .reject,
        defaultCountryCallingCode: String? = nil
    ) {
        self.source = source
        self.rowStore = .stream(rows)
        self.identifierColumns = identifierColumns
        self.audienceKeyColumn = audienceKeyColumn
        self.invalidValues = invalidValues
        self.defaultCountryCallingCode = defaultCountryCallingCode
    }
    /// Rows held in memory.
    public init(
        source: String, rows: [InputRow], identifierColumns: [IdentifierColumn],
        audienceKeyColumn: (index: Int, name: String), invalidValues: InvalidValuePolicy = .reject,
        defaultCountryCallingCode: String? = nil
    ) {
        self.source = source
        self.rowStore = .memory(rows)
        self.identifierColumns = identifierColumns
        self.audienceKeyColumn = audienceKeyColumn
        self.invalidValues = invalidValues
        self.defaultCountryCallingCode = defaultCountryCallingCode
    }
}

/// The consumer's activation query for one run: its customer rows, which of them to activate, and
/// under which segment. Its rows are a source read once (see ``ProviderAudience``).
public struct ConsumerQuery {
    /// A segment filter: a row passes if its column `index` holds one of `values`.
    public struct Filter: Sendable {
        /// Zero-based position of the column in the input.
        public let index: Int
        /// The column's header name, used in errors.
        public let name: String
        /// Accepted values (exact bytes after trimming ASCII spaces).
        public let values: Set<[UInt8]>
        /// A filter accepting `values` in column `index`, named `name`.
        public init(index: Int, name: String, values: Set<[UInt8]>) {
            self.index = index
            self.name = name
            self.values = values
        }
    }
    /// Names the input (its file) in error reasons.
    public let source: String
    let rowStore: RowStore
    /// The rows, from the first: a new reader over an array, or the one-time source.
    public var rows: any InputRowSource { rowStore.source }
    /// Columns whose values are matched; a blank cell is absent, not an error.
    public let identifierColumns: [IdentifierColumn]
    /// Segment selection: a row is activated only if every filter accepts it.
    public let filters: [Filter]
    /// Consent columns: a row is activated only if each holds a true value (`true`, `yes`, `y`, `1`, case-insensitive).
    public let consentColumns: [(index: Int, name: String)]
    /// The member ID column, required when the agreement delivers member IDs.
    public let memberIDColumn: (index: Int, name: String)?
    /// Segment ID sent in the round-2 metadata and delivered on every row; prepare refuses one
    /// that is not a safe label (`activation.invalid_input`).
    public let segmentID: String
    /// Segment name, delivered and checked as ``segmentID``.
    public let segmentName: String
    /// What to do with an identifier that fails normalization.
    public let invalidValues: InvalidValuePolicy
    /// The consumer's own country calling code, as ``ProviderAudience/defaultCountryCallingCode``.
    public let defaultCountryCallingCode: String?
    /// Rows read once from `rows`: the query serves one prepare.
    public init(
        source: String, rows: any InputRowSource, identifierColumns: [IdentifierColumn], filters: [Filter] = [],
        consentColumns: [(index: Int, name: String)] = [], memberIDColumn: (index: Int, name: String)? = nil,
        segmentID: String, segmentName: String, invalidValues: InvalidValuePolicy = .reject,
        defaultCountryCallingCode: String? = nil
    ) {
        self.init(
            source: source, rowStore: .stream(rows), identifierColumns: identifierColumns, filters: filters,
            consentColumns: consentColumns, memberIDColumn: memberIDColumn, segmentID: segmentID,
            segmentName: segmentName,
            invalidValues: invalidValues, defaultCountryCallingCode: defaultCountryCallingCode)
    }
    /// Rows held in memory.
    public init(
        source: String, rows: [InputRow], identifierColumns: [IdentifierColumn], filters: [Filter] = [],
        consentColumns: [(index: Int, name: String)] = [], memberIDColumn: (index: Int, name: String)? = nil,
        segmentID: String, segmentName: String, invalidValues: InvalidValuePolicy = .reject,
        defaultCountryCallingCode: String? = nil
    ) {
        self.init(
            source: source, rowStore: .memory(rows), identifierColumns: identifierColumns, filters: filters,
            consentColumns: consentColumns, memberIDColumn: memberIDColumn, segmentID: segmentID,
            segmentName: segmentName,
            invalidValues: invalidValues, defaultCountryCallingCode: defaultCountryCallingCode)
    }
    init(
        source: String, rowStore: RowStore, identifierColumns: [IdentifierColumn], filters: [Filter],
        consentColumns: [(index: Int, name: String)], memberIDColumn: (index: Int, name: String)?,
        segmentID: String, segmentName: String, invalidValues: InvalidValuePolicy, defaultCountryCallingCode: String?
    ) {
        self.source = source
        self.rowStore = rowStore
        self.identifierColumns = identifierColumns
        self.filters = filters
        self.consentColumns = consentColumns
        self.memberIDColumn = memberIDColumn
        self.segmentID = segmentID
        self.segmentName = segmentName
        self.invalidValues = invalidValues
        self.defaultCountryCallingCode = defaultCountryCallingCode
    }
}

/// Counts a party's prepare step reports (no identifiers).
public struct PrepareSummary: Sendable, Equatable {
    /// Data rows read from the input.
    public var rowsRead = 0
    /// Rows that passed the filters and consent columns (for the provider, every row read).
    public var rowsSelected = 0
    /// Rows a filter or consent column left out (always 0 for the provider).
    public var rowsFilteredOut = 0
    /// Selected rows left with no identifier to match (all absent or skipped).
    public var rowsWithoutIdentifier = 0
    /// Valid identifier values in the selected rows, duplicates included.
    public var identifiers = 0
    /// Identifiers whose element an earlier one already gave (`identifiers - elements`).
    public var duplicateIdentifiers = 0
    /// Invalid values left out under ``InvalidValuePolicy/skipAndReport``.
    public var skippedValues = 0
    /// Distinct elements blinded and sent in the round message.
    public var elements = 0
    /// All counts zero.
    public init() {}
}

/// A party's rows: an array (each prepare reads it from the start) or a one-time source.
enum RowStore {
    case memory([InputRow])
    case stream(any InputRowSource)
    var source: any InputRowSource {
        switch self {
        case .memory(let rows): ArrayRowSource(rows)
        case .stream(let s): s
        }
    }
}
