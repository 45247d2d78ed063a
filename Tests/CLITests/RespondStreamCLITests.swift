import Foundation
import TestSupport
import Testing
import Workflow

/// Rounds 3 and 4 streamed through files by the built binary (SPEC §9 "Bounded memory"): with a
/// tiny spill budget the shuffle and the duplicate check go through many scratch files in the
/// party's private state directory and the run still delivers exactly the overlap; a refused
/// input leaves no answer, no temporary file and no scratch file; an answer already published by
/// a crashed attempt still shreds the state.
@Suite("Streamed respond steps through the CLI", .serialized)
struct RespondStreamCLITests {
    typealias Collaboration = EndToEndCLITests.Collaboration

    static func prepared(_ c: Collaboration, _ data: SyntheticData) throws -> (run: String, dir: String) {
        let (pIn, cIn) = try EndToEndCLITests.writeData(c, data)
        let run = EndToEndCLITests.newRun()
        #expect(try c.providerPrepare(run, input: pIn).status == 0)
        #expect(try c.consumerPrepare(run, input: cIn).status == 0)
        return (run, "\(c.exchange)/\(try EndToEndCLITests.collaborationID(c))/\(run)")
    }

    static func respond(_ c: Collaboration, _ party: String, _ run: String, environment: [String: String] = [:]) throws
        -> CLI.Result
    {
        try CLI.run(
            [
                party, "respond", "--agreement", c.agreement, "--identity", c.key(party), "--state-dir", c.state(party),
                "--exchange", c.exchange, "--run-id", run,
            ], environment: environment)
    }

    /// Entries of a directory (empty when it does not exist).
    static func entries(_ dir: String) -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] }

    @Test func tinySpillBudgetStillDeliversExactlyTheOverlap() throws {
        let c = try Collaboration()
        let data = SyntheticData(providerRows: 600, consumerRows: 400, overlap: 250)
        let (run, dir) = try Self.prepared(c, data)
        // 4 KiB per bucket and partition: dozens of scratch files per step.
        for party in ["provider", "consumer"] {
            let r = try Self.respond(c, party, run, environment: ["CLEANROOM_SPILL_BYTES": "4096"])
            #expect(r.status == 0, "\(party): \(r.stderr)")
            // Scratch files are unlinked as soon as they are made: none is left behind.
            #expect(FileManager.default.fileExists(atPath: "\(c.state(party))/scratch"))
            #expect(Self.entries("\(c.state(party))/scratch").isEmpty)
        }
        #expect(
            Self.entries(dir).sorted() == [
                "consumer-blinded.crm", "consumer-reblinded.crm", "provider-blinded.crm",
                "provider-payload.crm", "provider-reblinded.crm",
            ], "no temporary file left")
        let m = try c.match(run)
        #expect(m.status == 0, "\(m.stderr)")
        let out = "\(c.root)/provider/matched.csv"
        try CLI.expectSuccess([
            "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run, "--out",
            out,
        ])
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(Set(lines.map { String($0.split(separator: ",")[0]) }) == data.expectedAudienceKeys)
    }

    @Test(
        "a tampered input body: refused with its code, no answer, no temporary or scratch file, state kept",
        arguments: [
            ("provider", "consumer-blinded.crm", "consumer-reblinded.crm"),
            ("consumer", "provider-blinded.crm", "provider-reblinded.crm"),
        ])
    func tamperedBodyLeavesNothing(party: String, input: String, answer: String) throws {
        let c = try Collaboration()
        let (run, dir) = try Self.prepared(c, SyntheticData(providerRows: 300, consumerRows: 200, overlap: 100))
        let path = "\(dir)/\(input)"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 65] ^= 0x80  // the last body byte
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try Self.respond(c, party, run, environment: ["CLEANROOM_SPILL_BYTES": "4096"])
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("activation.message.checksum_mismatch") && r.stderr.contains(input), "stderr: \(r.stderr)"
        )
        #expect(
            !Self.entries(dir).contains { $0.contains(answer) }, "no answer and no temporary file: \(Self.entries(dir))"
        )
        #expect(Self.entries("\(c.state(party))/scratch").isEmpty)
        #expect(
            FileManager.default.fileExists(
                atPath: "\(c.state(party))/\(try EndToEndCLITests.collaborationID(c))/\(run).\(party).state"))
    }

    @Test(
        "an answer already published (a crashed attempt's): refused as already_exists, the state is shredded",
        arguments: ["provider", "consumer"])
    func answerAlreadyPublished(party: String) throws {
        let c = try Collaboration()
        let (run, _) = try Self.prepared(c, SyntheticData(providerRows: 300, consumerRows: 200, overlap: 100))
        let state = "\(c.state(party))/\(try EndToEndCLITests.collaborationID(c))/\(run).\(party).state"
        let saved = try Data(contentsOf: URL(fileURLWithPath: state))
        #expect(try Self.respond(c, party, run).status == 0)
        #expect(!FileManager.default.fileExists(atPath: state))
        // As if the first attempt was killed after publishing, before shredding its state.
        try saved.write(to: URL(fileURLWithPath: state))
        let again = try Self.respond(c, party, run)
        #expect(again.status == 1)
        #expect(again.stderr.contains("workflow.already_exists"), "stderr: \(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: state), "the scalar has no further use")
    }
}
