import Foundation
import RistrettoPSI
import S3Delivery

/// The real S3-compatible server the integration tests talk to (moto, started by
/// `Tests/scripts/s3-server.sh`; `make test` starts and stops it and sets the variables).
///
/// - `CLEANROOM_S3_ENDPOINT`: the server's URL; without it the integration tests are skipped
///   (plain `swift test`), with a message saying how to run them.
/// - `CLEANROOM_S3_CREDENTIALS`: the administrator's shared-credentials file (profile `admin`).
/// - `CLEANROOM_S3_REQUIRED=1` (set by `make test`): a missing or dead server is a failure.
public enum S3Server {
    /// The test process's environment, where the `CLEANROOM_S3_*` variables are read.
    public static let env = ProcessInfo.processInfo.environment
    /// `CLEANROOM_S3_ENDPOINT` as a URL; nil when it is unset or not a URL.
    public static let endpoint: URL? = env["CLEANROOM_S3_ENDPOINT"].flatMap(URL.init(string:))
    /// Whether a server was given: the integration suites are enabled only then.
    public static var configured: Bool { endpoint != nil }
    /// Whether a missing or dead server must fail the tests rather than skip them (`CLEANROOM_S3_REQUIRED=1`).
    public static var required: Bool { env["CLEANROOM_S3_REQUIRED"] == "1" }
    /// The comment a skipped integration suite shows: how to run it.
    public static let skipMessage =
        "no CLEANROOM_S3_ENDPOINT: run `make test` (it starts a local S3 server) to run the S3 integration tests"

