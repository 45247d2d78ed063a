import Foundation
import TestSupport
import Testing
import Workflow

/// Rounds 1 and 2 through the built binary with a 4 KiB spill budget (`CLEANROOM_SPILL_BYTES`):
/// every partition and shuffle bucket goes through scratch files in the party's private state
/// directory, and the run still delivers exactly the known overlap with the summaries of an
/// unconstrained run (SPEC §9 "Bounded memory", "Rounds 1 and 2").
@Suite("Prepare spilling to the state directory, through the CLI", .serialized)
struct PrepareSpillCLITests {
    typealias Collaboration = EndToEndCLITests.Collaboration

    static func summary(_ r: CLI.Result) throws -> [String: Int] {
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        return json.compactMapValues { $0 as? Int }
    }

    @Test func tinyBudgetDeliversTheOverlapWithUnchangedSummaries() throws {
        let c = try Collaboration()
        let data = SyntheticData(providerRows: 900, consumerRows: 700, overlap: 400)
        let (pIn, cIn) = try EndToEndCLITests.writeData(c, data)
        let spill = ["CLEANROOM_SPILL_BYTES": "4096"]

        let run = EndToEndCLITests.newRun()
        let p = try CLI.run(
            [
                "provider", "prepare", "--agreement", c.agreement, "--identity", c.key("provider"), "--state-dir",
                c.state("provider"),
                "--exchange", c.exchange, "--run-id", run, "--input", pIn, "--audience-key-column", "audience_id",
                "--email-column", "email", "--phone-column", "phone", "--maid-column", "mobile_ad_id", "--json",
            ], environment: spill)
        #expect(p.status == 0, "\(p.stderr)")
        let q = try CLI.run(
            [
                "consumer", "prepare", "--agreement", c.agreement, "--identity", c.key("consumer"), "--state-dir",
                c.state("consumer"),
                "--exchange", c.exchange, "--run-id", run, "--input", cIn, "--email-column", "email", "--phone-column",
                "phone",
                "--consent-column", "ads_consent", "--member-id-column", "member_id", "--segment-id", "loyalty",
                "--segment-name", "Loyalty members", "--json", "--skip-invalid",
            ], environment: spill)
        #expect(q.status == 0, "\(q.stderr)")
        // Scratch files are unlinked as soon as they are made: nothing is left in the state directories.
        for party in ["provider", "consumer"] {
            let scratch = (try? FileManager.default.contentsOfDirectory(atPath: "\(c.state(party))/scratch")) ?? []
            #expect(scratch.isEmpty, "\(party) scratch left: \(scratch)")
        }

        // The same inputs without a budget: identical summaries.
        let plain = EndToEndCLITests.newRun()
        let p2 = try c.providerPrepare(plain, input: pIn)
        let q2 = try c.consumerPrepare(plain, input: cIn)
        #expect(p2.status == 0 && q2.status == 0)
        #expect(try Self.summary(p) == Self.summary(p2))
        #expect(try Self.summary(q) == Self.summary(q2))

        try c.respondBoth(run)
        let m = try c.match(run)
        #expect(m.status == 0, "\(m.stderr)")
        let out = "\(c.root)/provider/matched-spill.csv"
        try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run, "--out",
            out,
        ])
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
        let keys = Set(lines.map { String($0.split(separator: ",")[0]) })
        #expect(keys == data.expectedAudienceKeys)
        #expect(lines.count == keys.count)
    }
}
