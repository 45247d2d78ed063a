import Activation
import Foundation
import RistrettoPSI
import S3Delivery

/// The provider's Amazon S3 path: `<prefix>/<collaboration-id>/<run-id>/part-NNNNN.csv[.gz]`, then
/// `manifest.json` written last as the commit marker.
///
/// Contract:
/// - The coordinator side (``init(coordinator:…)``) assumes the agreement's role for each run
///   (STS `AssumeRole` with the collaboration's External ID, session name
///   `cleanroom-<collaboration>-<run>`), and only writes: each object with `If-None-Match: *`, the
///   manifest last. A failure before the manifest leaves no manifest and no unfinished multipart
///   upload; a run whose objects or manifest already exist is refused (`aws.s3.already_exists`).
///   It holds no reader, so it cannot GET, LIST or DELETE in the provider's bucket.
/// - The provider side (``init(provider:…)``) reads with the provider's own credentials.
/// - SeeAlso: `Protocol/SPEC.md` §12 "Delivery to Amazon S3".
public struct S3Destination: DeliveryDestination {
    /// The provider's bucket and prefix.
    public let location: S3Location
    enum Access: Sendable {
        case coordinator(base: any CredentialProvider, roleARN: String, externalID: String?)
        case provider(any CredentialProvider)
    }
    let access: Access
    let endpoints: AWSEndpoints
    let http: AWSHTTP
    let multipartThreshold: Int
    let partSize: Int
    /// Free bytes where a provider's open downloads each object (tests inject less).
    public var availableBytes: @Sendable (String) -> Int? = ScratchPreflight.availableBytes(at:)

    /// The coordinator's write-only side: each run assumes `roleARN` from the `base` credentials with
    /// `externalID`; an object above `multipartThreshold` bytes goes up in parts of `partSize` (both
    /// clamped by ``S3Writer``: parts to at least 5 MiB, the threshold to at least a part).
    /// - SeeAlso: `Protocol/SPEC.md` §12.3 "Per-run role", §12.4 "S3 writes".
    public init(
        coordinator base: any CredentialProvider, roleARN: String, externalID: String?, location: S3Location,
        endpoints: AWSEndpoints, http: AWSHTTP = AWSHTTP(),
        multipartThreshold: Int = 16 * 1024 * 1024, partSize: Int = 8 * 1024 * 1024
    ) {
        access = .coordinator(base: base, roleARN: roleARN, externalID: externalID)
        self.location = location
        self.endpoints = endpoints
        self.http = http
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
    }

    /// The provider's read side, with its own `credentials`; it cannot deliver.
    public init(
        provider credentials: any CredentialProvider, location: S3Location, endpoints: AWSEndpoints,
        http: AWSHTTP = AWSHTTP()
    ) {
        access = .provider(credentials)
        self.location = location
        self.endpoints = endpoints
        self.http = http
        multipartThreshold = 16 * 1024 * 1024
        partSize = 8 * 1024 * 1024
    }

    /// STS session names allow 64 characters of `[\w+=,.@-]`: the collaboration's first 8 hex
    /// digits and the whole run ID, so CloudTrail names both.
    public static func sessionName(collaborationID: String, runID: String) -> String {
        "cleanroom-\(collaborationID.prefix(8))-\(runID)"
    }

    /// The temporary credentials of one run.
    public func runCredentials(collaborationID: String, runID: String) throws(AWSError) -> AssumedRoleCredentials {
        guard case .coordinator(let base, let role, let external) = access else {
            throw AWSError(.configuration, "this destination holds the provider's read access, not the coordinator's")
        }
        return AssumedRoleCredentials(
            sts: STSClient(endpoints: endpoints, http: http), base: base, roleARN: role, externalID: external,
            sessionName: Self.sessionName(collaborationID: collaborationID, runID: runID))
    }

    /// ``deliver(_:collaborationID:runID:beforeManifest:)`` with no write-ahead record.
    /// - Throws: `AWSError` (e.g. `aws.configuration` on the provider's side, `aws.sts.denied`,
    ///   `aws.s3.already_exists` when the run's objects or manifest exist), or an object's read error.
    public func deliver(_ plan: DeliveryPlan, collaborationID: String, runID: String) throws {
        try deliver(plan, collaborationID: collaborationID, runID: runID, beforeManifest: {})
    }