    /// Which server (`CLEANROOM_S3_SERVER`: `moto`, the default, or `ministack`): they enforce
    /// different things, and the tests say so where it matters.
    public static var kind: String { env["CLEANROOM_S3_SERVER"] ?? "moto" }
    /// The region every test request is signed for.
    public static let region = "us-east-1"
    /// The account ID for ARNs the tests build themselves, where no answer gives one.
    public static let accountID = "123456789012"
    /// The HTTP client of these helpers and the integration tests: 20 s timeout, up to 3 attempts.
    public static let http = AWSHTTP(timeout: 20, retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.05, maxDelay: 0.5))

    /// Endpoints for every service pointing at the server, as `AWS_ENDPOINT_URL` would.
    public static func endpoints(_ base: URL? = nil) -> AWSEndpoints {
        let u = base ?? endpoint!
        return AWSEndpoints(region: region, s3: u, sts: u)
    }

    /// The administrator's keys, through the credential chain (shared file, `AWS_PROFILE=admin`).
    public static let admin: AWSCredentials = {
        let chainEnv = AWSEnvironment([
            "AWS_SHARED_CREDENTIALS_FILE": env["CLEANROOM_S3_CREDENTIALS"] ?? "", "AWS_PROFILE": "admin",
            "HOME": "/nonexistent",
        ])
        do { return try CredentialChain.resolve(chainEnv, endpoints: endpoints(), http: http).credentials() } catch {
            fatalError("cannot read the S3 test server's admin credentials: \(error)")
        }
    }()

    /// An IAM Query API call signed with our own SigV4 (generic rules, service `iam`).
    @discardableResult
    public static func iam(_ action: String, _ params: [(String, String)], as creds: AWSCredentials = admin) throws
        -> [UInt8]
    {
        try query(service: "iam", action: action, version: "2010-05-08", params: params, creds: creds)
    }

    /// An AWS Query API call (a form-encoded POST to `/`) signed with our own SigV4 for `service`,
    /// returning the answer's body.
    ///
    /// - Parameters:
    ///   - service: the SigV4 service name (`iam`, `sts`).
    ///   - action: the Query API action.
    ///   - version: the API version the action belongs to.
    ///   - params: the action's parameters, form-encoded after `Action` and `Version`.
    ///   - creds: the keys the request is signed with.
    /// - Returns: the body of a 2xx answer.
    /// - Throws: the transport's error, or `AWSHTTP.failure` for any other status.
    public static func query(
        service: String, action: String, version: String, params: [(String, String)], creds: AWSCredentials
    ) throws -> [UInt8] {
        let all = [("Action", action), ("Version", version)] + params
        let body = Array(AWSHTTP.formEncode(all).utf8)
        let signer = SigV4Signer(region: region, service: service, rules: .generic(normalizePath: true))
        let u = endpoint!
        let r = try http.signedRequest(
            method: "POST", url: u, path: "/",
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], body: body,
            signer: signer, credentials: creds)
        guard (200..<300).contains(r.status) else {
            throw AWSHTTP.failure(operation: "\(service):\(action)", answer: r)
        }
        return r.body
    }

    /// CreateBucket as the administrator (path style).
    public static func createBucket(_ name: String) throws {
        let u = endpoint!
        let signer = SigV4Signer(region: region, service: "s3", rules: .s3)
        guard
            let r = try? http.signedRequest(
                method: "PUT", url: u.appendingPathComponent(name), path: "/\(name)",
                signer: signer, credentials: admin),
            (200..<300).contains(r.status)
        else { throw AWSError(.requestFailed, "CreateBucket \(name) failed") }
    }

    /// Lists the multipart uploads still open in a bucket (administrator): none may be left.
    public static func openUploads(_ bucket: String) throws -> Int {
        let u = endpoint!
        let signer = SigV4Signer(region: region, service: "s3", rules: .s3)
        guard
            let r = try? http.signedRequest(
                method: "GET", url: URL(string: "\(u.absoluteString)/\(bucket)?uploads=")!,
                path: "/\(bucket)", query: "uploads=", signer: signer, credentials: admin),
            r.status == 200
        else { throw AWSError(.requestFailed, "ListMultipartUploads \(bucket) failed") }
        return r.xmlValues("UploadId").count
    }

    /// DeleteObject as the administrator (the bucket owner; never the coordinator).
    public static func deleteObject(_ bucket: String, key: String) throws {
        let u = endpoint!
        let path = "/\(bucket)/" + SigV4Signer.uriEncode(key, keepSlash: true)
        let signer = SigV4Signer(region: region, service: "s3", rules: .s3)
        guard
            let r = try? http.signedRequest(
                method: "DELETE", url: URL(string: u.absoluteString + path)!, path: path,
                signer: signer, credentials: admin),
            (200..<300).contains(r.status)
        else { throw AWSError(.requestFailed, "DeleteObject \(bucket) failed") }
    }

    /// GetObject as the administrator.
    public static func object(_ bucket: String, key: String) throws -> [UInt8] {
        try S3Reader(endpoints: endpoints(), bucket: bucket, http: http, credentials: StaticCredentials(admin)).get(
            key: key)
    }

    /// Lists the keys under a prefix (administrator).
    public static func keys(_ bucket: String, prefix: String) throws -> [String] {
        let u = endpoint!
        let q = "list-type=2&prefix=\(SigV4Signer.uriEncode(prefix, keepSlash: false))"
        let signer = SigV4Signer(region: region, service: "s3", rules: .s3)
        guard
            let r = try? http.signedRequest(
                method: "GET", url: URL(string: "\(u.absoluteString)/\(bucket)?\(q)")!,
                path: "/\(bucket)", query: q, signer: signer, credentials: admin),
            r.status == 200
        else { throw AWSError(.requestFailed, "ListObjectsV2 \(bucket) failed") }
        return r.xmlValues("Key").sorted()
    }

    /// The provider process's environment: the bucket owner's own keys (profile `admin`).
    public static var providerEnvironment: [String: String] {
        [
            "AWS_SHARED_CREDENTIALS_FILE": env["CLEANROOM_S3_CREDENTIALS"] ?? "", "AWS_PROFILE": "admin",
            "AWS_ACCESS_KEY_ID": "",
            "AWS_ENDPOINT_URL": endpoint!.absoluteString, "AWS_CONFIG_FILE": "/nonexistent", "AWS_REGION": region,
        ]
    }

    /// The first `<tag>` of an IAM answer's body.
    static func xml(_ tag: String, _ body: [UInt8]) -> String? { SignedAnswer(status: 200, body: body).xmlValue(tag) }

    /// A fresh 8-hex-digit tag, so names made on the shared server do not collide between tests.
    public static func random() -> String { Hex.encode(SecureRandom.bytes(4)) }

    /// A provider's bucket and delivery role, and a coordinator user allowed only to assume roles,
    /// set up through IAM as `cleanroom provider aws-setup` describes.
    public struct Provisioned {
        /// The new bucket and the delivery prefix in it.
        public let location: S3Location
        /// The collaboration ID the role's permission policy is written for.
        public let collaborationID: String
        /// The external ID the role's trust policy requires.
        public let externalID: String
        /// The delivery role's ARN, as the server returned it.
        public let roleARN: String
        /// The coordinator user's own keys, allowed only to assume roles.
        public let coordinator: AWSCredentials
        /// The coordinator's IAM user name (to grant it an exchange bucket).
        public let coordinatorUser: String
        /// The coordinator process's environment: its own keys (allowed only to assume roles) and the endpoint.
        public let coordinatorEnvironment: [String: String]
    }

    /// Creates a fresh bucket, coordinator user (with access keys) and delivery role as the administrator.
    ///
    /// - Parameters:
    ///   - collaborationID: the collaboration ID (default: one made from a fresh ``random()`` tag).
    ///   - externalID: the external ID (default: one made from the same tag).
    ///   - trustPolicy: the role's trust policy from the coordinator's principal ARN and the external ID
    ///     (default: `DeliveryPolicies.trustPolicy`).
    ///   - permissionPolicy: the role's permission policy from the location and the collaboration ID
    ///     (default: `DeliveryPolicies.permissionPolicy`); a test passes its own to probe a wrong one.
    /// - Returns: what was made, with the coordinator process's environment.
    /// - Throws: the error of the first step that fails (bucket, location, IAM call, access keys).
    public static func provision(
        collaborationID: String? = nil, externalID: String? = nil, trustPolicy: ((String, String) -> String)? = nil,
        permissionPolicy: ((S3Location, String) -> String)? = nil
    ) throws -> Provisioned {
        let tag = random()
        let bucket = "cr-test-\(tag)"
        try createBucket(bucket)
        let location = try S3Location(bucket: bucket, prefix: "deliveries/acme")
        let collab = collaborationID ?? "0b5e7c4e-\(tag.prefix(4))-4a00-8000-000000000001"
        let external = externalID ?? "e1e1e1e1-\(tag.prefix(4))-4b00-8000-000000000002"
        let user = "coordinator-\(tag)"
        let createdUser = try iam("CreateUser", [("UserName", user)])
        try iam(
            "PutUserPolicy",
            [
                ("UserName", user), ("PolicyName", "assume"),
                (
                    "PolicyDocument",
                    #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#
                ),
            ])
        let key = try iam("CreateAccessKey", [("UserName", user)])
        let keyID = xml("AccessKeyId", key)!
        let secret = xml("SecretAccessKey", key)!
        let coordinator = try AWSCredentials(accessKeyID: keyID, secretAccessKey: secret, source: "test coordinator")
        let principal = xml("Arn", createdUser) ?? "arn:aws:iam::\(accountID):user/\(user)"
        let trust =
            trustPolicy?(principal, external)
            ?? DeliveryPolicies.trustPolicy(coordinatorPrincipal: principal, externalID: external)
        let role = "cleanroom-delivery-\(tag)"
        let created = try iam("CreateRole", [("RoleName", role), ("AssumeRolePolicyDocument", trust)])
        let perm =
            permissionPolicy?(location, collab)
            ?? DeliveryPolicies.permissionPolicy(location: location, collaborationID: collab)
        try iam("PutRolePolicy", [("RoleName", role), ("PolicyName", "cleanroom-delivery"), ("PolicyDocument", perm)])
        return Provisioned(
            location: location, collaborationID: collab, externalID: external,
            roleARN: xml("Arn", created)!, coordinator: coordinator, coordinatorUser: user,
            coordinatorEnvironment: [
                "AWS_ACCESS_KEY_ID": keyID, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_ENDPOINT_URL": endpoint!.absoluteString, "AWS_PROFILE": "", "AWS_REGION": region,
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            ])
    }
}
