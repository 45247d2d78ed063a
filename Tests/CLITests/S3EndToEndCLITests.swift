import Activation
import Foundation
import RistrettoPSI
import S3Delivery
import TestSupport
import Testing
import Workflow

/// The whole activation delivered to the provider's S3 path on the local S3 server, through the
/// built CLI: the coordinator assumes the provider's delivery role with the External ID; the
/// provider reads back with its own keys. See `S3Server` for how the server is found.
@Suite(
    "Activation delivered to S3 through the CLI", .serialized,
    .enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct S3EndToEndCLITests {
    struct Setup {
        let c: EndToEndCLITests.Collaboration
        let p: S3Server.Provisioned
        let data: SyntheticData
        let inputs: (provider: String, consumer: String)
    }

    /// Invite, provision the provider's bucket and role for that collaboration (as `provider
    /// aws-setup` prints), accept with the S3 destination, countersign.
    static func setUp(extraInvite: [String] = []) throws -> Setup {
        let c = try EndToEndCLITests.Collaboration(minMatched: 20, extraInvite: extraInvite, accept: false)
        let shown = try CLI.expectSuccess(["collaboration", "show", "--agreement", c.agreement, "--json"])
        let terms = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as! [String: Any]
        let t = terms["terms"] as! [String: Any]
        let p = try S3Server.provision(
            collaborationID: t["collaborationID"] as? String, externalID: t["externalID"] as? String)
        try CLI.expectSuccess([
            "collaboration", "accept", "--agreement", c.agreement, "--identity", c.key("provider"),
            "--destination-s3", p.location.description, "--region", S3Server.region, "--role-arn", p.roleARN,
        ])
        try CLI.expectSuccess([
            "collaboration", "countersign", "--agreement", c.agreement, "--identity", c.key("consumer"),
        ])
        let data = SyntheticData(providerRows: 600, consumerRows: 400, overlap: 250)
        return Setup(c: c, p: p, data: data, inputs: try EndToEndCLITests.writeData(c, data))
    }

    static func rounds(_ s: Setup, _ run: String) throws {
        #expect(try s.c.providerPrepare(run, input: s.inputs.provider).status == 0)
        #expect(try s.c.consumerPrepare(run, input: s.inputs.consumer).status == 0)
        try s.c.respondBoth(run)
    }

    func match(_ s: Setup, _ run: String) throws -> CLI.Result {
        try CLI.run(
            [
                "coordinator", "match", "--agreement", s.c.agreement, "--identity", s.c.key("coordinator"),
                "--exchange", s.c.exchange,
                "--run-id", run, "--audit-db", s.c.audit, "--json",
            ], environment: s.p.coordinatorEnvironment)
    }

    @Test func wholeActivationDeliveredThroughTheAssumedRole() throws {
        let s = try Self.setUp(extraInvite: ["--gzip"])
        let run = EndToEndCLITests.newRun()
        try Self.rounds(s, run)
        let m = try match(s, run)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.stdout.contains("\"outcome\" : \"delivered\""))

        // The layout: <prefix>/<collaboration>/<run>/part-NNNNN.csv.gz (numbered from 00000), then manifest.json.
        let keys = try S3Server.keys(s.p.location.bucket, prefix: s.p.location.key(s.p.collaborationID, run))
        #expect(keys.contains(s.p.location.key(s.p.collaborationID, run, "manifest.json")))
        #expect(keys.contains(s.p.location.key(s.p.collaborationID, run, "part-00000.csv.gz")))
        #expect(try S3Server.openUploads(s.p.location.bucket) == 0)

        // The provider reads its delivery with its own keys and gets exactly the overlap.
        let out = "\(s.c.root)/provider/matched.csv"
        let open = try CLI.run(
            [
                "provider", "open", "--agreement", s.c.agreement, "--identity", s.c.key("provider"), "--run-id", run,
                "--out", out,
            ],
            environment: S3Server.providerEnvironment)
        #expect(open.status == 0, "\(open.stderr)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(Set(lines.map { String($0.split(separator: ",")[0]) }) == s.data.expectedAudienceKeys)

        // The coordinator's role cannot read the delivery back.
        let asCoordinator = try CLI.run(
            [
                "provider", "open", "--agreement", s.c.agreement, "--identity", s.c.key("provider"), "--run-id", run,
                "--out", "\(s.c.root)/x.csv",
            ], environment: s.p.coordinatorEnvironment)
        #expect(asCoordinator.status != 0)
        #expect(asCoordinator.stderr.contains("aws.s3.access_denied"))

        try CLI.expectSuccess(["audit", "verify", "--db", s.c.audit])
    }

    /// Messages exchanged through `s3://` as well: each party with its own credentials (the
    /// parties with the bucket owner's keys, the coordinator with its own user, granted read and
    /// write on the exchange bucket), so no step needs a shared disk.
    @Test func messagesExchangedThroughS3() throws {
        let s = try Self.setUp()
        let bucket = "cr-exchange-\(S3Server.random())"
        try S3Server.createBucket(bucket)
        try S3Server.iam(
            "PutUserPolicy",
            [
                ("UserName", s.p.coordinatorUser), ("PolicyName", "exchange"),
                (
                    "PolicyDocument",
                    #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::"#
                        + bucket + #"/*"}]}"#
                ),
            ])
        let exchange = "s3://\(bucket)/messages"
        let run = EndToEndCLITests.newRun()
        let parties = S3Server.providerEnvironment
        let c = s.c
        try CLI.expectSuccess(
            [
                "provider", "prepare", "--agreement", c.agreement, "--identity", c.key("provider"), "--state-dir",
                c.state("provider"),
                "--exchange", exchange, "--run-id", run, "--input", s.inputs.provider, "--audience-key-column",
                "audience_id",
                "--email-column", "email", "--phone-column", "phone", "--maid-column", "mobile_ad_id",
            ], environment: parties)
        try CLI.expectSuccess(
            [
                "consumer", "prepare", "--agreement", c.agreement, "--identity", c.key("consumer"), "--state-dir",
                c.state("consumer"),
                "--exchange", exchange, "--run-id", run, "--input", s.inputs.consumer, "--email-column", "email",
                "--phone-column", "phone",
                "--consent-column", "ads_consent", "--member-id-column", "member_id", "--segment-id", "loyalty",
                "--segment-name", "Loyalty members", "--skip-invalid",
            ], environment: parties)
        try CLI.expectSuccess(
            [
                "provider", "respond", "--agreement", c.agreement, "--identity", c.key("provider"), "--state-dir",
                c.state("provider"),
                "--exchange", exchange, "--run-id", run,
            ], environment: parties)
        try CLI.expectSuccess(
            [
                "consumer", "respond", "--agreement", c.agreement, "--identity", c.key("consumer"), "--state-dir",
                c.state("consumer"),
                "--exchange", exchange, "--run-id", run,
            ], environment: parties)
        let m = try CLI.run(
            [
                "coordinator", "match", "--agreement", c.agreement, "--identity", c.key("coordinator"), "--exchange",
                exchange,
                "--run-id", run, "--audit-db", c.audit, "--json",
            ], environment: s.p.coordinatorEnvironment)
        #expect(m.status == 0, "\(m.stderr)")
        #expect(m.stdout.contains("\"outcome\" : \"delivered\""))
        let messages = try S3Server.keys(bucket, prefix: "messages/")
        #expect(messages.count == 5, "\(messages)")
        #expect(!FileManager.default.fileExists(atPath: c.exchange), "no local exchange directory was used")
        let out = "\(c.root)/provider/matched.csv"
        try CLI.expectSuccess(
            [
                "provider", "open", "--agreement", c.agreement, "--identity", c.key("provider"), "--run-id", run,
                "--out", out,
            ],
            environment: parties)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
        #expect(Set(lines.map { String($0.split(separator: ",")[0]) }) == s.data.expectedAudienceKeys)
    }

    /// A prepare killed before publishing its round, on an `s3://` exchange (simulated by the
    /// bucket owner deleting the round's message, as if the kill came just before that write):
    /// the consumer's retry starts over; the provider's, whose coordinator-only payload is already
    /// there and can be neither overwritten nor deleted, is refused and told to use a new run ID.
    /// Once a round is published, a retry is refused and the party's state is kept.
    @Test func abandonedPrepareOnAnS3Exchange() throws {
        let s = try Self.setUp()
        let bucket = "cr-exchange-\(S3Server.random())"
        try S3Server.createBucket(bucket)
        let exchange = "s3://\(bucket)/messages"
        let c = s.c
        let parties = S3Server.providerEnvironment
        func prepare(_ role: String, _ run: String) throws -> CLI.Result {
            role == "provider"
                ? try CLI.run(
                    [
                        "provider", "prepare", "--agreement", c.agreement, "--identity", c.key("provider"),
                        "--state-dir", c.state("provider"),
                        "--exchange", exchange, "--run-id", run, "--input", s.inputs.provider, "--audience-key-column",
                        "audience_id",
                        "--email-column", "email", "--phone-column", "phone", "--maid-column", "mobile_ad_id",
                    ], environment: parties)
                : try CLI.run(
                    [
                        "consumer", "prepare", "--agreement", c.agreement, "--identity", c.key("consumer"),
                        "--state-dir", c.state("consumer"),
                        "--exchange", exchange, "--run-id", run, "--input", s.inputs.consumer, "--email-column",
                        "email",
                        "--phone-column", "phone", "--consent-column", "ads_consent", "--member-id-column", "member_id",
                        "--segment-id", "loyalty", "--segment-name", "Loyalty members", "--skip-invalid",
                    ], environment: parties)
        }
        func key(_ run: String, _ file: String) -> String { "messages/\(s.p.collaborationID)/\(run)/\(file)" }
        func state(_ role: String, _ run: String) -> String {
            "\(c.state(role))/\(s.p.collaborationID)/\(run).\(role).state"
        }

        // Consumer: killed before round 2 was published; the retry starts over with a fresh scalar.
        let run = EndToEndCLITests.newRun()
        #expect(try prepare("consumer", run).status == 0)
        let first = try S3Server.object(bucket, key: key(run, "consumer-blinded.crm"))
        try S3Server.deleteObject(bucket, key: key(run, "consumer-blinded.crm"))
        let retry = try prepare("consumer", run)
        #expect(retry.status == 0, "\(retry.stderr)")
        #expect(
            try S3Server.object(bucket, key: key(run, "consumer-blinded.crm")) != first, "made again with a new scalar")

        // Published: a retry is refused and the state its respond step needs is kept.
        let kept = try Data(contentsOf: URL(fileURLWithPath: state("consumer", run)))
        let again = try prepare("consumer", run)
        #expect(again.status == 1)
        #expect(again.stderr.contains("already_exists"), "refused by the exclusive writes")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: state("consumer", run))) == kept,
            "the published round's state is untouched")

        // Provider: killed after the coordinator-only payload, before round 1 was published.
        let run2 = EndToEndCLITests.newRun()
        #expect(try prepare("provider", run2).status == 0)
        try S3Server.deleteObject(bucket, key: key(run2, "provider-blinded.crm"))
        #expect(FileManager.default.fileExists(atPath: state("provider", run2)))
        let refused = try prepare("provider", run2)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("workflow.already_exists"), "\(refused.stderr)")
        #expect(refused.stderr.contains("start a new run ID"))
        #expect(!FileManager.default.fileExists(atPath: state("provider", run2)), "the abandoned scalar is shredded")
        #expect(
            !(try S3Server.keys(bucket, prefix: "messages/\(s.p.collaborationID)/\(run2)/").contains(
                key(run2, "provider-blinded.crm"))))
        // A new run ID goes through.
        #expect(try prepare("provider", EndToEndCLITests.newRun()).status == 0)
    }

    /// `cleanroom demo --destination-s3` (what `make demo-s3` runs): the role already trusts the
    /// coordinator for the given collaboration and External ID; each party uses its own profile.
    @Test func demoDeliversThroughTheAssumedRole() throws {
        let collab = AgreementTerms.newID()
        let external = AgreementTerms.newID()
        let p = try S3Server.provision(collaborationID: collab, externalID: external)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "cleanroom-demo-s3-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let admin = try String(contentsOfFile: S3Server.env["CLEANROOM_S3_CREDENTIALS"] ?? "", encoding: .utf8)
        let coordinator = p.coordinatorEnvironment
        try
            (admin.replacingOccurrences(of: "[admin]", with: "[provider]")
            + "\n[coordinator]\naws_access_key_id = \(coordinator["AWS_ACCESS_KEY_ID"]!)\naws_secret_access_key = \(coordinator["AWS_SECRET_ACCESS_KEY"]!)\n")
            .write(toFile: "\(root)/credentials", atomically: true, encoding: .utf8)
        let r = try CLI.run(
            [
                "demo", "--work-dir", "\(root)/work", "--provider-rows", "600", "--consumer-rows", "400", "--overlap",
                "250",
                "--destination-s3", p.location.description, "--region", S3Server.region, "--role-arn", p.roleARN,
                "--collaboration-id", collab, "--external-id", external, "--json",
            ],
            environment: [
                "AWS_ENDPOINT_URL": S3Server.endpoint!.absoluteString, "AWS_REGION": S3Server.region,
                "AWS_SHARED_CREDENTIALS_FILE": "\(root)/credentials", "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_ACCESS_KEY_ID": "", "AWS_PROFILE": "",
            ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("\"check\" : \"passed\""), "\(r.stdout)")
        let keys = try S3Server.keys(p.location.bucket, prefix: p.location.key(collab))
        #expect(keys.contains { $0.hasSuffix("/manifest.json") }, "delivered to the provider's bucket: \(keys)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/work/provider-bucket"), "no local bucket directory")

        // The IDs must be given together with the S3 destination, and only with it.
        let missing = try CLI.run([
            "demo", "--work-dir", "\(root)/w2", "--destination-s3", p.location.description, "--region", S3Server.region,
            "--role-arn", p.roleARN,
        ])
        #expect(missing.status == 64)
        let stray = try CLI.run(["demo", "--work-dir", "\(root)/w3", "--external-id", external])
        #expect(stray.status == 64)
    }

    @Test func verifyDestinationConfirmsWriteOnly() throws {
        let s = try Self.setUp()
        let r = try CLI.run(
            ["coordinator", "verify-destination", "--agreement", s.c.agreement], environment: s.p.coordinatorEnvironment
        )
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("ok   read is denied"))
        #expect(r.stdout.contains("ok   write outside the prefix is denied"))
        #expect(r.stdout.hasSuffix("write-only confirmed\n"))
        // With no AWS credentials at all, it says so (and names no secret).
        let none = try CLI.run(
            ["coordinator", "verify-destination", "--agreement", s.c.agreement],
            environment: [
                "AWS_ACCESS_KEY_ID": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ENDPOINT_URL": S3Server.endpoint!.absoluteString,
            ])
        #expect(none.status == 1)
        #expect(none.stderr.contains("aws.credentials.missing"))
    }

    @Test func aRunWhoseObjectsExistIsRefusedAndRecorded() throws {
        let s = try Self.setUp()
        let run = EndToEndCLITests.newRun()
        // Another writer got there first: the run's first object already exists in the bucket.
        let role = AssumedRoleCredentials(
            sts: STSClient(endpoints: S3Server.endpoints(), http: S3Server.http),
            base: StaticCredentials(s.p.coordinator),
            roleARN: s.p.roleARN, externalID: s.p.externalID, sessionName: "squatter")
        _ = try S3Writer(
            endpoints: S3Server.endpoints(), bucket: s.p.location.bucket, http: S3Server.http, credentials: role
        )
        .put(key: s.p.location.key(s.p.collaborationID, run, "part-00000.csv"), bytes: Array("x".utf8))
        try Self.rounds(s, run)
        let m = try match(s, run)
        #expect(m.status == 1)
        #expect(m.stderr.contains("aws.s3.already_exists"))
        let keys = try S3Server.keys(s.p.location.bucket, prefix: s.p.location.key(s.p.collaborationID, run))
        #expect(
            !keys.contains(s.p.location.key(s.p.collaborationID, run, "manifest.json")),
            "a refused run writes no manifest")
        let audit = try CLI.expectSuccess([
            "audit", "show", "--db", s.c.audit, "--collaboration", s.p.collaborationID, "--json",
        ])
        #expect(audit.stdout.contains("aws.s3.already_exists"))
    }
}

