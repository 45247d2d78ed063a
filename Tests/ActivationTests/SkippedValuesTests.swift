import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// `--skip-invalid` in bounded memory (SPEC §9 "Bounded memory"): the first skips stay in memory
/// for the summary, the rest go to the party's scratch space, and every one comes back, in input
/// order, with its row, column and rule.
@Suite("Skipped values")
struct SkippedValuesTests {
    @Test("past the ones kept in memory, skips spill and come back in order with their names")
    func spillAndReadBack() throws {
        let scratch = MemoryScratch()
        var skipped = SkippedValues()
        let columns = ["email", "phone, mobile"]
        let codes = ["identifier.email.malformed", "identifier.phone.too_short", "identifier.empty"]
        var expected: [String] = []
        for i in 0..<250 {
            let s = SkippedValue(row: 3 * i + 1, column: columns[i % 2], code: codes[i % 3])
            expected.append(s.description)
            try skipped.append(s, scratch: scratch)
        }
        #expect(skipped.count == 250)
        #expect(skipped.earliest.count == SkippedValues.keptInMemory)
        #expect(skipped.earliest.map(\.description) == Array(expected.prefix(SkippedValues.keptInMemory)))
        #expect(try skipped.all().map(\.description) == expected)
    }

    @Test("no more than the ones kept in memory: nothing spilled, all of them back")
    func fewSkipsStayInMemory() throws {
        var skipped = SkippedValues()
        for i in 0..<3 {
            try skipped.append(
                SkippedValue(row: i + 1, column: "email", code: "identifier.empty"), scratch: MemoryScratch())
        }
        #expect(skipped.count == 3 && skipped.earliest.count == 3)
        #expect(try skipped.all().map(\.row) == [1, 2, 3])
        #expect(try SkippedValues().all().isEmpty)
    }

    @Test("a consumer prepare with 130 invalid emails lists all 130 by row, in input order, never the value")
    func prepareListsEverySkip() throws {
        let f = Fixture(deliverMemberID: false)
        let consumer = try Consumer(agreement: try f.agreement(), signingKey: f.consumerID.signingKey)
        var rows = People.consumerRows()
        var expectedRows: [Int] = []
        for k in 0..<130 {
            let n = k + 10
            rows[n] = InputRow(
                row: n + 1,
                fields: [
                    Array("member-\(n)".utf8), Array("secret.person.\(n)-at-example.com".utf8), [],
                    Array("yes".utf8), Array("gold".utf8),
                ])
            expectedRows.append(n + 1)
        }
        let q = ConsumerQuery(
            source: "customers.csv", rows: rows, identifierColumns: People.consumerColumns,
            consentColumns: [(3, "ads_consent")], segmentID: "s", segmentName: "S", invalidValues: .skipAndReport)
        let r = try consumer.prepare(runID: AgreementTerms.newID(), query: q)
        #expect(r.summary.skippedValues == 130)
        #expect(r.skipped.map(\.row) == expectedRows)
        #expect(r.skipped.allSatisfy { $0.column == "email" && $0.code == "identifier.email.malformed" })
        #expect(!r.skipped.map(\.description).joined().contains("secret.person"))
    }
}
