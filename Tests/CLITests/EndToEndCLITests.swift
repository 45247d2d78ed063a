import Foundation
import RistrettoPSI
import TestSupport
import Testing
import Workflow

/// The built `cleanroom` binary driven through files, one process per role step, as two parties
/// and a coordinator would run it on their own machines.
@Suite("Activation end to end through the CLI", .serialized)
struct EndToEndCLITests {
    /// A work directory with the three parties' folders, keys and a signed agreement.
    struct Collaboration {
        let root: String
        var agreement: String { "\(root)/agreement.json" }
        var exchange: String { "\(root)/exchange" }
        var bucket: String { "\(root)/provider-bucket" }
        var audit: String { "\(root)/coordinator/audit.sqlite" }
        func key(_ party: String) -> String { "\(root)/\(party)/keys/identity.key" }
        func state(_ party: String) -> String { "\(root)/\(party)/state" }

        init(minMatched: Int = 20, extraInvite: [String] = [], accept: Bool = true) throws {
            root =
                FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-e2e-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            for (party, role) in [("consumer", "consumer"), ("provider", "provider"), ("coordinator", "coordinator")] {
                try CLI.expectSuccess([
                    "keygen", "--role", role, "--name", party.capitalized, "--out", "\(root)/\(party)/keys",
                ])
            }
            try CLI.expectSuccess(
                [
                    "collaboration", "invite", "--identity", key("consumer"), "--coordinator",
                    "\(root)/coordinator/keys/identity.pub.json",
                    "--types", "email,phone,maid", "--default-country-code", "1", "--deliver-member-id",
                    "--min-consumer-rows", "10", "--min-matched-rows", String(minMatched), "--out", agreement,
                ] + extraInvite)
            guard accept else { return }
            try CLI.expectSuccess([
                "collaboration", "accept", "--agreement", agreement, "--identity", key("provider"), "--destination-dir",
                bucket,
            ])
            try CLI.expectSuccess([
                "collaboration", "countersign", "--agreement", agreement, "--identity", key("consumer"),
            ])
        }

        func providerPrepare(_ run: String, input: String) throws -> CLI.Result {
            try CLI.run([
                "provider", "prepare", "--agreement", agreement, "--identity", key("provider"), "--state-dir",
                state("provider"),
                "--exchange", exchange, "--run-id", run, "--input", input, "--audience-key-column", "audience_id",
                "--email-column", "email", "--phone-column", "phone", "--maid-column", "mobile_ad_id", "--json",
            ])
        }
        func consumerPrepare(_ run: String, input: String, extra: [String] = ["--skip-invalid"]) throws -> CLI.Result {
            try CLI.run(
                [
                    "consumer", "prepare", "--agreement", agreement, "--identity", key("consumer"), "--state-dir",
                    state("consumer"),
                    "--exchange", exchange, "--run-id", run, "--input", input, "--email-column", "email",
                    "--phone-column", "phone",
                    "--consent-column", "ads_consent", "--member-id-column", "member_id",
                    "--segment-id", "loyalty", "--segment-name", "Loyalty members", "--json",
                ] + extra)
        }
        func respondBoth(_ run: String) throws {
            try CLI.expectSuccess([
                "provider", "respond", "--agreement", agreement, "--identity", key("provider"), "--state-dir",
                state("provider"),
                "--exchange", exchange, "--run-id", run,
            ])
            try CLI.expectSuccess([
                "consumer", "respond", "--agreement", agreement, "--identity", key("consumer"), "--state-dir",
                state("consumer"),
                "--exchange", exchange, "--run-id", run,
            ])
        }
        func match(_ run: String) throws -> CLI.Result {
            try CLI.run([
                "coordinator", "match", "--agreement", agreement, "--identity", key("coordinator"), "--exchange",
                exchange,
                "--run-id", run, "--audit-db", audit, "--json",
            ])
        }
    }

    static func newRun() -> String { UUID().uuidString.lowercased() }

    static func writeData(_ c: Collaboration, _ data: SyntheticData) throws -> (provider: String, consumer: String) {
        let p = "\(c.root)/provider/audience.csv"
        let q = "\(c.root)/consumer/customers.csv"
        try Data(data.providerCSV).write(to: URL(fileURLWithPath: p))
        try Data(data.consumerCSV).write(to: URL(fileURLWithPath: q))
        return (p, q)
    }

    @Test func fullRunDeliversExactlyTheOverlapAndTheConsumerSeesOnlyCounts() throws {
        let c = try Collaboration()
        let data = SyntheticData(providerRows: 600, consumerRows: 400, overlap: 250)
        let (pIn, cIn) = try Self.writeData(c, data)
        let run = Self.newRun()
        let prep = try c.providerPrepare(run, input: pIn)
        #expect(prep.status == 0, "\(prep.stderr)")
        let cons = try c.consumerPrepare(run, input: cIn)
        #expect(cons.status == 0, "\(cons.stderr)")
        #expect(cons.stderr.contains("invalid values were left out"), "skipped values are reported, never silent")
        try c.respondBoth(run)
        let m = try c.match(run)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.stdout.contains("\"outcome\" : \"delivered\""))

