// libFuzzer harness: the CSV reader (Tabular.CSVReader) on arbitrary bytes.
//
// Invariants checked on every input:
// - the reader ends with records or a CSVError, never a crash or a hang;
// - every record has exactly the header's number of fields; rows count 1, 2, 3, ...; lines never
//   go backwards; the fields' bytes together never exceed the input's bytes;
// - a file that reads cleanly survives a round trip through CSVWriter: the same header names
//   and the same fields, byte for byte.
import FuzzSupport
import Tabular

func fuzzOne(_ data: [UInt8]) {
    // A small record limit so inputs reach the `csv.record_too_large` path; the last input bit
    // decides whether a header-only file is an error.
    let options = CSVReader.Options(maxRecordBytes: 512, rejectHeaderOnly: data.last.map { $0 & 1 == 1 } ?? false)
    let reader: CSVReader
    do { reader = try CSVReader(bytes: data, displayName: "fuzz.csv", options: options) } catch { return }
    var r = reader
    let header = r.header
    invariant(header.count > 0, "a header with no columns was accepted")
    var records: [[[UInt8]]] = []
    var fieldBytes = 0
    var lastLine = 0
    while true {
        let record: CSVRecord?
        do { record = try r.next() } catch {
            invariant(error.file == "fuzz.csv", "error names another file: \(error.file)")
            return
        }
        guard let record else { break }
        invariant(record.count == header.count, "row \(record.row) has \(record.count) fields, header \(header.count)")
        invariant(record.row == records.count + 1, "row numbers skip: \(record.row) after \(records.count)")
        invariant(record.line >= lastLine, "line numbers go backwards")
        lastLine = record.line
        fieldBytes += record.reduce(0) { $0 + $1.count }
        invariant(fieldBytes <= data.count, "fields hold more bytes than the input")
        records.append(record.fields)
    }
    invariant(records.count <= data.count, "more records than input bytes")
    invariant(r.rowCount == records.count, "rowCount \(r.rowCount) disagrees with \(records.count) records")

    // Round trip through the writer.
    let encoded: [UInt8]
    do { encoded = try CSVWriter.encode([header.names.map { Array($0.utf8) }] + records) } catch {
        invariant(false, "the writer refused records the reader produced: \(error)")
        return
    }
    do {
        var again = try CSVReader(bytes: encoded, displayName: "again.csv", options: .init(maxRecordBytes: 1 << 20))
        invariant(again.header.names == header.names, "header names changed in a round trip")
        let back = try again.readAll().map(\.fields)
        invariant(back == records, "fields changed in a round trip")
    } catch {
        invariant(false, "the writer's output does not read back: \(error)")
    }
}

#if CLEANROOM_FUZZING
/// libFuzzer's entry point: runs one input through `fuzzOne`; always returns 0 (a broken invariant
/// stops the process instead).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(fuzzInput(data, size))
    return 0
}
#else
@main enum Replay { static func main() { replayMain("FuzzCSV", fuzzOne) } }
#endif
