import Foundation
import Testing

@testable import Tabular

/// The file reader with tiny chunks behaves exactly like one read of the whole input.
@Suite("CSV reader: chunk boundaries")
struct ChunkBoundaryTests {
    static let inputs: [[UInt8]] = [
        [0xEF, 0xBB, 0xBF] + utf8("email,phone\r\n\"a,b\",\"q\"\"q\"\r\n\"multi\r\nline\",2\r\n,\r\nlast,x"),
        utf8("email,note\n\"\"\"\",\"\"\n\n\"x\ny\",z\n\n\n"),
        // A partial BOM is not skipped: it stays in the header, which is then not UTF-8.
        [0xEF, 0xBB] + utf8("email\n"),
        utf8("email\na\n\nb\n\n\n"),
        utf8("h1,h2\n1,2\n3,\"open\n"),
        utf8("h1,h2\n1,2\n\"x\"y,2\n"),
        utf8("h1,h2\n1\r2,3\n"),
        utf8("h1,h2\n1,2,3\n"),
        utf8("h1,h2\n1,2\n\n3,4\n"),
        utf8("h\n") + [0xFF, 0x00, 0xC3] + utf8("\n"),
        utf8("h\n") + [UInt8](repeating: 0x61, count: 40) + utf8("\n"),
    ]

    @Test(arguments: [1, 2, 3, 7, 64, 1 << 20])
    func fileReaderMatchesWholeInput(chunkSize: Int) {
        for input in Self.inputs {
            let options = CSVReader.Options(maxRecordBytes: 32, chunkSize: chunkSize)
            let expected = memoryOutcome(input, CSVReader.Options(maxRecordBytes: 32))
            #expect(fileOutcome(input, options) == expected, "chunk size \(chunkSize)")
            #expect(memoryOutcome(input, options) == expected, "chunk size \(chunkSize)")
        }
    }

    @Test func expectedOutcomesOfTheChunkInputs() {
        // Pins the whole-input results so the comparison above is not between two equal wrongs.
        #expect(
            memoryOutcome(Self.inputs[0])
                == .parsed(
                    header: ["email", "phone"],
                    rows: [
                        [utf8("a,b"), utf8("q\"q")], [utf8("multi\r\nline"), utf8("2")], [[], []],
                        [utf8("last"), utf8("x")],
                    ],
                    lines: [2, 3, 5, 6], rowNumbers: [1, 2, 3, 4]))
        #expect(memoryOutcome(Self.inputs[2]) == .failed(code: .headerNotUTF8, line: 1, row: nil, column: nil))
        #expect(memoryOutcome(Self.inputs[4]) == .failed(code: .unterminatedQuote, line: 3, row: 2, column: "h2"))
        #expect(
            memoryOutcome(Self.inputs[10], .init(maxRecordBytes: 32))
                == .failed(code: .recordTooLong, line: 2, row: 1, column: nil))
    }
}

/// What the writer writes, the reader reads back unchanged.
@Suite("CSV writer and round trip")
struct WriterTests {
    @Test func quotingRules() throws {
        let out = try CSVWriter.encode(
            [["a", "b,c", "d\"e", "f\ng", "h\ri", ""], ["1", "2", "3", "4", "5", "6"]].map { $0.map(utf8) })
        #expect(String(decoding: out, as: UTF8.self) == "a,\"b,c\",\"d\"\"e\",\"f\ng\",\"h\ri\",\n1,2,3,4,5,6\n")
    }

    @Test func loneEmptyFieldIsQuoted() throws {
        let out = try CSVWriter.encode([[utf8("email")], [[]], [[]]])
        #expect(String(decoding: out, as: UTF8.self) == "email\n\"\"\n\"\"\n")
        #expect(memoryOutcome(out).rows == [[[]], [[]]])
    }

    @Test func leadingByteOrderMarkInAFieldIsQuoted() throws {
        let out = try CSVWriter.encode([[[0xEF, 0xBB, 0xBF] + utf8("h")], [utf8("x")]])
        #expect(out.first == UInt8(ascii: "\""))
        #expect(memoryOutcome(out) == .parsed(header: ["\u{FEFF}h"], rows: [[utf8("x")]], lines: [2], rowNumbers: [1]))
    }

