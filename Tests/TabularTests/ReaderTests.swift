import Foundation
import Testing

@testable import Tabular

@Suite("CSV reader: accepted input")
struct ReaderAcceptTests {
    @Test func byteOrderMarkIsSkipped() throws {
        var reader = try CSVReader(bytes: [0xEF, 0xBB, 0xBF] + utf8("email,phone\na@x,1\n"))
        #expect(reader.header.names == ["email", "phone"])
        #expect(reader.header.index(of: "email") == 0)
        #expect(try reader.next()?.fields == [utf8("a@x"), utf8("1")])
    }

    /// The packed view the prepares copy rows from holds the same fields as ``CSVRecord/fields``,
    /// quoted, empty and last fields included.
    @Test func packedFieldStorageMatchesFields() throws {
        var reader = try CSVReader(bytes: utf8("a,b,c\n\"x,\"\"y\",,z\n,,\n"))
        while let record = try reader.next() {
            let fields = record.withFieldStorage { bytes, ends in
                ends.indices.map { i in Array(bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]]) }
            }
            #expect(fields == record.fields)
            #expect(record.withFieldStorage { _, ends in ends.count } == 3)
        }
        #expect(reader.rowCount == 2)
    }

    @Test func byteOrderMarkOnlyAtTheStart() {
        // A BOM inside a data field is data, passed through.
        let input = utf8("email\n") + [0xEF, 0xBB, 0xBF] + utf8("a\n")
        #expect(memoryOutcome(input).rows == [[[0xEF, 0xBB, 0xBF] + utf8("a")]])
    }

    @Test func crlfAndMixedLineBreaks() {
        let out = memoryOutcome(utf8("email,phone\r\na,1\r\nb,2\nc,3\r\n"))
        #expect(
            out
                == .parsed(
                    header: ["email", "phone"],
                    rows: [[utf8("a"), utf8("1")], [utf8("b"), utf8("2")], [utf8("c"), utf8("3")]],
                    lines: [2, 3, 4], rowNumbers: [1, 2, 3]))
    }

    @Test func quotedCommasQuotesAndNewlines() {
        let input = utf8("email,note\r\n\"a,b\",\"say \"\"hi\"\"\"\n\"multi\nline\",\"x\r\ny\"\nlast,\"\"\n")
        let out = memoryOutcome(input)
        #expect(
            out
                == .parsed(
                    header: ["email", "note"],
                    rows: [
                        [utf8("a,b"), utf8("say \"hi\"")],
                        [utf8("multi\nline"), utf8("x\r\ny")],
                        [utf8("last"), []],
                    ],
                    // Record 2 holds two line feeds, so it spans lines 3-5 and the next starts on line 6.
                    lines: [2, 3, 6], rowNumbers: [1, 2, 3]))
    }

    @Test func lastLineWithoutLineBreak() {
        #expect(memoryOutcome(utf8("a,b\n1,2\n3,4")).rows == [[utf8("1"), utf8("2")], [utf8("3"), utf8("4")]])
        #expect(memoryOutcome(utf8("a,b\n1,\"2\"")).rows == [[utf8("1"), utf8("2")]])
        #expect(memoryOutcome(utf8("a,b\n1,")).rows == [[utf8("1"), []]])
    }

    @Test func emptyFields() {
        #expect(memoryOutcome(utf8("a,b,c\n,,\n,\"\",x\n")).rows == [[[], [], []], [[], [], utf8("x")]])
    }

    @Test func trailingBlankLinesAreNotRecords() {
        #expect(memoryOutcome(utf8("a,b\n1,2\n\n")).rows == [[utf8("1"), utf8("2")]])
        #expect(memoryOutcome(utf8("a,b\r\n1,2\r\n\r\n\r\n")).rows == [[utf8("1"), utf8("2")]])
    }

    @Test func blankLineInsideTheFileIsARecord() {
        // Two columns: a blank line is a record with one field, so an error at its row and line.
        let error = readError(utf8("a,b\n1,2\n\n3,4\n"))
        #expect(error == CSVError(.fieldCount, "", file: ""))
        #expect(error?.row == 2 && error?.line == 3)
        #expect(error?.reason == "expected 2 fields, found 1")
        // One column: a blank line is an empty value, and numbering continues after it.
        #expect(
            memoryOutcome(utf8("email\na\n\n\nb\n\n"))
                == .parsed(
                    header: ["email"], rows: [[utf8("a")], [[]], [[]], [utf8("b")]], lines: [2, 3, 4, 5],
                    rowNumbers: [1, 2, 3, 4]))
    }

    @Test func nonUTF8DataPassesThroughAsBytes() {
        let input = utf8("email,phone\n") + [0xFF, 0xFE, 0x80] + utf8(",\"") + [0xC0, 0x22, 0x22, 0xAF] + utf8("\"\n")
        #expect(memoryOutcome(input).rows == [[[0xFF, 0xFE, 0x80], [0xC0, 0x22, 0xAF]]])
    }

    @Test func duplicateRowsAreReturned() {
        #expect(memoryOutcome(utf8("email\na\na\na\n")).rows == [[utf8("a")], [utf8("a")], [utf8("a")]])
    }

    @Test func headerNamesAreTrimmedAndLookedUp() throws {
        let header = try CSVReader(bytes: utf8(" Email ,\tPhone\n")).header
        #expect(header.names == ["Email", "Phone"])
        #expect(header.index(of: "Email") == 0)
        #expect(header.index(of: "email") == nil)
        #expect(header.index(ofCaseInsensitive: "PHONE") == 1)
        #expect(try header.require("phone", caseInsensitive: true) == 1)
    }

    @Test func recordAccessors() throws {
        var reader = try CSVReader(bytes: utf8("email,phone\na@x,123\n"))
        let record = try #require(try reader.next())
        #expect(record.count == 2)
        #expect(Array(record[1]) == utf8("123"))
        #expect(record[column: "email", in: reader.header].map(Array.init) == utf8("a@x"))
        #expect(record[column: "fax", in: reader.header] == nil)
        #expect(reader.rowCount == 1)
    }
}