    /// Writes the objects, calls `beforeManifest` (the coordinator's write-ahead intent record),
    /// then writes the manifest. A throw from `beforeManifest` stops before the manifest.
    public func deliver(_ plan: DeliveryPlan, collaborationID: String, runID: String, beforeManifest: () throws -> Void)
        throws
    {
        let creds = try runCredentials(collaborationID: collaborationID, runID: runID)
        _ = try creds.credentials()  // fail fast (wrong External ID, untrusted principal) before any write
        let writer = S3Writer(
            endpoints: endpoints, bucket: location.bucket, http: http, credentials: creds,
            multipartThreshold: multipartThreshold, partSize: partSize)
        for o in plan.objects {
            // Streamed from the object's content (a coordinator scratch file for a large delivery):
            // one PutObject up to the threshold, else parts read as they are sent; the bytes read
            // must hash to the manifest's SHA-256 before the object is committed.
            let content = o.content
            _ = try writer.put(
                key: location.key(collaborationID, runID, o.name), size: o.size, sha256: o.sha256,
                contentType: o.name.hasSuffix(".gz") ? "application/gzip" : "text/csv"
            ) { offset, buffer in
                try content.read(at: offset, into: buffer)
            }
        }
        try beforeManifest()
        _ = try writer.put(
            key: location.key(collaborationID, runID, DeliveryPlan.manifestName), bytes: plan.manifest.json(),
            contentType: "application/json")
    }

    /// Writes only `plan`'s manifest (`If-None-Match: *`), for a retry whose objects a killed
    /// attempt already wrote. Returns true when this call wrote it, false when a manifest was
    /// already there (412): the coordinator cannot read which one, only that the key is taken.
    public func commitManifest(_ plan: DeliveryPlan, collaborationID: String, runID: String) throws -> Bool {
        let creds = try runCredentials(collaborationID: collaborationID, runID: runID)
        let writer = S3Writer(
            endpoints: endpoints, bucket: location.bucket, http: http, credentials: creds,
            multipartThreshold: multipartThreshold, partSize: partSize)
        do {
            _ = try writer.put(
                key: location.key(collaborationID, runID, DeliveryPlan.manifestName), bytes: plan.manifest.json(),
                contentType: "application/json")
            return true
        } catch  where error.code == .alreadyExists {
            return false
        }
    }

    /// The manifest with one GetObject; each object, when the open reaches it, downloaded in
    /// ranges into a file of `scratch` (never held whole; one object at a time), its size checked
    /// against the manifest's before any byte is stored. Before each download, the manifest's size
    /// for it is checked against the room in a directory scratch: too little stops the open with
    /// `workflow.disk_space` before the object's first byte (SPEC §12.7).
    public func read(collaborationID: String, runID: String, scratch: any ScratchSpace) throws -> ReceivedDelivery {
        guard case .provider(let creds) = access else {
            throw AWSError(.configuration, "the coordinator never reads the provider's bucket")
        }
        let reader = S3Reader(endpoints: endpoints, bucket: location.bucket, http: http, credentials: creds)
        let manifestBytes = try reader.get(key: location.key(collaborationID, runID, DeliveryPlan.manifestName))
        guard (try? JSONDecoder().decode(SignedManifest.self, from: Data(manifestBytes))) != nil else {
            throw WorkflowError(
                .destination, "\(location)/\(collaborationID)/\(runID)/manifest.json is not a delivery manifest")
        }
        let location = self.location
        return ReceivedDelivery(manifestBytes: manifestBytes, expectedRunID: runID) { o in
            guard isObjectName(o.name) else {
                throw WorkflowError(.destination, "manifest names an object outside the run")
            }
            let key = location.key(collaborationID, runID, o.name)
            if let directory = (scratch as? DirectoryScratch)?.directory {
                try ScratchPreflight.checkDownload(
                    size: o.bytes, of: "s3://\(location.bucket)/\(key)", into: directory,
                    available: availableBytes(directory), remedy: ScratchPreflight.openRemedy)
            }
            let file = try scratch.makeFile()
            _ = try reader.download(
                key: key,
                expect: { size in
                    guard size == o.bytes else {
                        throw ActivationError(
                            .deliveryInvalid,
                            "object \(o.name) does not match its SHA-256 in the manifest "
                                + "(it holds \(size) bytes, the manifest says \(o.bytes))")
                    }
                }, write: { try file.append($0) })
            return ScratchFileSource(file)
        }
    }
}
