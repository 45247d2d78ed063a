import Foundation
import Gzip
import RistrettoPSI
import S3Delivery
import TestSupport
import Testing
import Workflow

@testable import Activation

/// Writes a large delivery for measuring `cleanroom provider open` alone (peak RSS at 1M matched
/// records, BENCHMARKS.md), without the group arithmetic of rounds 1–5: identities, a signed
/// agreement and a local delivery laid out as the coordinator writes it (sealed audience keys,
/// sealed member IDs, one object, the signed manifest). Runs only when asked:
///
///     CLEANROOM_OPEN_FIXTURE_DIR=/tmp/open-1m CLEANROOM_OPEN_FIXTURE_RECORDS=1000000 \
///       [CLEANROOM_OPEN_FIXTURE_GZIP=1] swift test --filter OpenFixture
///
/// then `cleanroom provider open --agreement <dir>/agreement.json --identity
/// <dir>/keys/provider/identity.key --run-id $(cat <dir>/run-id) --out <dir>/matched.csv`.
/// With `CLEANROOM_OPEN_FIXTURE_S3=1` and the test S3 server (`CLEANROOM_S3_ENDPOINT`…), the
/// delivery goes to a new bucket of that server instead (the agreement names it), and
/// `<dir>/provider.env` holds the provider's environment for the `provider open` above.
@Suite(
    "Open fixture (on request)", .enabled(if: ProcessInfo.processInfo.environment["CLEANROOM_OPEN_FIXTURE_DIR"] != nil))
