import Foundation
import Testing

@testable import Tabular

/// The UTF-8 bytes of `s`.
func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Everything a reader produced, or where it failed; equal outcomes mean identical behaviour.
enum Outcome: Equatable, CustomStringConvertible {
    case parsed(header: [String], rows: [[[UInt8]]], lines: [Int], rowNumbers: [Int])
    case failed(code: CSVError.Code, line: Int?, row: Int?, column: String?)

    var description: String {
        switch self {
        case .parsed(let header, let rows, let lines, let rowNumbers):
            return
                "parsed(header: \(header), \(rows.count) rows, lines: \(lines.prefix(20)), rows: \(rowNumbers.prefix(20)))"
        case .failed(let code, let line, let row, let column):
            return
                "failed(\(code.rawValue), line: \(String(describing: line)), row: \(String(describing: row)), column: \(String(describing: column)))"
        }
    }

    var rows: [[[UInt8]]] {
        if case .parsed(_, let rows, _, _) = self { return rows }
        return []
    }
}

/// Drains the reader `open` creates into an ``Outcome``.
func outcome(_ open: () throws(CSVError) -> CSVReader) -> Outcome {
    do throws(CSVError) {
        var reader = try open()
        var rows: [[[UInt8]]] = []
        var lines: [Int] = []
        var rowNumbers: [Int] = []
        while let record = try reader.next() {
            rows.append(record.fields)
            lines.append(record.line)
            rowNumbers.append(record.row)
        }
        return .parsed(header: reader.header.names, rows: rows, lines: lines, rowNumbers: rowNumbers)
    } catch {
        return .failed(code: error.code, line: error.line, row: error.row, column: error.column)
    }
}

func memoryOutcome(_ input: [UInt8], _ options: CSVReader.Options = .init()) -> Outcome {
    outcome { () throws(CSVError) in try CSVReader(bytes: input, displayName: "t.csv", options: options) }
}

func fileOutcome(_ input: [UInt8], _ options: CSVReader.Options = .init()) -> Outcome {
    withTemporaryFile(input) { path in
        outcome { () throws(CSVError) in try CSVReader(path: path, options: options) }
    }
}

/// Reads `input` from memory and expects an error; returns it for further checks.
func readError(_ input: [UInt8], _ options: CSVReader.Options = .init()) -> CSVError? {
    do throws(CSVError) {
        var reader = try CSVReader(bytes: input, displayName: "t.csv", options: options)
        while try reader.next() != nil {}
        return nil
    } catch {
        return error
    }
}

/// Writes `bytes` to a fresh file in the temporary directory, runs `body` on its path, deletes it.
func withTemporaryFile<R>(_ bytes: [UInt8], _ body: (String) -> R) -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tabular-\(UUID().uuidString).csv")
    _ = FileManager.default.createFile(atPath: url.path, contents: Data(bytes))
    defer { try? FileManager.default.removeItem(at: url) }
    return body(url.path)
}

/// A deterministic generator (SplitMix64), so a failing random case can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
