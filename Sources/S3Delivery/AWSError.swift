/// The one error type of the S3 delivery module: a stable code and a reason.
///
/// Contract: a reason names the operation, the bucket-relative key or the file and the S3/STS error
/// code; never a secret key, session token or web-identity token. Equality is by code only.
/// - SeeAlso: `Protocol/SPEC.md` §10 "Delivery to S3 (`AWSError`)".
public struct AWSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the ones listed in `Protocol/SPEC.md` §10.
    public enum Code: String, Sendable {
        /// No credentials in the environment, the shared files or a web-identity token file.
        case credentialsMissing = "aws.credentials.missing"
        /// A credentials/config file, token file or STS answer that cannot be parsed.
        case credentialsInvalid = "aws.credentials.invalid"
        /// A malformed endpoint, region, role ARN or `s3://` URI; or no libcurl on this machine, or an
        /// unreadable `AWS_CA_BUNDLE` (SPEC §12 "HTTP"): a fault of the setup, never retried.
        case configuration = "aws.configuration"
        /// STS refused to issue credentials (wrong External ID, untrusted principal, bad token).
        case assumeRoleDenied = "aws.sts.denied"
        /// S3 refused the request (`AccessDenied`, `InvalidAccessKeyId`, `SignatureDoesNotMatch`…).
        case accessDenied = "aws.s3.access_denied"
        /// `If-None-Match: *` failed: the object already exists (a delivered run is never overwritten).
        case alreadyExists = "aws.s3.already_exists"
        /// The object or bucket does not exist.
        case notFound = "aws.s3.not_found"
        /// Any other S3 or STS error, after the retries the error allows.
        case requestFailed = "aws.request_failed"
        /// Connection refused/reset, timeout or a lost response, after the retries; a server
        /// certificate that does not verify, at once.
        case network = "aws.network"
        /// A response that does not parse (XML, missing fields, a `Content-Range` other than the range
        /// asked for), or an answer body larger than 64 MiB (never retried).
        case responseMalformed = "aws.response_malformed"
        /// An upload's bytes, read in pieces, do not hash as expected (the object's SHA-256, or a
        /// retried part read again differs or cannot be read): nothing was committed.
        case bodyChanged = "aws.upload.body_changed"
        /// A download's object changed between its ranges (`If-Match` failed).
        case objectChanged = "aws.s3.object_changed"
    }
    /// The stable code.
    public let code: Code
    /// What failed: the operation, key or file and the service's answer; never a credential.
    public let reason: String
    /// The S3/STS error code from the response body (`SlowDown`, `AccessDenied`…), when there was one.
    public let serviceCode: String?
    /// An error with its code, its reason and, when the service answered with one, its error code.
    public init(_ code: Code, _ reason: String, serviceCode: String? = nil) {
        self.code = code
        self.reason = reason
        self.serviceCode = serviceCode
    }
    /// The code's raw value, then the reason.
    public var description: String { "\(code.rawValue): \(reason)" }
    /// Equal when the codes are equal: the reason and the service code are ignored.
    public static func == (a: AWSError, b: AWSError) -> Bool { a.code == b.code }
}