@Suite("CSV reader: rejected input")
struct ReaderRejectTests {
    @Test(arguments: [
        [UInt8](), [0xEF, 0xBB, 0xBF], utf8("\n"), utf8("\r\n\n\r\n"),
    ])
    func emptyFile(input: [UInt8]) {
        #expect(readError(input) == CSVError(.emptyFile, "", file: ""))
    }

    @Test func blankFirstLine() {
        let error = readError(utf8("\nemail\na\n"))
        #expect(error == CSVError(.blankHeader, "", file: ""))
        #expect(error?.line == 1)
    }

    @Test func headerOnlyReturnsZeroRowsByDefault() throws {
        for input in [utf8("email,phone\n"), utf8("email,phone"), utf8("email,phone\n\n")] {
            var reader = try CSVReader(bytes: input)
            #expect(try reader.next() == nil)
            #expect(reader.rowCount == 0)
            #expect(reader.header.names == ["email", "phone"])
        }
    }

    @Test func headerOnlyIsAnErrorWhenAsked() {
        let strict = CSVReader.Options(rejectHeaderOnly: true)
        #expect(readError(utf8("email,phone\n\n"), strict) == CSVError(.headerOnly, "", file: ""))
        #expect(readError(utf8("email,phone\n1,2\n"), strict) == nil)
    }

