import Foundation
import TestSupport
import Testing

/// `--json` failures (README "Exit codes"): one JSON object on stdout with the stable code, the
/// stderr line's message and the exit code, so scripts read every outcome the same way; never a
/// second object after a command's own JSON report.
@Suite("CLI: failures with --json")
struct JSONFailureTests {
    static func object(_ r: CLI.Result) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "stdout: \(r.stdout)")
    }

    @Test func usageErrorIsCLIUsage() throws {
        let r = try CLI.run(["provider", "respond", "--json", "--no-such-flag"])
        #expect(r.status == 64)
        let o = try Self.object(r)
        let error = try #require(o["error"] as? [String: Any])
        #expect(error["code"] as? String == "cli.usage")
        #expect((error["message"] as? String)?.contains("--no-such-flag") == true)
        #expect(o["exitCode"] as? Int == 64)
    }

    @Test func moduleErrorCarriesItsCode() throws {
        let missing = NSTemporaryDirectory() + "cleanroom-json-\(UUID().uuidString)/agreement.json"
        let r = try CLI.run([
            "provider", "respond", "--agreement", missing, "--identity", missing, "--state-dir", missing,
            "--exchange", missing, "--run-id", UUID().uuidString.lowercased(), "--json", "--quiet",
        ])
        #expect(r.status == 1)
        let error = try #require(try Self.object(r)["error"] as? [String: Any])
        #expect(error["code"] as? String == "workflow.not_found")
        #expect((error["message"] as? String)?.contains(missing) == true, "paths are not escaped: \(r.stdout)")
        #expect(r.stderr.contains("workflow.not_found"))
    }

    /// `--json` as an option's value is that value, not the flag: the failure stays text only.
    @Test func jsonAsAnOptionsValueIsNotTheFlag() throws {
        let missing = NSTemporaryDirectory() + "cleanroom-json-\(UUID().uuidString)"
        let r = try CLI.run([
            "provider", "respond", "--agreement", missing, "--identity", missing, "--state-dir", missing,
            "--exchange", missing, "--run-id", "--json",
        ])
        #expect(r.status == 1)
        #expect(r.stderr.contains("workflow.not_found"))
        #expect(r.stdout.isEmpty, "stdout: \(r.stdout)")
    }

    @Test func withoutJSONStdoutStaysEmpty() throws {
        let r = try CLI.run(["provider", "respond", "--no-such-flag"])
        #expect(r.status == 64)
        #expect(r.stdout.isEmpty)
    }

    /// `audit verify --json` reports its own failure object, then fails: stdout is that one object.
    @Test func aCommandsOwnFailureReportIsTheOnlyObject() throws {
        let db = NSTemporaryDirectory() + "cleanroom-json-\(UUID().uuidString).sqlite"
        let r = try CLI.run(["audit", "verify", "--db", db, "--json"])
        #expect(r.status == 1)
        let o = try Self.object(r)  // fails if a second object followed the first
        #expect(o["ok"] as? Bool == false)
        #expect(o["error"] == nil)
    }
}
