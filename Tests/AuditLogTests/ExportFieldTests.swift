import Testing

@testable import AuditLog

/// RFC 4180 §2 rules 6–7 for the audit export's CSV fields (`Protocol/AUDIT_LOG.md` §"Export").
@Suite("Audit log: CSV export fields")
struct ExportFieldTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String, field: String, expected: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "plain", field: "delivered", expected: "delivered"),
        Case(name: "empty", field: "", expected: ""),
        Case(name: "comma", field: "a,b", expected: "\"a,b\""),
        Case(name: "quote doubled", field: "a\"b", expected: "\"a\"\"b\""),
        Case(name: "LF", field: "a\nb", expected: "\"a\nb\""),
        Case(name: "CR", field: "a\rb", expected: "\"a\rb\""),
        // CR LF is one Swift Character equal to neither "\r" nor "\n": the old check let it through.
        Case(name: "CRLF", field: "a\r\nb", expected: "\"a\r\nb\""),
        // A quote followed by a combining mark is one Character too; the quote must still be doubled.
        Case(name: "quote + combining mark", field: "a\"\u{301}b", expected: "\"a\"\"\u{301}b\""),
        Case(name: "non-ASCII, nothing to quote", field: "café", expected: "café"),
    ]

    @Test("one field", arguments: cases)
    func field(_ c: Case) {
        #expect(AuditLog.csvField(c.field) == c.expected)
    }
}
