import Foundation
import RistrettoPSI

/// Something that hands out current credentials, refreshing them before they expire.
/// Implementations are thread-safe: parallel part uploads ask concurrently.
public protocol CredentialProvider: Sendable {
    /// Credentials valid now: cached ones, or new ones when they are about to expire.
    func credentials() throws(AWSError) -> AWSCredentials
}

/// Fixed credentials (long-term keys, or tests).
public struct StaticCredentials: CredentialProvider {
    let value: AWSCredentials
    /// A provider that always hands out `value`.
    public init(_ value: AWSCredentials) { self.value = value }
    /// The fixed credentials; never throws and never refreshes.
    public func credentials() throws(AWSError) -> AWSCredentials { value }
}

/// The standard chain, in the standard order: environment variables; the shared credentials
/// file, then the config file, for `AWS_PROFILE`; a web-identity token file with a role
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, exchanged through STS
/// `AssumeRoleWithWebIdentity`). The first source that is present wins; a present but broken one
/// is an error, not a fall-through.
/// - SeeAlso: `Protocol/SPEC.md` §12.2.
public enum CredentialChain {
    /// The provider of the first source present: ``StaticCredentials`` for keys from the environment
    /// or a profile; ``WebIdentityCredentials`` for a token file (STS is called only when credentials
    /// are first asked for).
    ///
    /// - Throws: `.credentialsInvalid` for a source present but incomplete (a key ID without its
    ///   secret, a token file without a role ARN) or a shared file that does not parse;
    ///   `.credentialsMissing` when no source is present.
    public static func resolve(_ env: AWSEnvironment, endpoints: AWSEndpoints, http: AWSHTTP) throws(AWSError)
        -> any CredentialProvider
    {
        if let id = env.nonEmpty("AWS_ACCESS_KEY_ID") {
            guard let secret = env.nonEmpty("AWS_SECRET_ACCESS_KEY") else {
                throw AWSError(.credentialsInvalid, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
            }
            return StaticCredentials(
                try AWSCredentials(
                    accessKeyID: id, secretAccessKey: secret,
                    sessionToken: env.nonEmpty("AWS_SESSION_TOKEN"), source: "environment"))
        }
        let profile = env.profile
        for (file, name) in [
            (env.credentialsFile, profile), (env.configFile, profile == "default" ? "default" : "profile \(profile)"),
        ] {
            if let s = try INIFile.section(name, in: file), let id = s["aws_access_key_id"] {
                guard let secret = s["aws_secret_access_key"] else {
                    throw AWSError(
                        .credentialsInvalid, "\(file) [\(name)]: aws_access_key_id without aws_secret_access_key")
                }
                return StaticCredentials(
                    try AWSCredentials(
                        accessKeyID: id, secretAccessKey: secret, sessionToken: s["aws_session_token"],
                        source: "profile \(profile)"))
            }
        }
        let config = try env.configSection()
        if let tokenFile = env.nonEmpty("AWS_WEB_IDENTITY_TOKEN_FILE") ?? config["web_identity_token_file"] {
            guard let role = env.nonEmpty("AWS_ROLE_ARN") ?? config["role_arn"] else {
                throw AWSError(.credentialsInvalid, "a web identity token file is set but no role ARN (AWS_ROLE_ARN)")
            }
            let session = env.nonEmpty("AWS_ROLE_SESSION_NAME") ?? "cleanroom-\(Int(Date().timeIntervalSince1970))"
            return WebIdentityCredentials(
                sts: STSClient(endpoints: endpoints, http: http), roleARN: role, tokenFile: tokenFile,
                sessionName: session)
        }
        throw AWSError(
            .credentialsMissing,
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in \(env.credentialsFile), or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN"
        )
    }
}

/// Temporary credentials from STS, cached and refreshed `refreshMargin` before they expire.
final class RefreshingCredentials: CredentialProvider, @unchecked Sendable {
    private let lock = NSLock()
    private var cached: AWSCredentials?
    private let fetch: @Sendable () throws(AWSError) -> AWSCredentials
    let refreshMargin: TimeInterval
    let clock: @Sendable () -> Date

