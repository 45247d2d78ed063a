import Foundation
import RistrettoPSI

/// `cleanroom coordinator verify-destination`: proves, with the coordinator's own credentials,
/// that the provider's delivery role is write-only on the collaboration's prefix.
///
/// Contract: assumes the role with the External ID; writes one small canary object inside
/// `<prefix>/<collaboration-id>/`; then tries, and must fail, to read that canary and to write
/// outside the prefix; and tries, and should fail, to assume the role without the External ID.
/// The read attempt is the only GET the coordinator ever sends, and it is expected to be refused.
/// The canary stays (the coordinator cannot delete); the provider may remove it.
/// - SeeAlso: `Protocol/SPEC.md` §12.5.
public enum DestinationProbe {
    /// One check's outcome, as `verify-destination` prints it (`ok`, `warn` or `FAIL`).
    public struct Check: Sendable {
        /// What was tried, in words (e.g. `read is denied`).
        public let name: String
        /// Whether the role behaved as a write-only role should.
        public let passed: Bool
        /// For a check that failed only because the server does not enforce it (a warning).
        public let advisory: Bool
        /// What backs the outcome: the role ARN, the key written or the error met; when the role could
        /// do what it must not, what to change in its policies.
        public let detail: String
    }

    /// Runs the checks in the order the type describes and returns every outcome; if the role
    /// cannot be assumed with the External ID, that failed check is the only one returned.
    ///
    /// Failures are checks, never thrown: judge the list with ``confirmed(_:)``. `base` holds the
    /// coordinator's own credentials; the role is assumed from them.
    public static func run(
        location: S3Location, collaborationID: String, roleARN: String, externalID: String,
        base: any CredentialProvider, endpoints: AWSEndpoints, http: AWSHTTP
    ) -> [Check] {
        var out: [Check] = []
        let sts = STSClient(endpoints: endpoints, http: http)
        let role = AssumedRoleCredentials(
            sts: sts, base: base, roleARN: roleARN, externalID: externalID,
            sessionName: "cleanroom-\(collaborationID.prefix(8))-verify")
        do {
            _ = try role.credentials()
            out.append(Check(name: "assume role with the External ID", passed: true, advisory: false, detail: roleARN))
        } catch {
            out.append(
                Check(
                    name: "assume role with the External ID", passed: false, advisory: false, detail: error.description)
            )
            return out
        }
        let writer = S3Writer(endpoints: endpoints, bucket: location.bucket, http: http, credentials: role)
        let canary = location.key(
            collaborationID, "_cleanroom-canary",
            "\(Int(Date().timeIntervalSince1970))-\(Hex.encode(SecureRandom.bytes(4)))")
        do {
            _ = try writer.put(
                key: canary, bytes: Array("cleanroom verify-destination canary\n".utf8), contentType: "text/plain")
            out.append(
                Check(name: "write inside the collaboration's prefix", passed: true, advisory: false, detail: canary))
        } catch {
            out.append(
                Check(
                    name: "write inside the collaboration's prefix", passed: false, advisory: false,
                    detail: error.description))
        }
        do {
            _ = try S3Reader(endpoints: endpoints, bucket: location.bucket, http: http, credentials: role).get(
                key: canary)
            out.append(
                Check(
                    name: "read is denied", passed: false, advisory: false,
                    detail: "the role could read \(canary): remove s3:GetObject"))
        } catch {
            out.append(
                Check(
                    name: "read is denied", passed: error.code == .accessDenied, advisory: false,
                    detail: error.description))
        }
        let outside = location.key("_cleanroom-outside-canary-\(Hex.encode(SecureRandom.bytes(4)))")
        do {
            _ = try writer.put(key: outside, bytes: [0x0a], contentType: "text/plain")
            out.append(
                Check(
                    name: "write outside the prefix is denied", passed: false, advisory: false,
                    detail:
                        "the role could write \(outside): restrict the resource to arn:aws:s3:::\(location.bucket)/\(location.key(collaborationID))/*"
                ))
        } catch {
            out.append(
                Check(
                    name: "write outside the prefix is denied", passed: error.code == .accessDenied, advisory: false,
                    detail: error.description))
        }
        do {
            _ = try sts.assumeRole(
                roleARN: roleARN, externalID: nil, sessionName: "cleanroom-\(collaborationID.prefix(8))-noextid",
                durationSeconds: 900, credentials: try base.credentials())
            out.append(
                Check(
                    name: "assume role without the External ID is refused", passed: false, advisory: true,
                    detail:
                        "STS issued credentials without the External ID: add the sts:ExternalId condition to the trust policy (some S3-compatible servers, e.g. moto, never enforce it)"
                ))
        } catch {
            out.append(
                Check(
                    name: "assume role without the External ID is refused", passed: error.code == .assumeRoleDenied,
                    advisory: false,
                    detail: error.description))
        }
        return out
    }

    /// Write-only is confirmed when every non-advisory check passed.
    public static func confirmed(_ checks: [Check]) -> Bool { checks.allSatisfy { $0.passed || $0.advisory } }
}
