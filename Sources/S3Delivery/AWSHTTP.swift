import Foundation
import RistrettoPSI

/// Retry rules: capped exponential backoff with full jitter.
/// - SeeAlso: `Protocol/SPEC.md` §12.4 "Retries"; AWS Architecture Blog "Exponential Backoff And Jitter".
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included: at least 1, whatever is assigned.
    public var maxAttempts: Int {
        get { attempts }
        set { attempts = max(1, newValue) }
    }
    private var attempts = 1
    /// Seconds: the bound on the first retry's delay, doubled for each later retry.
    public var baseDelay: TimeInterval
    /// Seconds: the bound no delay exceeds, however many retries came before.
    public var maxDelay: TimeInterval
    /// The defaults are SPEC §12.4's: 5 attempts, delays drawn under `min(10 s, 0.2 s · 2^n)`.
    /// A `maxAttempts` below 1 becomes 1; a negative delay bound counts as 0 (``delay(afterAttempt:)``).
    public init(maxAttempts: Int = 5, baseDelay: TimeInterval = 0.2, maxDelay: TimeInterval = 10) {
        self.attempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }
    /// A delay drawn uniformly from `[0, min(maxDelay, baseDelay · 2^attempt)]`.
    func delay(afterAttempt attempt: Int) -> TimeInterval {
        // A negative or NaN bound would make the range invalid (a trap): no wait instead.
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt)))
        guard cap > 0 else { return 0 }
        return Double.random(in: 0...cap)
    }
    /// Service error codes worth another try (besides any 5xx and transport failures).
    static let retryableCodes: Set<String> = [
        "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
        "RequestTimeout", "InternalError", "ServiceUnavailable", "TooManyRequestsException",
        "RequestThrottled", "IDPCommunicationError",
    ]
}

/// Signed requests with retries: the part shared by the STS and S3 clients.
///
/// Contract: thread-safe; blocking. Each attempt is signed afresh (new date, current credentials).
public final class AWSHTTP: Sendable {
    let client: HTTPClient
    /// The retry rules of the STS and S3 calls
    /// (``signedRequest(method:url:path:query:headers:body:signer:credentials:)`` sends once, without them).
    public let retry: RetryPolicy
    let clock: @Sendable () -> Date

    /// A client over the system's libcurl, opened only when the first request is sent.
    ///
    /// - Parameters:
    ///   - timeout: per request (clamped to 0.1 s … one day); a slow server fails the attempt, which
    ///     is retried.
    ///   - retry: how many attempts, and the delays between them.
    ///   - clock: the time each attempt is signed with (tests pin it).
    ///   - caBundle: a PEM file of CA certificates to trust instead of the system's (`AWS_CA_BUNDLE`).
    public convenience init(
        timeout: TimeInterval = 30, retry: RetryPolicy = RetryPolicy(),
        clock: @escaping @Sendable () -> Date = { Date() }, caBundle: String? = nil
    ) {
        self.init(timeout: timeout, retry: retry, clock: clock, libraryPath: Curl.defaultPath, caBundle: caBundle)
    }

    /// As the public initializer, with the library to open named.
    ///
    /// - Parameters:
    ///   - timeout: per request; a slow server fails the attempt, which is retried.
    ///   - retry: how many attempts, and the delays between them.
    ///   - clock: the time each attempt is signed with.
    ///   - libraryPath: what the HTTP client opens as libcurl (tests name a missing one).
    ///   - caBundle: CA certificates to trust instead of the system's (`AWS_CA_BUNDLE`).
    init(
        timeout: TimeInterval, retry: RetryPolicy, clock: @escaping @Sendable () -> Date = { Date() },
        libraryPath: String, caBundle: String? = nil
    ) {
        client = HTTPClient(timeout: timeout, libraryPath: libraryPath, caBundle: caBundle)
        self.retry = retry
        self.clock = clock
    }

    /// From the environment: `AWS_MAX_ATTEMPTS` and `AWS_CA_BUNDLE` (the SDKs' standard settings)
    /// and `CLEANROOM_AWS_TIMEOUT_SECONDS` (per request).
    /// - Parameters:
    ///   - env: where the settings are read.
    ///   - timeout: the per-request timeout when the environment sets none (30 s by default).
    ///   - attempts: the attempts when the environment sets none (5 by default).
    /// - Returns: a client with those settings.
    public static func fromEnvironment(_ env: AWSEnvironment, timeout: TimeInterval = 30, attempts: Int = 5) -> AWSHTTP
    {
        let attempts = env.nonEmpty("AWS_MAX_ATTEMPTS").flatMap(Int.init) ?? attempts
        let timeout = env.nonEmpty("CLEANROOM_AWS_TIMEOUT_SECONDS").flatMap(Double.init) ?? timeout
        return AWSHTTP(
            timeout: max(0.1, timeout), retry: RetryPolicy(maxAttempts: attempts),
            caBundle: env.nonEmpty("AWS_CA_BUNDLE"))
    }