    @Test func crlfLineEnding() throws {
        let out = try CSVWriter.encode([[utf8("a"), utf8("b")], [utf8("1"), utf8("2")]], lineEnding: .crlf)
        #expect(String(decoding: out, as: UTF8.self) == "a,b\r\n1,2\r\n")
    }

    @Test func fieldCountMismatchWritesNothingOfTheRecord() throws {
        var output: [UInt8] = []
        var writer = CSVWriter(displayName: "out.csv") { (bytes) throws(CSVError) in output.append(contentsOf: bytes) }
        try writer.write(["a", "b"])
        let error = #expect(throws: CSVError(.fieldCount, "", file: "")) { try writer.write(["only"]) }
        #expect(error?.description == "out.csv: csv.field_count: record 2: expected 2 fields, found 1")
        try writer.write(["c", "d"])  // the writer stays usable: the bad record was not written
        try writer.flush()
        #expect(String(decoding: output, as: UTF8.self) == "a,b\nc,d\n")
    }

    @Test func sinkSeesEveryByteOnceInOrder() throws {
        var chunks: [[UInt8]] = []
        var writer = CSVWriter(flushThreshold: 10) { (bytes) throws(CSVError) in chunks.append(Array(bytes)) }
        let records = (0..<50).map { ["id\($0)", "x,\($0)"] }
        for record in records { try writer.write(record) }
        try writer.flush()
        #expect(chunks.count > 1)
        #expect(chunks.flatMap { $0 } == (try CSVWriter.encode(records.map { $0.map(utf8) })))
    }

    @Test func fileWriterObserverSeesTheFileBytes() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tabular-w-\(UUID().uuidString).csv")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: url) }
        let handle = try FileHandle(forWritingTo: url)
        var observed: [UInt8] = []
        var writer = CSVWriter(fileHandle: handle, displayName: "out.csv") { observed.append(contentsOf: $0) }
        try writer.write(["email", "note"])
        try writer.write(["a@x", "say \"hi\", bye"])
        try writer.flush()
        try handle.close()
        let written = [UInt8](try Data(contentsOf: url))
        #expect(written == observed)
        #expect(String(decoding: written, as: UTF8.self) == "email,note\na@x,\"say \"\"hi\"\", bye\"\n")
    }

    /// Random fields over an alphabet full of CSV metacharacters and non-UTF-8 bytes survive a
    /// write and a read (from memory, and from a file in 3-byte chunks) unchanged.
    @Test(arguments: [(1, CSVWriter.LineEnding.lf), (1, .crlf), (2, .lf), (5, .crlf), (5, .lf)])
    func roundTrip(columns: Int, lineEnding: CSVWriter.LineEnding) throws {
        let alphabet: [UInt8] = utf8("ab ,\"\r\n\t") + [0x00, 0xEF, 0xBB, 0xBF, 0xFF, 0x80]
        var rng = SplitMix64(state: UInt64(columns * 1000 + (lineEnding == .lf ? 1 : 2)))
        let header = (0..<columns).map { utf8("col\($0)") }
        let rows: [[[UInt8]]] = (0..<300).map { _ in
            (0..<columns).map { _ in
                (0..<Int.random(in: 0...6, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
            }
        }
        let encoded = try CSVWriter.encode([header] + rows, lineEnding: lineEnding)
        let expected = Outcome.parsed(
            header: (0..<columns).map { "col\($0)" }, rows: rows,
            lines: Self.startLines(rows, lineBreaksPerRecord: 1), rowNumbers: Array(1...rows.count))
        #expect(memoryOutcome(encoded) == expected)
        #expect(fileOutcome(encoded, .init(chunkSize: 3)) == expected)
    }

    /// The line each record starts on: 2 for the first, then one more per LF in a record.
    static func startLines(_ rows: [[[UInt8]]], lineBreaksPerRecord: Int) -> [Int] {
        var line = 2
        return rows.map { row in
            defer { line += lineBreaksPerRecord + row.reduce(0) { $0 + $1.count { $0 == UInt8(ascii: "\n") } } }
            return line
        }
    }
}