    @Test func missingColumnNamesTheColumn() throws {
        let header = try CSVReader(bytes: utf8("email,phone\nSECRET-MARKER,1\n"), displayName: "customers.csv").header
        let error = #expect(throws: CSVError(.missingColumn, "", file: "")) { try header.require("maid") }
        #expect(error?.column == "maid")
        #expect(
            error?.description
                == "customers.csv line 1: csv.missing_column: required column \"maid\" is not in the header (2 columns)"
        )
    }

    @Test(arguments: ["email,phone,email", "Email,email", " email ,email", "a,,b,"])
    func duplicateColumn(header: String) {
        let error = readError(utf8(header + "\n"))
        #expect(error == CSVError(.duplicateColumn, "", file: ""))
        #expect(error?.line == 1 && error?.row == nil)
    }

    @Test func missingAndExtraFieldsNameRowAndLine() {
        let missing = readError(utf8("a,b,c\n1,2,3\n\"x\ny\",2,3\n1,2\n"), .init())
        #expect(missing?.code == .fieldCount)
        #expect(missing?.description == "t.csv row 3 (line 5): csv.field_count: expected 3 fields, found 2")
        let extra = readError(utf8("a,b,c\r\n1,2,3,4\r\n"))
        #expect(extra?.description == "t.csv row 1 (line 2): csv.field_count: expected 3 fields, found 4")
    }

    @Test func unterminatedQuoteAtEndOfFile() {
        let error = readError(utf8("a,b\n1,2\n3,\"open\nmore\n"))
        #expect(error == CSVError(.unterminatedQuote, "", file: ""))
        #expect(error?.row == 2 && error?.line == 3 && error?.column == "b")
    }

    @Test(arguments: [
        ("a,b\n1,x\"y\n", "b"),  // quote inside an unquoted field
        ("a,b\n\"x\"y,2\n", "a"),  // character after a closing quote
        ("a,b\n\"x\" ,2\n", "a"),  // even a space
    ])
    func strayQuote(input: String, column: String) {
        let error = readError(utf8(input))
        #expect(error == CSVError(.strayQuote, "", file: ""))
        #expect(error?.row == 1 && error?.line == 2 && error?.column == column)
    }

    @Test func strayQuoteInHeader() {
        let error = readError(utf8("em\"ail\n"))
        #expect(error == CSVError(.strayQuote, "", file: ""))
        #expect(error?.line == 1 && error?.row == nil)
    }

    @Test func bareCarriageReturn() {
        let error = readError(utf8("a,b\n1\r2,3\n"))
        #expect(error == CSVError(.bareCarriageReturn, "", file: ""))
        #expect(error?.row == 1)
    }

    @Test func nonUTF8HeaderIsRejected() {
        let error = readError(utf8("email,") + [0xFF, 0x61] + utf8("\na,b\n"))
        #expect(error == CSVError(.headerNotUTF8, "", file: ""))
        #expect(error?.reason == "header field 2 is not valid UTF-8")
    }

    @Test func recordLimitIsExact() {
        let limit = CSVReader.Options(maxRecordBytes: 8)
        #expect(memoryOutcome(utf8("h\n12345678\n"), limit).rows == [[utf8("12345678")]])
        #expect(readError(utf8("h\n123456789\n"), limit)?.code == .recordTooLong)
        // Quotes count: "123456" is 8 bytes in the file.
        #expect(memoryOutcome(utf8("h\n\"123456\"\n"), limit).rows == [[utf8("123456")]])
        #expect(readError(utf8("h\n\"1234567\"\n"), limit)?.code == .recordTooLong)
    }

    /// A 10 MB line is rejected once it passes 1 MiB; the record buffer never holds much more.
    @Test func tenMegabyteLineIsRejected() throws {
        let input = utf8("email\nok\n") + [UInt8](repeating: UInt8(ascii: "a"), count: 10_000_000) + utf8("\n")
        var reader = try CSVReader(bytes: input, displayName: "huge.csv")
        #expect(try reader.next() != nil)
        let error = #expect(throws: CSVError(.recordTooLong, "", file: "")) { try reader.next() }
        #expect(error?.row == 2 && error?.line == 3)
        #expect(
            error?.description
                == "huge.csv row 2 (line 3): csv.record_too_long: record is longer than the limit of 1048576 bytes")
        #expect(reader.parser.bytes.capacity <= 3 << 20)
        // And from a file, with the same result.
        #expect(fileOutcome(input) == .failed(code: .recordTooLong, line: 3, row: 2, column: nil))
    }

    @Test func errorsAreSticky() throws {
        var reader = try CSVReader(bytes: utf8("a,b\n1\n3,4\n"))
        #expect(throws: CSVError(.fieldCount, "", file: "")) { try reader.next() }
        #expect(throws: CSVError(.fieldCount, "", file: "")) { try reader.next() }
    }

    @Test func unreadableFile() {
        let error = #expect(throws: CSVError(.io, "", file: "")) {
            _ = try CSVReader(path: "/nonexistent/dir/customers.csv")
        }
        #expect(error?.file == "customers.csv")
    }
}

/// Errors and descriptions never carry field bytes: a marker in the bad row must not appear.
@Suite("CSV reader: no personal data in errors")
struct PrivacyTests {
    static let marker = "SECRET-MARKER-4711@example.com"

    @Test(arguments: [
        "email,phone\n\(marker),1,extra\n",  // field_count
        "email,phone\n\(marker)\"x,1\n",  // stray quote in unquoted field
        "email,phone\n\"\(marker)\"x,1\n",  // character after closing quote
        "email,phone\n1,\"\(marker)\n",  // unterminated quote
        "email,phone\n\(marker)\r,1\n",  // bare CR
        "email,phone\n\(marker)\(String(repeating: "z", count: 100)),1\n",  // too long (limit below)
    ])
    func errorOmitsFieldContents(input: String) throws {
        let error = try #require(readError(utf8(input), .init(maxRecordBytes: 64)))
        #expect(error.row == 1)
        for text in [error.description, error.reason, String(reflecting: error), "\(error)"] {
            #expect(!text.contains(Self.marker))
            #expect(!text.contains("SECRET"))
        }
    }

    @Test func headerErrorOmitsRowData() throws {
        var reader = try CSVReader(bytes: utf8("email\n\(Self.marker)\n"))
        let error = #expect(throws: CSVError.self) { try reader.header.require("phone") }
        #expect(error.map { !$0.description.contains("SECRET") } == true)
        let record = try #require(try reader.next())
        for text in [
            record.description, String(reflecting: record), "\(Mirror(reflecting: record).children.map { $0 })",
        ] {
            #expect(!text.contains("SECRET"))
        }
    }
}