        // The scalars are gone after each party's second step.
        let leftovers = (FileManager.default.enumerator(atPath: c.root)?.allObjects as? [String] ?? []).filter {
            $0.hasSuffix(".state")
        }
        #expect(leftovers.isEmpty, "run state files must be shredded: \(leftovers)")

        // The provider opens its delivery and gets exactly the known overlap.
        let out = "\(c.root)/provider/matched.csv"
        let opened = try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run, "--out",
            out,
        ])
        #expect(opened.stderr.contains("delivery manifest"), "progress on stderr like every step: \(opened.stderr)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
        let keys = Set(lines.map { String($0.split(separator: ",")[0]) })
        #expect(keys == data.expectedAudienceKeys)
        #expect(lines.count == keys.count)
        // --quiet, like every step: the same file, nothing on stderr.
        let quietOut = "\(c.root)/provider/matched-quiet.csv"
        let quiet = try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run,
            "--out", quietOut, "--quiet",
        ])
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: quietOut)) == (try Data(contentsOf: URL(fileURLWithPath: out))))

        // What the consumer can see: the audit log, counts only; and the one message it received.
        let view = try CLI.run([
            "audit", "show", "--db", c.audit, "--collaboration", try Self.collaborationID(c), "--json",
        ])
        #expect(view.status == 0, "\(view.stderr)")
        let consumerVisible =
            Array(view.stdout.utf8)
            + (try Array(
                Data(
                    contentsOf: URL(
                        fileURLWithPath: "\(c.exchange)/\(try Self.collaborationID(c))/\(run)/provider-blinded.crm"))))
        let auditBytes = try Array(Data(contentsOf: URL(fileURLWithPath: c.audit)))
        for key in data.expectedAudienceKeys.prefix(100) {
            #expect(!Self.contains(consumerVisible, Array(key.utf8)), "the consumer must not see provider records")
            #expect(!Self.contains(auditBytes, Array(key.utf8)))
        }
        let providerCSV = String(decoding: data.providerCSV, as: UTF8.self)
        let emails = providerCSV.split(separator: "\n").dropFirst().compactMap {
            $0.split(separator: ",", omittingEmptySubsequences: false)[1].trimmingCharacters(
                in: CharacterSet(charactersIn: "\" ")
            ).lowercased()
        }.filter { !$0.isEmpty }
        #expect(emails.count > 100)
        // The coordinator's inputs hold no plaintext identifier.
        let dir = "\(c.exchange)/\(try Self.collaborationID(c))/\(run)"
        for f in ["provider-payload.crm", "consumer-reblinded.crm", "provider-reblinded.crm"] {
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(f)")))
            for e in emails.prefix(200) {
                #expect(!Self.contains(bytes, Array(e.utf8)), "\(f) holds a plaintext identifier")
                #expect(!Self.contains(bytes, SHA256.hash(Array(e.utf8))), "\(f) holds a hashed identifier")
            }
        }
        for e in emails.prefix(200) { #expect(!Self.contains(auditBytes, Array(e.utf8))) }

        // The audit log verifies, and a re-run of the same run ID is refused.
        try CLI.expectSuccess(["audit", "verify", "--db", c.audit])
        let again = try c.match(run)
        #expect(again.status == 1)
        #expect(again.stderr.contains("activation.run_already_used"))
    }

    @Test func gzipDeliveryOpensToTheSameRows() throws {
        let c = try Collaboration(extraInvite: ["--gzip"])
        let data = SyntheticData(providerRows: 300, consumerRows: 200, overlap: 150)
        let (pIn, cIn) = try Self.writeData(c, data)
        let run = Self.newRun()
        #expect(try c.providerPrepare(run, input: pIn).status == 0)
        #expect(try c.consumerPrepare(run, input: cIn).status == 0)
        try c.respondBoth(run)
        let m = try c.match(run)
        #expect(m.status == 0, "\(m.stderr)")
        let dir = "\(c.bucket)/\(try Self.collaborationID(c))/\(run)"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(names.contains("part-00000.csv.gz") && names.contains("manifest.json"))
        let out = "\(c.root)/provider/matched.csv"
        try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run, "--out",
            out,
        ])
        let keys = Set(
            try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst().map {
                String($0.split(separator: ",")[0])
            })
        #expect(keys == data.expectedAudienceKeys)
    }

    /// The coordinator with a 4 KiB spill budget (hundreds of join partitions, sorted runs and
    /// the provider rows on disk, SPEC §9 "Coordinator (round 5)") delivers the overlap, spills
    /// only inside its private store, and leaves no scratch file behind.
    @Test func spillingCoordinatorDeliversTheOverlapFromItsPrivateScratch() throws {
        let c = try Collaboration(extraInvite: ["--gzip"])
        let data = SyntheticData(providerRows: 400, consumerRows: 300, overlap: 200)
        let (pIn, cIn) = try Self.writeData(c, data)
        let run = Self.newRun()
        #expect(try c.providerPrepare(run, input: pIn).status == 0)
        #expect(try c.consumerPrepare(run, input: cIn).status == 0)
        try c.respondBoth(run)
        let m = try CLI.run(
            [
                "coordinator", "match", "--agreement", c.agreement, "--identity", c.key("coordinator"), "--exchange",
                c.exchange,
                "--run-id", run, "--audit-db", c.audit, "--json",
            ], environment: ["CLEANROOM_SPILL_BYTES": "4096"])
        #expect(m.status == 0, "\(m.stderr)")
        let scratch = c.audit + ".private/scratch"
        let attributes = try FileManager.default.attributesOfItem(atPath: scratch)
        #expect((attributes[.posixPermissions] as? Int) == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "scratch files are unlinked")
        let out = "\(c.root)/provider/matched.csv"
        try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run, "--out",
            out,
        ])
        let keys = Set(
            try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst().map {
                String($0.split(separator: ",")[0])
            })
        #expect(keys == data.expectedAudienceKeys)
    }

    @Test func belowThresholdDeliversNothingAndIsRecorded() throws {
        let c = try Collaboration(minMatched: 10_000)
        let data = SyntheticData(providerRows: 300, consumerRows: 200, overlap: 100)
        let (pIn, cIn) = try Self.writeData(c, data)
        let run = Self.newRun()
        #expect(try c.providerPrepare(run, input: pIn).status == 0)
        #expect(try c.consumerPrepare(run, input: cIn).status == 0)
        try c.respondBoth(run)
        let m = try c.match(run)
        #expect(m.status == 1)
        #expect(!FileManager.default.fileExists(atPath: "\(c.bucket)/\(try Self.collaborationID(c))/\(run)"))
        let view = try CLI.run(["audit", "show", "--db", c.audit, "--collaboration", try Self.collaborationID(c)])
        #expect(view.stdout.contains("below_threshold"))
    }

    @Test func badInputNamesFileRowAndRuleAndLeavesNothing() throws {
        let c = try Collaboration()
        let input = "\(c.root)/consumer/customers.csv"
        try Data(
            "member_id,email,phone,ads_consent\nM1,alice.person@example.com,,yes\nM2,bob.secret@@example.com,,yes\n"
                .utf8
        )
        .write(to: URL(fileURLWithPath: input))
        let run = Self.newRun()
        let r = try c.consumerPrepare(run, input: input, extra: [])
        #expect(r.status == 1)
        #expect(r.stderr.contains("customers.csv row 2"))
        #expect(r.stderr.contains("'email'"))
        #expect(!r.stderr.contains("bob.secret"))
        #expect(!FileManager.default.fileExists(atPath: "\(c.exchange)"), "no partial output")
        #expect(
            !FileManager.default.fileExists(
                atPath: c.state("consumer") + "/" + (try Self.collaborationID(c)) + "/\(run).consumer.state"))
        // A malformed CSV row: wrong field count.
        try Data("member_id,email,phone,ads_consent\nM1,a@example.com,,yes,extra\n".utf8).write(
            to: URL(fileURLWithPath: input))
        let r2 = try c.consumerPrepare(run, input: input, extra: [])
        #expect(r2.status == 1)
        #expect(r2.stderr.contains("csv.field_count"))
        // Usage errors exit 64.
        #expect(try CLI.run(["consumer", "prepare", "--no-such-flag"]).status == 64)
    }

    @Test func tamperedAgreementIsRefusedByEveryStep() throws {
        let c = try Collaboration()
        var text = try String(contentsOfFile: c.agreement, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"minMatchedRows\" : 20", with: "\"minMatchedRows\" : 1")
        try text.write(toFile: c.agreement, atomically: true, encoding: .utf8)
        let v = try CLI.run(["collaboration", "verify", "--agreement", c.agreement])
        #expect(v.status == 1)
        #expect(v.stderr.contains("activation.agreement.signature_invalid"))
        let m = try c.match(Self.newRun())
        #expect(m.status == 1)
        #expect(
            !FileManager.default.fileExists(atPath: c.audit),
            "nothing is recorded under an agreement that does not verify")
    }

    static func collaborationID(_ c: Collaboration) throws -> String {
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: c.agreement)))
            as! [String: Any]
        return (json["terms"] as! [String: Any])["collaborationID"] as! String
    }

    static func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        Data(hay).range(of: Data(needle)) != nil
    }
}
