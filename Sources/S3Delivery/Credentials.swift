import Foundation
import RistrettoPSI

/// AWS credentials: an access key ID (public: it travels in every `Authorization` header), the
/// secret access key and the optional session token, both in zeroing ``SecureBytes``.
///
/// Contract: immutable and `Sendable`; `description`, `debugDescription` and reflection name only
/// the access key ID and whether a token is present. Not `Codable`, not `Equatable`.
/// - Warning: the session token must be sent as the `X-Amz-Security-Token` header, so a transient
///   `String` copy of it exists while a request is built; the secret key never leaves ``SecureBytes``
///   (only keys derived from it by HMAC do, and those are zeroed after use).
/// - SeeAlso: `Protocol/SPEC.md` §12.2 "Credentials".
public struct AWSCredentials: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The access key ID in full (not a secret); descriptions show only its last four characters.
    public let accessKeyID: String
    let secretAccessKey: SecureBytes
    let sessionToken: SecureBytes?
    /// When temporary credentials stop working (`nil` for long-term keys).
    public let expiration: Date?
    /// Where they came from (`environment`, `profile default`, `sts:AssumeRole`…), for messages.
    public let source: String

    /// Takes ownership of the secret bytes: the arrays are zeroed.
    public init(
        accessKeyID: String, secretAccessKey: inout [UInt8], sessionToken: inout [UInt8]?, expiration: Date? = nil,
        source: String
    ) throws(AWSError) {
        guard !accessKeyID.isEmpty, !secretAccessKey.isEmpty else {
            if secretAccessKey.count > 0 { SecureBytes.zero(&secretAccessKey) }
            throw AWSError(.credentialsInvalid, "\(source): empty access key ID or secret access key")
        }
        self.accessKeyID = accessKeyID
        self.secretAccessKey = SecureBytes(consuming: &secretAccessKey)
        if sessionToken?.isEmpty == false {
            self.sessionToken = SecureBytes(consuming: &sessionToken!)
        } else {
            self.sessionToken = nil
        }
        self.expiration = expiration
        self.source = source
    }

    /// Convenience for tests and fixed local keys. The caller's strings cannot be zeroed.
    public init(
        accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Date? = nil,
        source: String = "static"
    ) throws(AWSError) {
        var s = Array(secretAccessKey.utf8)
        var t = sessionToken.map { Array($0.utf8) }
        try self.init(
            accessKeyID: accessKeyID, secretAccessKey: &s, sessionToken: &t, expiration: expiration, source: source)
    }

    /// Whether these credentials expire within `margin` of `now` (refresh before that).
    public func expires(within margin: TimeInterval, now: Date) -> Bool {
        guard let expiration else { return false }
        return expiration.timeIntervalSince(now) <= margin
    }

    var hasSessionToken: Bool { sessionToken != nil }

    /// The session token as header text (see the warning on the type).
    func sessionTokenHeader() -> String? {
        sessionToken?.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// The masked key ID, `redacted` for the secret and any session token, and the source.
    public var description: String {
        "AWSCredentials(\(maskedKeyID), secret redacted\(sessionToken == nil ? "" : ", session token redacted"), from \(source))"
    }
    /// The same as ``description``: no secret in debug output either.
    public var debugDescription: String { description }
    /// Only the masked key ID and `secret: redacted`, so `dump` and reflection print no secret.
    public var customMirror: Mirror {
        Mirror(self, children: ["accessKeyID": maskedKeyID, "secret": "redacted"], displayStyle: .struct)
    }

    /// The key ID as `aws configure list` shows it (last four characters): enough to tell keys
    /// apart in a log, not enough to name the principal in someone else's log or request.
    var maskedKeyID: String { "****" + accessKeyID.suffix(4) }
}
