import Testing

@testable import Activation

/// The consent rule compared as bytes must say what the String rule it replaced says:
/// `truthy.contains(String(decoding: trimmed(cell), as: UTF8.self).lowercased())`.
@Suite("Consent cells")
struct ConsentCellTests {
    static func stringRule(_ cell: [UInt8]) -> Bool {
        Consumer.truthy.contains(String(decoding: Consumer.trimmed(cell[...]), as: UTF8.self).lowercased())
    }

    static let cases: [String] = [
        "true", "TRUE", "True", " yes ", "\tY", "y", "1", " 1\t", "YeS", "tRuE",
        "", " ", "0", "no", "false", "n", "yes!", "yess", "ye", "tru", "truee", "11", "y y", "t rue",
        "yës", "\u{FF59}", "ÿes", "TRUE\u{0301}", "1 ", "\u{00A0}yes", "yes\r",
    ]

    @Test("byte rule equals the String rule", arguments: cases)
    func sameAsStringRule(cell: String) {
        let bytes = Array(cell.utf8)
        #expect(Consumer.isTruthy(bytes[...]) == Self.stringRule(bytes))
    }

    /// Every cell of up to two bytes (all 65,792 of them, including invalid UTF-8), and a
    /// sample of four-byte cells around the words' letters.
    @Test("byte rule equals the String rule on every short cell")
    func exhaustiveShortCells() {
        var cells: [[UInt8]] = [[]]
        for a in 0...255 { cells.append([UInt8(a)]) }
        for a in 0...255 { for b in 0...255 { cells.append([UInt8(a), UInt8(b)]) } }
        let letters: [UInt8] = Array("tTrRuUeEyYsS1 \u{9}".utf8) + [0xC3, 0xBF, 0x00, 0x7F]
        for a in letters { for b in letters { for c in letters { for d in letters { cells.append([a, b, c, d]) } } } }
        var mismatches = 0
        for cell in cells where Consumer.isTruthy(cell[...]) != Self.stringRule(cell) { mismatches += 1 }
        #expect(mismatches == 0)
    }
}
