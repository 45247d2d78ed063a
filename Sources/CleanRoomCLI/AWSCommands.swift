import Activation
import Foundation
import RistrettoPSI
import S3Delivery
import Workflow

/// `cleanroom provider aws-setup` and `cleanroom coordinator verify-destination`.
/// - SeeAlso: `Protocol/SPEC.md` §12.5; README.md "Delivering to Amazon S3".
enum AWSCommands {
    static let setupUsage = """
        usage: cleanroom provider aws-setup --agreement <file> [--destination-s3 s3://<bucket>/<prefix>]
                                            [--coordinator-principal <arn>] [--oidc-issuer <host> --oidc-subject <sub>
                                            [--oidc-audience sts.amazonaws.com] --account-id <id>] [--json]

        Prints the delivery role's trust policy (the coordinator's principal may assume it only with
        this collaboration's External ID; or, with --oidc-*, the OpenID Connect variant) and its
        permission policy (s3:PutObject, s3:AbortMultipartUpload, s3:ListMultipartUploadParts on
        arn:aws:s3:::<bucket>/<prefix>/<collaboration-id>/* and nothing else). The destination comes
        from the agreement, or from --destination-s3 before `collaboration accept`.
        """

    static func setup(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json"],
            options: [
                "agreement", "destination-s3", "coordinator-principal",
                "oidc-issuer", "oidc-subject", "oidc-audience", "account-id",
            ])
        if args.has("help") {
            Console.out(setupUsage)
            return
        }
        try args.expectPositionals(0)
        let path = try args.required("agreement")
        let terms = try SignedAgreement(json: Data(try Files.read(path))).terms
        let location: S3Location
        if let uri = try args.value("destination-s3") {
            location = try S3Location(uri: uri)
        } else if let d = terms.destination, d.kind == "s3", let b = d.bucket {
            location = try S3Location(bucket: b, prefix: d.prefix ?? "")
        } else {
            throw CLIError.usage("\(path) names no s3 destination yet: give --destination-s3 s3://<bucket>/<prefix>")
        }
        let trust: String
        if let issuer = try args.value("oidc-issuer") {
            trust = DeliveryPolicies.oidcTrustPolicy(
                accountID: try args.required("account-id"), issuerHost: issuer,
                audience: try args.value("oidc-audience") ?? "sts.amazonaws.com",
                subject: try args.required("oidc-subject"))
        } else {
            trust = DeliveryPolicies.trustPolicy(
                coordinatorPrincipal: try args.value("coordinator-principal") ?? "<coordinator's AWS principal ARN>",
                externalID: terms.externalID)
        }
        let permission = DeliveryPolicies.permissionPolicy(location: location, collaborationID: terms.collaborationID)
        if args.has("json") {
            Console.json([
                "collaborationID": terms.collaborationID, "externalID": terms.externalID,
                "resource": DeliveryPolicies.deliveryResource(
                    location: location, collaborationID: terms.collaborationID),
                "trustPolicy": trust, "permissionPolicy": permission,
            ])
            return
        }
        Console.out(
            """
            # Delivery role for collaboration \(terms.collaborationID), destination \(location)
            # 1. Trust policy (aws iam create-role --role-name <name> --assume-role-policy-document file://trust.json):
            \(trust)

            # 2. Permission policy (aws iam put-role-policy --role-name <name> --policy-name cleanroom-delivery --policy-document file://permission.json):
            \(permission)

            # 3. Recommended on the bucket: a lifecycle rule AbortIncompleteMultipartUpload (DaysAfterInitiation 1)
            #    on \(location.key(terms.collaborationID))/, and no bucket policy granting the coordinator anything else.
            # 4. Accept with: cleanroom collaboration accept ... --destination-s3 \(location) --region <region> --role-arn <the role's ARN>
            """)
    }

    static let verifyUsage = """
        usage: cleanroom coordinator verify-destination --agreement <file> [--json]

        With the coordinator's own AWS credentials (environment, AWS_PROFILE, or web identity; endpoint
        overrides AWS_ENDPOINT_URL[_S3|_STS]): assumes the agreement's role with the External ID, writes
        a small canary object inside <prefix>/<collaboration-id>/, confirms that reading it and writing
        outside the prefix are denied, and that the role cannot be assumed without the External ID.
        Prints "write-only confirmed" (exit 0) or what is wrong (exit 1).
        """

    static func verify(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "json"], options: ["agreement"])
        if args.has("help") {
            Console.out(verifyUsage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        guard let d = a.terms.destination, d.kind == "s3", let bucket = d.bucket, let role = d.roleARN else {
            throw CLIError.failure("the agreement's destination is not an s3 destination with a role ARN")
        }
        let env = AWSEnvironment()
        let endpoints = try AWSEndpoints.resolve(env, region: d.region)
        // The probe's own defaults (a quicker answer), the environment's settings over them.
        let http = AWSHTTP.fromEnvironment(env, timeout: 20, attempts: 3)
        let base = try CredentialChain.resolve(env, endpoints: endpoints, http: http)
        let checks = DestinationProbe.run(
            location: try S3Location(bucket: bucket, prefix: d.prefix ?? ""), collaborationID: a.terms.collaborationID,
            roleARN: role, externalID: a.terms.externalID, base: base, endpoints: endpoints, http: http)
        let ok = DestinationProbe.confirmed(checks)
        if args.has("json") {
            Console.json([
                "writeOnlyConfirmed": ok,
                "checks": checks.map {
                    ["check": $0.name, "passed": $0.passed, "advisory": $0.advisory, "detail": $0.detail]
                },
            ])
        } else {
            for c in checks {
                Console.out("\(c.passed ? "ok  " : c.advisory ? "warn" : "FAIL") \(c.name): \(c.detail)")
            }
            Console.out(ok ? "write-only confirmed" : "NOT write-only: see the FAIL lines above")
        }
        if !ok { throw CLIError.failure("the destination is not write-only for the coordinator") }
    }
}
