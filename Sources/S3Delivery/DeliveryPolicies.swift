import Foundation

/// The IAM documents a provider applies to its delivery role (`cleanroom provider aws-setup`).
///
/// Contract: pure functions of the agreement's values; JSON with sorted keys. The permission
/// policy grants writes under `<prefix>/<collaboration-id>/` and nothing else: no Get, List or
/// Delete.
/// - SeeAlso: `Protocol/SPEC.md` §12.5 "Provider set-up".
public enum DeliveryPolicies {
    /// The actions the delivery role gets, exactly.
    public static let deliveryActions = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:PutObject"]

    /// `arn:aws:s3:::<bucket>/<prefix>/<collaboration-id>/*`.
    public static func deliveryResource(location: S3Location, collaborationID: String) -> String {
        "arn:aws:s3:::\(location.bucket)/\(location.key(collaborationID))/*"
    }

    /// Trust policy: the coordinator's AWS principal may assume the role only with this
    /// collaboration's External ID (the confused-deputy guard).
    public static func trustPolicy(coordinatorPrincipal: String, externalID: String) -> String {
        json([
            "Version": "2012-10-17",
            "Statement": [
                [
                    "Effect": "Allow", "Principal": ["AWS": coordinatorPrincipal], "Action": "sts:AssumeRole",
                    "Condition": ["StringEquals": ["sts:ExternalId": externalID]],
                ]
            ],
        ])
    }

    /// Trust policy, OpenID Connect variant: the coordinator's workload identity (issuer, audience,
    /// subject) may call `AssumeRoleWithWebIdentity`.
    public static func oidcTrustPolicy(accountID: String, issuerHost: String, audience: String, subject: String)
        -> String
    {
        json([
            "Version": "2012-10-17",
            "Statement": [
                [
                    "Effect": "Allow",
                    "Principal": ["Federated": "arn:aws:iam::\(accountID):oidc-provider/\(issuerHost)"],
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": ["StringEquals": ["\(issuerHost):aud": audience, "\(issuerHost):sub": subject]],
                ]
            ],
        ])
    }

    /// Permission policy: the three write actions on the collaboration's prefix only.
    public static func permissionPolicy(location: S3Location, collaborationID: String) -> String {
        json([
            "Version": "2012-10-17",
            "Statement": [
                [
                    "Sid": "CleanRoomDeliveryWriteOnly", "Effect": "Allow", "Action": deliveryActions,
                    "Resource": deliveryResource(location: location, collaborationID: collaborationID),
                ]
            ],
        ])
    }

    static func json(_ v: Any) -> String {
        let d = try! JSONSerialization.data(
            withJSONObject: v, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: d, as: UTF8.self)
    }
}
