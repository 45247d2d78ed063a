import Testing

@testable import Activation

/// `InputRow` keeps every field of a row in one allocation (SPEC §9 "Bounded memory"); these
/// cases check that what goes in comes out, field by field, including empty fields.
@Suite("Input rows (compact storage)")
struct InputRowTests {
    static let cases: [[String]] = [
        [],
        [""],
        ["a@example.com"],
        ["", "", ""],
        ["M0000001", "", "555.010.0001", "gold", "yes"],
        ["x", String(repeating: "é", count: 300), ""],
    ]

    @Test(arguments: cases)
    func fieldsRoundTrip(_ fields: [String]) {
        let bytes = fields.map { Array($0.utf8) }
        let row = InputRow(row: 7, fields: bytes)
        #expect(row.row == 7)
        #expect(row.fieldCount == bytes.count)
        #expect(row.fields == bytes)
        for (i, f) in bytes.enumerated() { #expect(Array(row.field(i)) == f) }
    }

    /// The streamed prepares build rows from a CSV record's packed bytes and field ends: the
    /// same row as from one array per field.
    @Test(arguments: cases)
    func packedMatchesFields(_ fields: [String]) {
        let bytes = fields.map { Array($0.utf8) }
        var ends: [Int] = []
        for f in bytes { ends.append((ends.last ?? 0) + f.count) }
        let packed = bytes.flatMap { $0 }
        let row = packed.withUnsafeBytes { b in ends.withUnsafeBufferPointer { InputRow(row: 9, bytes: b, ends: $0) } }
        let reference = InputRow(row: 9, fields: bytes)
        #expect(row.row == 9)
        #expect(row.fieldCount == reference.fieldCount)
        #expect(row.fields == bytes)
        for i in 0..<bytes.count { #expect(row.field(i) == reference.field(i)) }
    }
}

/// The in-place record permutation that lets round 3 answer in its input's buffer gives the same
/// bytes as copying record `permutation[j]` to position `j`.
@Suite("In-place record permutation")
struct PermuteRecordsTests {
    static let permutations: [[Int]] = [
        [], [0], [1, 0], [0, 1, 2], [2, 0, 1], [1, 2, 0, 4, 3], [5, 4, 3, 2, 1, 0],
    ]

    @Test(arguments: permutations)
    func matchesCopying(_ perm: [Int]) {
        let recordSize = 3
        let records = (0..<(perm.count * recordSize)).map { UInt8($0) }
        var expected = [UInt8]()
        for j in perm { expected += records[(j * recordSize)..<((j + 1) * recordSize)] }
        var inPlace = records
        inPlace.withUnsafeMutableBytes { Layout.permuteRecords($0, recordSize: recordSize, perm) }
        #expect(inPlace == expected)
    }
}