struct OpenFixture {
    @Test func writeALargeDelivery() throws {
        let env = ProcessInfo.processInfo.environment
        let dir = env["CLEANROOM_OPEN_FIXTURE_DIR"]!
        let count = Int(env["CLEANROOM_OPEN_FIXTURE_RECORDS"] ?? "") ?? 1_000_000
        let gzip = env["CLEANROOM_OPEN_FIXTURE_GZIP"] == "1"
        let s3 = env["CLEANROOM_OPEN_FIXTURE_S3"] == "1" && S3Server.configured
        let bucket = "cr-open-\(S3Server.random())"
        try? FileManager.default.removeItem(atPath: dir)
        var ids: [Role: PartyIdentity] = [:]
        for role in [Role.consumer, .provider, .coordinator] {
            let d = "\(dir)/keys/\(KeyFiles.roleName(role))"
            _ = try KeyFiles.generate(role: role, name: KeyFiles.roleName(role), directory: d)
            ids[role] = try KeyFiles.load("\(d)/identity.key", role: role).identity
        }
        let (consumer, provider, coordinator) = (ids[.consumer]!, ids[.provider]!, ids[.coordinator]!)
        let terms = AgreementTerms(
            collaborationID: AgreementTerms.newID(), externalID: AgreementTerms.newID(), createdAt: Date(),
            expiresAt: Date().addingTimeInterval(30 * 86_400),
            consumer: .init(name: "Retailer", signingKey: consumer.signingKey.verifyingKey.hex),
            provider: .init(
                name: "Media", signingKey: provider.signingKey.verifyingKey.hex,
                sealingKey: provider.sealingKey.publicKey.hex),
            coordinator: .init(
                name: "Coordinator", signingKey: coordinator.signingKey.verifyingKey.hex,
                sealingKey: coordinator.sealingKey.publicKey.hex),
            matching: .init(identifierTypes: ["email"], defaultCountryCallingCode: "1"),
            output: .init(deliverMemberID: true, gzip: gzip, sealed: true),
            privacy: .init(minConsumerRows: 10, minMatchedRows: 10, maxRunsPerWindow: 10, windowSeconds: 3600),
            destination: s3
                ? .init(
                    kind: "s3", bucket: bucket, prefix: "deliveries", region: S3Server.region,
                    roleARN: "arn:aws:iam::\(S3Server.accountID):role/unused-by-open")
                : .init(kind: "local", directory: "\(dir)/bucket"))
        var signed = SignedAgreement(terms: terms)
        try signed.sign(as: .consumer, with: consumer.signingKey)
        try signed.sign(as: .provider, with: provider.signingKey)
        try signed.json().write(to: URL(fileURLWithPath: "\(dir)/agreement.json"))
        let agreement = try signed.verified()

        let runID = AgreementTerms.newID()
        let run = UUIDBytes.parse(runID)!
        let payload = try RecordSealer(
            recipient: provider.sealingKey.publicKey, context: Layout.payloadContext(agreement, run))
        let inner = try RecordSealer(
            recipient: provider.sealingKey.publicKey, context: Layout.innerContext(agreement, run))
        let columns = DeliveryPlan.columns(sealed: true, memberID: true)
        let name = "part-00000.csv" + (gzip ? ".gz" : "")
        let runDir = "\(dir)/bucket/\(terms.collaborationID)/\(runID)"
        try Files.makeDirectory(runDir)
        var csv = Array((columns.joined(separator: ",") + "\n").utf8)
        csv.reserveCapacity(count * 460)
        for i in 0..<count {
            let key = Base64.encode(
                payload.seal(Layout.padded(Array(String(format: "audience-%09d", i).utf8), to: Layout.maxAudienceKey)))
            let member = Base64.encode(
                inner.seal(Layout.padded(Array(String(format: "member-%09d", i).utf8), to: Layout.maxMemberID)))
            csv += Array("\(key),loyalty-gold,Gold members,\(member)\n".utf8)
        }
        let object = gzip ? try Gzip.compress(csv) : csv
        csv = []
        try Files.writeAtomically(object, to: "\(runDir)/\(name)")
        let manifest = Manifest(
            collaborationID: terms.collaborationID, runID: runID, agreementHash: Hex.encode(agreement.hash),
            createdAt: ISO8601.format(Date()), sealed: true, compression: gzip ? "gzip" : nil, columns: columns,
            records: count,
            objects: [.init(name: name, sha256: Hex.encode(SHA256.hash(object)), bytes: object.count, records: count)],
            payloadSealingKey: payload.ephemeralPublicKey.hex, memberSealingKey: inner.ephemeralPublicKey.hex)
        try Files.writeAtomically(
            SignedManifest.sign(manifest, with: coordinator.signingKey).json(), to: "\(runDir)/manifest.json")
        try Files.writeAtomically(Array(runID.utf8), to: "\(dir)/run-id")
        var source: any DeliveryDestination = LocalDirectoryDestination(directory: "\(dir)/bucket")
        if s3 {
            try S3Server.createBucket(bucket)
            let location = try S3Location(bucket: bucket, prefix: "deliveries")
            let admin = StaticCredentials(S3Server.admin)
            let writer = S3Writer(
                endpoints: S3Server.endpoints(), bucket: bucket, http: S3Server.http, credentials: admin)
            for file in [name, DeliveryPlan.manifestName] {
                let f = try FileSource(path: "\(runDir)/\(file)")
                _ = try writer.put(key: location.key(terms.collaborationID, runID, file), size: f.size) { o, b in
                    try f.read(at: o, into: b)
                }
            }
            try FileManager.default.removeItem(atPath: "\(dir)/bucket")
            let penv =
                S3Server.providerEnvironment.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: "\n") + "\n"
            try Files.writeAtomically(Array(penv.utf8), to: "\(dir)/provider.env")
            source = S3Destination(
                provider: admin, location: location, endpoints: S3Server.endpoints(), http: S3Server.http)
        }
        // The fixture opens (streamed, in process) to every record.
        let n = try Steps.providerOpen(
            agreement: agreement, identity: provider, runID: runID, source: source, output: "\(dir)/check.csv")
        #expect(n == count)
        try FileManager.default.removeItem(atPath: "\(dir)/check.csv")
    }
}