    /// What one attempt produced.
    enum Outcome {
        case response(HTTPResponse)
        case transport(TransportFailure)
    }

    /// Runs `attempt` until it gives a response that is not retryable or the attempts run out.
    /// `onAttempt` sees every outcome (number, outcome) so callers can tell a lost response from a
    /// first answer. Returns the last outcome.
    func withRetries(operation: String, _ attempt: (Int) throws(AWSError) -> Outcome) throws(AWSError) -> (
        HTTPResponse, attempts: Int, sawTransportFailure: Bool
    ) {
        var sawTransport = false
        var last = ""
        for n in 0..<retry.maxAttempts {
            if n > 0 { Thread.sleep(forTimeInterval: retry.delay(afterAttempt: n - 1)) }
            switch try attempt(n) {
            case .transport(let f):
                if let permanent = f.permanentError(operation) { throw permanent }
                sawTransport = true
                last = f.reason
                continue
            case .response(let r):
                if r.status >= 500 || Self.isRetryable(r) {
                    last = "HTTP \(r.status) \(XMLText.first("Code", in: r.body) ?? "")"
                    continue
                }
                return (r, n + 1, sawTransport)
            }
        }
        if last.hasPrefix("HTTP") {
            throw AWSError(
                .requestFailed, "\(operation): still failing after \(retry.maxAttempts) attempts (\(last))",
                serviceCode: last.split(separator: " ").dropFirst(2).first.map(String.init))
        }
        throw AWSError(.network, "\(operation): no answer after \(retry.maxAttempts) attempts (\(last))")
    }

    /// `application/x-www-form-urlencoded` as browsers and Python's `urlencode` write it (space
    /// as `+`): the Query API accepts it, and servers that re-encode the parsed form before
    /// checking the payload hash (moto) get the same bytes.
    public static func formEncode(_ params: [(String, String)]) -> String {
        params.map {
            "\(SigV4Signer.uriEncode($0.0, keepSlash: false))=\(SigV4Signer.uriEncode($0.1, keepSlash: false))"
        }
        .joined(separator: "&").replacingOccurrences(of: "%20", with: "+")
    }

    static func isRetryable(_ r: HTTPResponse) -> Bool {
        if r.status == 429 { return true }
        guard r.status >= 400, let code = XMLText.first("Code", in: r.body) else { return false }
        return RetryPolicy.retryableCodes.contains(code)
    }

    /// One signed attempt.
    func attempt(
        method: String, url: URL, path: String, query: String, host: String, headers: [(name: String, value: String)],
        body: [UInt8], payloadSHA256: String, signer: SigV4Signer, credentials: AWSCredentials?
    ) -> Outcome {
        var req = SigV4Request(
            method: method, path: path, query: query, headers: [("Host", host)] + headers, payloadSHA256: payloadSHA256)
        if let credentials { req = signer.sign(req, credentials: credentials) }
        // libcurl would send the same Host from the URL; sending ours replaces it and keeps it signed.
        do { return .response(try client.send(method: method, url: url, headers: req.headers, body: body)) } catch {
            return .transport(error)
        }
    }

    /// Maps a final non-2xx answer to an ``AWSError`` naming the operation and the service code.
    static func failure(_ operation: String, _ r: HTTPResponse) -> AWSError {
        let code = XMLText.first("Code", in: r.body)
        let msg = XMLText.first("Message", in: r.body).map { ": \($0)" } ?? ""
        let what = "\(operation): HTTP \(r.status) \(code ?? "")\(msg)"
        switch (r.status, code) {
        case (412, _), (_, "PreconditionFailed"), (409, "ConditionalRequestConflict"):
            return AWSError(.alreadyExists, what, serviceCode: code)
        case (403, _), (_, "AccessDenied"), (_, "InvalidAccessKeyId"), (_, "SignatureDoesNotMatch"),
            (_, "InvalidToken"):
            return AWSError(.accessDenied, what, serviceCode: code)
        case (404, _), (_, "NoSuchKey"), (_, "NoSuchBucket"), (_, "NoSuchUpload"):
            return AWSError(.notFound, what, serviceCode: code)
        default: return AWSError(.requestFailed, what, serviceCode: code)
        }
    }
}