/// `provider aws-setup` prints exactly the write-only documents (no server needed).
@Suite struct AWSSetupCLITests {
    @Test func printsTrustAndWriteOnlyPermissionPolicies() throws {
        let c = try EndToEndCLITests.Collaboration(accept: false)
        let r = try CLI.expectSuccess([
            "provider", "aws-setup", "--agreement", c.agreement, "--destination-s3", "s3://acme-audiences/cleanroom",
            "--coordinator-principal", "arn:aws:iam::111122223333:role/coordinator", "--json",
        ])
        let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let collab = o["collaborationID"] as! String
        let external = o["externalID"] as! String
        #expect(o["resource"] as? String == "arn:aws:s3:::acme-audiences/cleanroom/\(collab)/*")
        let trust = o["trustPolicy"] as! String
        let perm = o["permissionPolicy"] as! String
        #expect(trust.contains("\"sts:ExternalId\" : \"\(external)\""))
        #expect(trust.contains("arn:aws:iam::111122223333:role/coordinator"))
        for action in ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"] {
            #expect(perm.contains(action))
        }
        for forbidden in ["Get", "List\"", "Delete", "s3:*", "\"*\""] {
            #expect(!perm.contains(forbidden), "\(forbidden) in \(perm)")
        }
        let oidc = try CLI.expectSuccess([
            "provider", "aws-setup", "--agreement", c.agreement, "--destination-s3", "s3://acme-audiences/cleanroom",
            "--oidc-issuer", "token.actions.example.com", "--oidc-subject", "repo:coordinator", "--account-id",
            "111122223333",
        ])
        #expect(oidc.stdout.contains("sts:AssumeRoleWithWebIdentity"))
        #expect(oidc.stdout.contains("token.actions.example.com:sub"))
    }
}
