import Foundation
import Testing

@testable import S3Delivery

/// The standard order of credential sources, endpoint overrides and regions, on injected
/// environments and temporary shared files (no server needed).
@Suite struct CredentialChainTests {
    static let endpoints = AWSEndpoints(region: "us-east-1", s3: nil, sts: URL(string: "http://127.0.0.1:9")!)
    static let http = AWSHTTP(timeout: 1, retry: RetryPolicy(maxAttempts: 1))

    func tempFile(_ text: String) throws -> String {
        let p = NSTemporaryDirectory() + "cr-aws-\(UUID().uuidString)"
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    @Test func environmentComesFirst() throws {
        let file = try tempFile("[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n")
        let env = AWSEnvironment([
            "AWS_ACCESS_KEY_ID": "FROMENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
            "AWS_SHARED_CREDENTIALS_FILE": file,
        ])
        let c = try CredentialChain.resolve(env, endpoints: Self.endpoints, http: Self.http).credentials()
        #expect(c.accessKeyID == "FROMENV")
        #expect(c.hasSessionToken)
        #expect(c.source == "environment")
    }

    @Test func profileFromCredentialsThenConfigFile() throws {
        let creds = try tempFile("[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = s\n")
        let config = try tempFile(
            "# comment\n[profile other]\nregion = eu-west-3\naws_access_key_id = OTHERKEY\naws_secret_access_key = s\n")
        let base = ["AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_CONFIG_FILE": config, "HOME": "/nonexistent"]
        #expect(
            try CredentialChain.resolve(AWSEnvironment(base), endpoints: Self.endpoints, http: Self.http).credentials()
                .accessKeyID == "DEFAULTKEY")
        var other = base
        other["AWS_PROFILE"] = "other"
        let env = AWSEnvironment(other)
        #expect(
            try CredentialChain.resolve(env, endpoints: Self.endpoints, http: Self.http).credentials().accessKeyID
                == "OTHERKEY")
        #expect(try env.region() == "eu-west-3")
    }

    @Test func nothingConfiguredIsAnError() {
        #expect(throws: AWSError(.credentialsMissing, "")) {
            try CredentialChain.resolve(
                AWSEnvironment(["HOME": "/nonexistent"]), endpoints: Self.endpoints, http: Self.http)
        }
        #expect(throws: AWSError(.credentialsInvalid, "")) {
            try CredentialChain.resolve(
                AWSEnvironment(["AWS_ACCESS_KEY_ID": "K", "HOME": "/nonexistent"]), endpoints: Self.endpoints,
                http: Self.http)
        }
    }

    @Test func webIdentityNeedsARole() throws {
        let token = try tempFile("eyJ.token.sig\n")
        #expect(throws: AWSError(.credentialsInvalid, "")) {
            try CredentialChain.resolve(
                AWSEnvironment(["AWS_WEB_IDENTITY_TOKEN_FILE": token, "HOME": "/nonexistent"]),
                endpoints: Self.endpoints, http: Self.http)
        }
        let p = try CredentialChain.resolve(
            AWSEnvironment([
                "AWS_WEB_IDENTITY_TOKEN_FILE": token, "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
                "HOME": "/nonexistent",
            ]), endpoints: Self.endpoints, http: Self.http)
        #expect(p is WebIdentityCredentials)
    }

    @Test func endpointOverridesAndRegion() throws {
        let env = AWSEnvironment([
            "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:5000",
            "AWS_REGION": "eu-central-1", "HOME": "/nonexistent",
        ])
        let e = try AWSEndpoints.resolve(env)
        #expect(e.region == "eu-central-1")
        #expect(e.s3?.absoluteString == "http://127.0.0.1:4566")
        #expect(e.sts.absoluteString == "http://127.0.0.1:5000")
        let aws = try AWSEndpoints.resolve(AWSEnvironment(["HOME": "/nonexistent"]), region: "us-west-2")
        #expect(aws.s3 == nil)
        #expect(aws.sts.absoluteString == "https://sts.us-west-2.amazonaws.com")
        #expect(
            aws.objectURL(bucket: "b", encodedKey: "p/k", query: "").url.absoluteString
                == "https://b.s3.us-west-2.amazonaws.com/p/k")
        #expect(
            e.objectURL(bucket: "b", encodedKey: "p/k", query: "uploads=").url.absoluteString
                == "http://127.0.0.1:4566/b/p/k?uploads=")
        // A dotted name on AWS: path-style, since the wildcard certificate covers one label only.
        let dotted = aws.objectURL(bucket: "my.bucket", encodedKey: "p/k", query: "")
        #expect(dotted.url.absoluteString == "https://s3.us-west-2.amazonaws.com/my.bucket/p/k")
        #expect(dotted.path == "/my.bucket/p/k" && dotted.host == "s3.us-west-2.amazonaws.com")
        #expect(throws: AWSError(.configuration, "")) {
            try AWSEndpoints.resolve(AWSEnvironment(["HOME": "/nonexistent"]))
        }
    }

    @Test func s3URIs() throws {
        let l = try S3Location(uri: "s3://my-bucket/a/b/")
        #expect(l.bucket == "my-bucket" && l.prefix == "a/b")
        #expect(l.key("c", "d") == "a/b/c/d")
        #expect(throws: AWSError(.configuration, "")) { try S3Location(uri: "s3://Bad_Bucket/x") }
        #expect(throws: AWSError(.configuration, "")) { try S3Location(uri: "s3://bucket/../x") }
        #expect(throws: AWSError(.configuration, "")) { try S3Location(uri: "https://bucket/x") }
    }

    /// S3's naming rules for general purpose buckets, one case per rule, each refused with the
    /// rule named; names at the edges of the rules pass.
    @Test(arguments: [
        ("ab", "3 to 63 characters"), (String(repeating: "a", count: 64), "3 to 63 characters"),
        ("Bucket", "only lowercase letters"), ("my_bucket", "only lowercase letters"),
        ("-bucket", "begin and end"), ("bucket-", "begin and end"), (".bucket", "begin and end"),
        ("my..bucket", "two adjacent periods"), ("192.168.5.4", "IP address"),
        ("xn--bucket", "prefix 'xn--'"), ("sthree-bucket", "prefix 'sthree-'"),
        ("amzn-s3-demo-x", "prefix 'amzn-s3-demo-'"),
        ("bucket-s3alias", "suffix '-s3alias'"), ("bucket--ol-s3", "suffix '--ol-s3'"),
        ("bucket.mrap", "suffix '.mrap'"),
        ("bucket--x-s3", "suffix '--x-s3'"), ("bucket--table-s3", "suffix '--table-s3'"),
    ])
    func bucketNamesS3WouldRefuseAreRefused(name: String, rule: String) {
        let e = #expect(throws: AWSError.self) { try S3Location(bucket: name, prefix: "p") }
        #expect(e?.code == .configuration)
        #expect(e?.reason.contains(rule) == true, "\(e?.reason ?? "")")
    }

    @Test(arguments: [
        "abc", String(repeating: "a", count: 63), "my.bucket.name", "1.2.3", "192.168.5.4a", "a-b-c", "0bucket9",
    ])
    func bucketNamesAtTheEdgesOfTheRulesPass(name: String) throws {
        #expect(try S3Location(bucket: name, prefix: "").bucket == name)
    }
}
