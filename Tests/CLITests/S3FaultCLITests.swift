import Foundation
import RistrettoPSI
import S3Delivery
import TestSupport
import Testing
import Workflow

/// Faults between the coordinator and S3, injected by ``FaultProxy`` on loopback in front of the
/// local S3 server. Each run ends either delivered completely (every object once, the manifest
/// last, the provider opens exactly the overlap) or failed cleanly (no manifest), and the audit
/// log says which, with the AWS error code.
@Suite(
    "S3 delivery under injected faults", .serialized,
    .enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct S3FaultCLITests {
    enum Expect {
        case delivered
        case failed(String)
    }

    static func isPart(_ m: String, _ t: String) -> Bool { m == "PUT" && t.contains("/part-") }
    static func isManifest(_ m: String, _ t: String) -> Bool { m == "PUT" && t.contains("/manifest.json") }

    func run(_ rules: [FaultProxy.Rule], expect: Expect, timeout: Double = 5, attempts: Int = 4) throws -> [String] {
        let s = try S3EndToEndCLITests.setUp()
        let proxy = try FaultProxy(upstream: S3Server.endpoint!, rules: rules)
        defer { proxy.stop() }
        let run = EndToEndCLITests.newRun()
        try S3EndToEndCLITests.rounds(s, run)
        var env = s.p.coordinatorEnvironment
        env["AWS_ENDPOINT_URL_S3"] = proxy.url.absoluteString  // STS goes straight to the server
        env["CLEANROOM_AWS_TIMEOUT_SECONDS"] = String(timeout)
        env["AWS_MAX_ATTEMPTS"] = String(attempts)
        let m = try CLI.run(
            [
                "coordinator", "match", "--agreement", s.c.agreement, "--identity", s.c.key("coordinator"),
                "--exchange", s.c.exchange,
                "--run-id", run, "--audit-db", s.c.audit, "--json",
            ], environment: env)
        let keys = try S3Server.keys(s.p.location.bucket, prefix: s.p.location.key(s.p.collaborationID, run))
        let manifest = s.p.location.key(s.p.collaborationID, run, "manifest.json")
        let audit = try CLI.expectSuccess([
            "audit", "show", "--db", s.c.audit, "--collaboration", s.p.collaborationID, "--json",
        ]).stdout
        #expect(try S3Server.openUploads(s.p.location.bucket) == 0, "no unfinished multipart upload is left")
        switch expect {
        case .delivered:
            #expect(m.status == 0, "\(m.stderr)\n\(proxy.actions)")
            #expect(keys.contains(manifest))
            let out = "\(s.c.root)/provider/matched.csv"
            let open = try CLI.run(
                [
                    "provider", "open", "--agreement", s.c.agreement, "--identity", s.c.key("provider"), "--run-id",
                    run, "--out", out,
                ],
                environment: S3Server.providerEnvironment)
            #expect(open.status == 0, "\(open.stderr)")
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
            #expect(lines.count == s.data.expectedAudienceKeys.count, "no duplicate records")
            #expect(Set(lines.map { String($0.split(separator: ",")[0]) }) == s.data.expectedAudienceKeys)
            #expect(audit.contains("\"delivered\""))
        case .failed(let code):
            #expect(m.status == 1)
            #expect(m.stderr.contains(code), "\(m.stderr)")
            #expect(!keys.contains(manifest), "a failed run leaves no manifest")
            #expect(audit.contains(code), "the audit entry names the failure: \(audit)")
        }
        return proxy.actions
    }

    @Test func slowDownIsRetried() throws {
        let log = try run(
            [.init(times: 2, fault: .status(503, code: "SlowDown"), matches: Self.isPart)], expect: .delivered)
        #expect(log.filter { $0.contains("503 SlowDown") }.count == 2)
    }

    @Test func internalErrorOnTheManifestIsRetried() throws {
        let log = try run(
            [.init(times: 2, fault: .status(500, code: "InternalError"), matches: Self.isManifest)], expect: .delivered)
        #expect(log.filter { $0.contains("500 InternalError") }.count == 2)
    }

    @Test func connectionResetIsRetried() throws {
        let log = try run([.init(times: 1, fault: .reset, matches: Self.isPart)], expect: .delivered)
        #expect(log.contains { $0.hasSuffix("reset") })
    }

    @Test func lostResponseAfterTheWriteAppliedIsNotADuplicate() throws {
        let log = try run(
            [
                .init(times: 1, fault: .lostResponse, matches: Self.isPart),
                .init(times: 1, fault: .lostResponse, matches: Self.isManifest),
            ], expect: .delivered)
        #expect(log.filter { $0.contains("applied, response lost") }.count == 2)
    }

    @Test func slowServerTimesOutAndIsRetried() throws {
        let log = try run([.init(times: 1, fault: .delay(3), matches: Self.isPart)], expect: .delivered, timeout: 1)
        #expect(log.contains { $0.contains("delayed") })
    }

    @Test func credentialsExpiringMidDeliveryAreRenewed() throws {
        let log = try run(
            [.init(times: 1, fault: .status(400, code: "ExpiredToken"), matches: Self.isManifest)], expect: .delivered)
        #expect(log.contains { $0.contains("400 ExpiredToken") })
    }

    @Test func persistentSlowDownFailsCleanly() throws {
        _ = try run(
            [.init(times: 100, fault: .status(503, code: "SlowDown"), matches: Self.isManifest)],
            expect: .failed("aws.request_failed"), attempts: 3)
    }

    @Test func persistentResetsFailCleanly() throws {
        _ = try run(
            [.init(times: 100, fault: .reset, matches: Self.isPart)], expect: .failed("aws.network"), attempts: 3)
    }
}