/// STS: `AssumeRole` and `AssumeRoleWithWebIdentity` over the Query API (form POST, SigV4 with
/// the generic rules, service `sts`).
/// - SeeAlso: `Protocol/SPEC.md` §12.3.
public struct STSClient: Sendable {
    let endpoints: AWSEndpoints
    let http: AWSHTTP
    /// A client that posts to `endpoints.sts` and signs for `endpoints.region`.
    public init(endpoints: AWSEndpoints, http: AWSHTTP) {
        self.endpoints = endpoints
        self.http = http
    }

    /// STS `AssumeRole`, signed with `credentials`. The External ID is sent only when `externalID`
    /// is not nil (``DestinationProbe`` leaves it out on purpose, expecting a refusal).
    ///
    /// - Returns: temporary credentials, with the answer's `Expiration` when it parses; their
    ///   ``AWSCredentials/source`` names the role.
    /// - Throws: ``AWSError/Code/assumeRoleDenied`` when STS refuses (HTTP 403, `AccessDenied`,
    ///   `InvalidIdentityToken`, `ExpiredTokenException`); `.responseMalformed` for an answer without
    ///   credentials (`.credentialsInvalid` for empty ones); otherwise the code of the failed request
    ///   (`.network`, `.requestFailed`…).
    /// - SeeAlso: `Protocol/SPEC.md` §12.3 "Per-run role".
    public func assumeRole(
        roleARN: String, externalID: String?, sessionName: String, durationSeconds: Int,
        credentials: AWSCredentials
    ) throws(AWSError) -> AWSCredentials {
        var params = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", roleARN), ("RoleSessionName", sessionName),
            ("DurationSeconds", String(durationSeconds)),
        ]
        if let externalID { params.append(("ExternalId", externalID)) }
        return try call("AssumeRole", params: params, credentials: credentials, source: "sts:AssumeRole \(roleARN)")
    }

    /// Unsigned by design: the web-identity token is the proof. The token bytes are not kept.
    public func assumeRoleWithWebIdentity(roleARN: String, sessionName: String, token: [UInt8]) throws(AWSError)
        -> AWSCredentials
    {
        let params = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
            ("RoleSessionName", sessionName), ("WebIdentityToken", String(decoding: token, as: UTF8.self)),
        ]
        return try call(
            "AssumeRoleWithWebIdentity", params: params, credentials: nil,
            source: "sts:AssumeRoleWithWebIdentity \(roleARN)")
    }

    func call(_ operation: String, params: [(String, String)], credentials: AWSCredentials?, source: String)
        throws(AWSError) -> AWSCredentials
    {
        var body = Array(AWSHTTP.formEncode(params).utf8)
        defer { SecureBytes.zero(&body) }
        let hash = Hex.encode(SHA256.hash(body))
        let signer = SigV4Signer(
            region: endpoints.region, service: "sts", rules: .generic(normalizePath: true), clock: http.clock)
        let base = endpoints.sts
        let path = base.path.isEmpty ? "/" : base.path
        let (r, _, _) = try http.withRetries(operation: "sts:\(operation)") { _ throws(AWSError) in
            http.attempt(
                method: "POST", url: base, path: path, query: "", host: AWSEndpoints.hostHeader(base),
                headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                body: body, payloadSHA256: hash, signer: signer, credentials: credentials)
        }
        var resp = r.body
        defer { SecureBytes.zero(&resp) }
        guard (200..<300).contains(r.status) else {
            let e = AWSHTTP.failure("sts:\(operation)", r)
            if r.status == 403 || e.serviceCode == "AccessDenied" || e.serviceCode == "InvalidIdentityToken"
                || e.serviceCode == "ExpiredTokenException"
            {
                throw AWSError(.assumeRoleDenied, e.reason, serviceCode: e.serviceCode)
            }
            throw e
        }
        guard let id = XMLText.first("AccessKeyId", in: resp), let sr = XMLText.firstRange("SecretAccessKey", in: resp),
            let tr = XMLText.firstRange("SessionToken", in: resp)
        else {
            throw AWSError(.responseMalformed, "sts:\(operation): the answer has no credentials")
        }
        let expiration = XMLText.first("Expiration", in: resp).flatMap(Self.parseTime)
        var secret = Array(resp[sr])
        var token: [UInt8]? = Array(resp[tr])
        return try AWSCredentials(
            accessKeyID: id, secretAccessKey: &secret, sessionToken: &token, expiration: expiration, source: source)
    }

    /// A credential's `Expiration` (RFC 3339, with or without fractional seconds).
    static func parseTime(_ s: String) -> Date? { UTCTimestamp.parse(s) }
}
