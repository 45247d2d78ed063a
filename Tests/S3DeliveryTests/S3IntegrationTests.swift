import Foundation
import RistrettoPSI
import TestSupport
import Testing

@testable import S3Delivery

/// S3 writes through an assumed role against the local S3 server (see ``S3Server``).
@Suite(.enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct S3WriterIntegrationTests {
    let p: S3Server.Provisioned
    init() throws { p = try S3Server.provision() }

    func role(externalID: String? = nil) -> AssumedRoleCredentials {
        AssumedRoleCredentials(
            sts: STSClient(endpoints: S3Server.endpoints(), http: S3Server.http),
            base: StaticCredentials(p.coordinator),
            roleARN: p.roleARN, externalID: externalID ?? p.externalID, sessionName: "cleanroom-test")
    }

    func writer(_ creds: any CredentialProvider) -> S3Writer {
        S3Writer(endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http, credentials: creds)
    }

    @Test func assumedRoleWritesOnceInsideThePrefix() throws {
        let creds = role()
        let c = try creds.credentials()
        #expect(c.accessKeyID.hasPrefix("ASIA"))
        #expect(c.expiration != nil)
        let key = p.location.key(p.collaborationID, "run-1", "part-00001.csv")
        #expect(try writer(creds).put(key: key, bytes: Array("a,b\n".utf8)) == .written)
        #expect(
            try S3Reader(
                endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http,
                credentials: StaticCredentials(S3Server.admin)
            ).get(key: key) == Array("a,b\n".utf8))
        // If-None-Match: * — a second write of the same key is refused, never an overwrite.
        #expect(throws: AWSError(.alreadyExists, "")) { try writer(creds).put(key: key, bytes: Array("x".utf8)) }
    }

    @Test func writeOutsideThePrefixIsDenied() throws {
        let outside = p.location.key("other-collaboration", "x.csv")
        #expect(throws: AWSError(.accessDenied, "")) { try writer(role()).put(key: outside, bytes: [1, 2, 3]) }
    }

    @Test func readIsDenied() throws {
        let key = p.location.key(p.collaborationID, "canary")
        _ = try writer(role()).put(key: key, bytes: [1])
        let reader = S3Reader(
            endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http, credentials: role())
        #expect(throws: AWSError(.accessDenied, "")) { try reader.get(key: key) }
    }

    @Test func coordinatorsOwnKeysCannotWrite() throws {
        // The coordinator's user may only assume roles: every delivery goes through the role.
        #expect(throws: AWSError(.accessDenied, "")) {
            try writer(StaticCredentials(p.coordinator)).put(
                key: p.location.key(p.collaborationID, "direct"), bytes: [1])
        }
    }

    @Test func multipartUploadOfALargeObject() throws {
        var bytes = [UInt8](repeating: 0, count: 11 * 1024 * 1024 + 123)
        for i in stride(from: 0, to: bytes.count, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i / 4096) }
        let w = S3Writer(
            endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http, credentials: role(),
            multipartThreshold: 5 * 1024 * 1024, partSize: 5 * 1024 * 1024, parallelParts: 3)
        let key = p.location.key(p.collaborationID, "run-2", "part-00001.csv")
        #expect(try w.put(key: key, bytes: bytes) == .written)
        let back = try S3Reader(
            endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http,
            credentials: StaticCredentials(S3Server.admin)
        ).get(key: key)
        #expect(SHA256.hash(back) == SHA256.hash(bytes))
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
    }
}