    init(
        refreshMargin: TimeInterval, clock: @escaping @Sendable () -> Date,
        fetch: @escaping @Sendable () throws(AWSError) -> AWSCredentials
    ) {
        self.refreshMargin = refreshMargin
        self.clock = clock
        self.fetch = fetch
    }

    func credentials() throws(AWSError) -> AWSCredentials {
        lock.lock()
        defer { lock.unlock() }
        if let c = cached, !c.expires(within: refreshMargin, now: clock()) { return c }
        let c = try fetch()
        cached = c
        return c
    }

    /// Drops the cache (the service said `ExpiredToken` before our clock did).
    func invalidate() {
        lock.lock()
        cached = nil
        lock.unlock()
    }
}

/// `AssumeRoleWithWebIdentity` from a token file, re-read at each refresh (the platform rotates it).
public final class WebIdentityCredentials: CredentialProvider, @unchecked Sendable {
    let inner: RefreshingCredentials
    /// Reads nothing yet: the token file is read and STS called when credentials are first asked for,
    /// and again once the cached ones are within `refreshMargin` seconds of expiring.
    public init(
        sts: STSClient, roleARN: String, tokenFile: String, sessionName: String, refreshMargin: TimeInterval = 300
    ) {
        inner = RefreshingCredentials(
            refreshMargin: refreshMargin, clock: { Date() },
            fetch: { () throws(AWSError) -> AWSCredentials in
                guard let d = FileManager.default.contents(atPath: tokenFile) else {
                    throw AWSError(.credentialsInvalid, "\(tokenFile): the web identity token file cannot be read")
                }
                var token = Array(d)
                defer { SecureBytes.zero(&token) }
                while let l = token.last, l == 0x0a || l == 0x0d || l == 0x20 { token.removeLast() }
                return try sts.assumeRoleWithWebIdentity(roleARN: roleARN, sessionName: sessionName, token: token)
            })
    }
    /// The cached credentials, or new ones when they are near expiry; concurrent callers wait for
    /// one refresh.
    /// - Throws: `.credentialsInvalid` when the token file cannot be read; the errors of
    ///   ``STSClient/assumeRoleWithWebIdentity(roleARN:sessionName:token:)``.
    public func credentials() throws(AWSError) -> AWSCredentials { try inner.credentials() }
}

/// `AssumeRole` of the provider's role with the collaboration's External ID, signed with the
/// coordinator's own credentials; refreshed during long uploads.
public final class AssumedRoleCredentials: CredentialProvider, @unchecked Sendable {
    let inner: RefreshingCredentials
    /// Calls STS only when credentials are first asked for (signed with `base`'s credentials of the
    /// moment), then again within `refreshMargin` seconds of expiry or after ``invalidate()``;
    /// `durationSeconds` is the session length asked of STS.
    public init(
        sts: STSClient, base: any CredentialProvider, roleARN: String, externalID: String?, sessionName: String,
        durationSeconds: Int = 3600, refreshMargin: TimeInterval = 300,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        inner = RefreshingCredentials(refreshMargin: refreshMargin, clock: clock) {
            () throws(AWSError) -> AWSCredentials in
            try sts.assumeRole(
                roleARN: roleARN, externalID: externalID, sessionName: sessionName,
                durationSeconds: durationSeconds, credentials: try base.credentials())
        }
    }
    /// The cached role credentials, or new ones when they are near expiry or were invalidated;
    /// concurrent callers wait for one refresh.
    /// - Throws: what `base` throws; the errors of
    ///   ``STSClient/assumeRole(roleARN:externalID:sessionName:durationSeconds:credentials:)``.
    public func credentials() throws(AWSError) -> AWSCredentials { try inner.credentials() }
    /// Forces the next ``credentials()`` to call STS again.
    public func invalidate() { inner.invalidate() }
}