/// STS against the local server: web identity, and refresh before expiry.
@Suite(.enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct STSIntegrationTests {
    final class Clock: @unchecked Sendable {
        private let lock = NSLock()
        private var offset: TimeInterval = 0
        func advance(_ s: TimeInterval) {
            lock.lock()
            offset += s
            lock.unlock()
        }
        func now() -> Date {
            lock.lock()
            defer { lock.unlock() }
            return Date().addingTimeInterval(offset)
        }
    }

    @Test func assumedRoleCredentialsAreRefreshedBeforeTheyExpire() throws {
        let p = try S3Server.provision()
        let clock = Clock()
        let creds = AssumedRoleCredentials(
            sts: STSClient(endpoints: S3Server.endpoints(), http: S3Server.http),
            base: StaticCredentials(p.coordinator),
            roleARN: p.roleARN, externalID: p.externalID, sessionName: "cleanroom-refresh",
            durationSeconds: 900, refreshMargin: 300, clock: { clock.now() })
        let first = try creds.credentials()
        #expect(try creds.credentials().accessKeyID == first.accessKeyID)  // cached
        clock.advance(700)  // within 5 minutes of expiry
        #expect(try creds.credentials().accessKeyID != first.accessKeyID)
    }

    @Test func webIdentityTokenFileThroughTheChain() throws {
        let tag = S3Server.random()
        let trust = DeliveryPolicies.oidcTrustPolicy(
            accountID: S3Server.accountID, issuerHost: "token.example.com",
            audience: "sts.amazonaws.com", subject: "system:serviceaccount:cleanroom:coordinator")
        let created = try S3Server.iam(
            "CreateRole", [("RoleName", "cleanroom-oidc-\(tag)"), ("AssumeRolePolicyDocument", trust)])
        let token = NSTemporaryDirectory() + "cr-token-\(tag)"
        try "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjb29yZGluYXRvciJ9.c2ln\n".write(
            toFile: token, atomically: true, encoding: .utf8)
        let env = AWSEnvironment([
            "AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": XMLText.first("Arn", in: created)!,
            "AWS_ROLE_SESSION_NAME": "cleanroom-oidc", "HOME": "/nonexistent",
        ])
        let provider = try CredentialChain.resolve(env, endpoints: S3Server.endpoints(), http: S3Server.http)
        #expect(provider is WebIdentityCredentials)
        // AssumeRoleWithWebIdentity is unsigned by design (the token is the proof). moto 5.2.5 with
        // authentication on crashes on a request without an Authorization header (HTTP 500,
        // KeyError 'HTTP_AUTHORIZATION' in its log), so against moto this is a known issue; the
        // parsing of the answer is covered by the fault-proxy tests' STS stand-in.
        withKnownIssue("moto 5.2.5 answers 500 to an unsigned AssumeRoleWithWebIdentity when authentication is on") {
            let c = try provider.credentials()
            #expect(c.hasSessionToken)
            #expect(c.source.contains("AssumeRoleWithWebIdentity"))
        }
    }
}

/// `verify-destination`'s checks on a correct role and on a role that is too broad.
@Suite(.enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct DestinationProbeTests {
    func probe(_ p: S3Server.Provisioned) -> [DestinationProbe.Check] {
        DestinationProbe.run(
            location: p.location, collaborationID: p.collaborationID, roleARN: p.roleARN, externalID: p.externalID,
            base: StaticCredentials(p.coordinator), endpoints: S3Server.endpoints(), http: S3Server.http)
    }

    @Test func writeOnlyRoleIsConfirmed() throws {
        let checks = probe(try S3Server.provision())
        #expect(DestinationProbe.confirmed(checks), "\(checks.map { "\($0.name): \($0.passed) \($0.detail)" })")
        #expect(checks.first { $0.name == "read is denied" }?.passed == true)
        #expect(checks.first { $0.name == "write outside the prefix is denied" }?.passed == true)
        // Enforced by ministack; advisory on moto, which issues credentials when the External ID is
        // left out entirely.
        let noExternalID = checks.first { $0.name == "assume role without the External ID is refused" }
        if S3Server.kind == "moto" {
            #expect(noExternalID?.advisory == true)
        } else {
            #expect(noExternalID?.passed == true)
        }
    }

    @Test func tooBroadRoleIsReported() throws {
        let broad: (S3Location, String) -> String = { l, _ in
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::"#
                + l.bucket + #"/*"}]}"#
        }
        let checks = probe(try S3Server.provision(permissionPolicy: broad))
        #expect(!DestinationProbe.confirmed(checks))
        #expect(checks.first { $0.name == "read is denied" }?.passed == false)
        #expect(checks.first { $0.name == "write outside the prefix is denied" }?.passed == false)
    }

    @Test func wrongExternalIDIsRefused() throws {
        let p = try S3Server.provision()
        let sts = STSClient(endpoints: S3Server.endpoints(), http: S3Server.http)
        let attempt = { () throws(AWSError) -> AWSCredentials in
            try sts.assumeRole(
                roleARN: p.roleARN, externalID: "00000000-0000-4000-8000-000000000000", sessionName: "wrong",
                durationSeconds: 900, credentials: p.coordinator)
        }
        // Both servers refuse a wrong External ID. A request with no External ID at all: ministack
        // refuses it; moto 5.2.5 grants it (a known issue of that server).
        #expect(throws: AWSError(.assumeRoleDenied, "")) { try attempt() }
        let missing = { () throws(AWSError) -> AWSCredentials in
            try sts.assumeRole(
                roleARN: p.roleARN, externalID: nil, sessionName: "none", durationSeconds: 900,
                credentials: p.coordinator)
        }
        if S3Server.kind == "moto" {
            withKnownIssue("moto 5.2.5 grants AssumeRole when the External ID is left out") {
                #expect(throws: AWSError(.assumeRoleDenied, "")) { try missing() }
            }
        } else {
            #expect(throws: AWSError(.assumeRoleDenied, "")) { try missing() }
        }
    }
}

/// Multipart uploads under faults: a part that keeps failing aborts the upload; a lost answer to
/// CompleteMultipartUpload is recognised as our own completed write.
@Suite(.enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct MultipartFaultTests {
    static let mib5 = 5 * 1024 * 1024
    func writer(_ p: S3Server.Provisioned, _ proxy: FaultProxy) -> S3Writer {
        let role = AssumedRoleCredentials(
            sts: STSClient(endpoints: S3Server.endpoints(), http: S3Server.http),
            base: StaticCredentials(p.coordinator),
            roleARN: p.roleARN, externalID: p.externalID, sessionName: "multipart-faults")
        return S3Writer(
            endpoints: AWSEndpoints(region: S3Server.region, s3: proxy.url, sts: S3Server.endpoint!),
            bucket: p.location.bucket,
            http: S3Server.http, credentials: role, multipartThreshold: Self.mib5, partSize: Self.mib5, parallelParts: 2
        )
    }

    @Test func aFailingPartAbortsTheUpload() throws {
        let p = try S3Server.provision()
        let proxy = try FaultProxy(
            upstream: S3Server.endpoint!,
            rules: [
                .init(
                    times: 100, fault: .status(500, code: "InternalError"),
                    matches: { m, t in m == "PUT" && t.contains("partNumber=2") })
            ])
        defer { proxy.stop() }
        let key = p.location.key(p.collaborationID, "run-f", "part-00000.csv")
        #expect(throws: AWSError(.requestFailed, "")) {
            try writer(p, proxy).put(key: key, bytes: [UInt8](repeating: 7, count: 2 * Self.mib5 + 10))
        }
        #expect(proxy.actions.contains { $0.hasPrefix("DELETE") }, "AbortMultipartUpload was sent")
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
        #expect(try S3Server.keys(p.location.bucket, prefix: key).isEmpty)
    }

    @Test func aLostCompletionIsOurOwnWrite() throws {
        let p = try S3Server.provision()
        let proxy = try FaultProxy(
            upstream: S3Server.endpoint!,
            rules: [
                .init(times: 1, fault: .lostResponse, matches: { m, t in m == "POST" && t.contains("uploadId=") })
            ])
        defer { proxy.stop() }
        let key = p.location.key(p.collaborationID, "run-g", "part-00000.csv")
        // The retried completion answers 200 (S3 and moto treat a repeated completion of the same
        // upload as success) or 412/404 (recognised as our earlier write): either way, one object.
        let result = try writer(p, proxy).put(key: key, bytes: [UInt8](repeating: 9, count: Self.mib5 + 10))
        #expect(result == .written || result == .writtenByEarlierAttempt)
        #expect(proxy.actions.contains { $0.contains("applied, response lost") })
        #expect(try S3Server.keys(p.location.bucket, prefix: key) == [key])
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
    }
}

/// AssumeRoleWithWebIdentity's request and answer, with the fault proxy standing in for STS
/// (moto cannot serve the unsigned call with authentication on).
@Suite struct WebIdentityStandInTests {
    @Test func webIdentityAnswerIsParsed() throws {
        let answer = """
            <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
            <Credentials><AccessKeyId>ASIAWEBIDENTITYEXAMPLE</AccessKeyId><SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
            <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
            </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>
            """
        // Upstream is never reached: every request gets the canned answer.
        let proxy = try FaultProxy(
            upstream: URL(string: "http://127.0.0.1:9")!,
            rules: [.init(times: 5, fault: .respond(200, body: answer), matches: { _, _ in true })])
        defer { proxy.stop() }
        let token = NSTemporaryDirectory() + "cr-token-\(UUID().uuidString)"
        try "header.payload.signature\n".write(toFile: token, atomically: true, encoding: .utf8)
        let env = AWSEnvironment([
            "AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/cleanroom-oidc",
            "AWS_ENDPOINT_URL": proxy.url.absoluteString, "AWS_REGION": "us-east-1", "HOME": "/nonexistent",
        ])
        let endpoints = try AWSEndpoints.resolve(env)
        let c = try CredentialChain.resolve(env, endpoints: endpoints, http: AWSHTTP(timeout: 5)).credentials()
        #expect(c.accessKeyID == "ASIAWEBIDENTITYEXAMPLE")
        #expect(c.hasSessionToken)
        #expect(c.expiration == ISO8601DateFormatter().date(from: "2099-01-01T00:00:00Z"))
        #expect(proxy.actions == ["POST / → answered 200 (unsigned request)"])
    }
}
