import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// Round 6 refuses a delivery whose manifest does not hold before any object is read (SPEC §6
/// round 6, Protocol/BAD_INPUT.md "Deliveries"): one case per rule, each with the message that
/// names it, `activation.delivery_invalid`, and nothing written to the output.
@Suite("Provider open, manifest rules")
struct DeliveryManifestTests {
    /// How a case changes the delivery: the manifest as a JSON object, and who signs it.
    enum Signer: Sendable { case coordinator, provider, keepOriginal, flipSignature }
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let signer: Signer
        let edit: @Sendable (inout [String: Any]) -> Void
        let reason: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "signature bit flipped", signer: .flipSignature, edit: { _ in },
            reason: "manifest signature does not verify with the coordinator's key"),
        Case(
            name: "signed by the provider, not the coordinator", signer: .provider, edit: { _ in },
            reason: "manifest signature does not verify with the coordinator's key"),
        Case(
            name: "record count changed after signing", signer: .keepOriginal,
            edit: { $0["records"] = ($0["records"] as! Int) - 1 },
            reason: "manifest signature does not verify with the coordinator's key"),
        Case(
            name: "object hash changed after signing", signer: .keepOriginal,
            edit: { m in
                var o = m["objects"] as! [[String: Any]]
                o[0]["sha256"] = String(repeating: "0", count: 64)
                m["objects"] = o
            },
            reason: "manifest signature does not verify with the coordinator's key"),
        Case(
            name: "unknown compression", signer: .coordinator, edit: { $0["compression"] = "zstd" },
            reason: "manifest names an unknown compression"),
        Case(
            name: "another format", signer: .coordinator, edit: { $0["format"] = "other-delivery" },
            reason: "manifest belongs to another collaboration or agreement"),
        Case(
            name: "another version", signer: .coordinator, edit: { $0["version"] = 2 },
            reason: "manifest belongs to another collaboration or agreement"),
        Case(
            name: "another collaboration", signer: .coordinator,
            edit: { $0["collaborationID"] = UUID().uuidString.lowercased() },
            reason: "manifest belongs to another collaboration or agreement"),
        Case(
            name: "another agreement hash", signer: .coordinator,
            edit: { $0["agreementHash"] = String(repeating: "ab", count: 32) },
            reason: "manifest belongs to another collaboration or agreement"),
        Case(
            name: "run ID not a UUID", signer: .coordinator, edit: { $0["runID"] = "run-1" },
            reason: "manifest run ID is not a UUID"),
        Case(
            name: "payload sealing key missing", signer: .coordinator,
            edit: { $0.removeValue(forKey: "payloadSealingKey") },
            reason: "manifest sealing key missing or invalid"),
        Case(
            name: "payload sealing key not hex", signer: .coordinator, edit: { $0["payloadSealingKey"] = "zz" },
            reason: "manifest sealing key missing or invalid"),
        Case(
            name: "member sealing key missing", signer: .coordinator,
            edit: { $0.removeValue(forKey: "memberSealingKey") },
            reason: "manifest sealing key missing or invalid"),
        // The agreement of these cases: sealed, uncompressed, member IDs delivered. A manifest the
        // coordinator signed in another form is refused all the same.
        Case(
            name: "plain, where the agreement says sealed", signer: .coordinator, edit: { $0["sealed"] = false },
            reason: terms(sealed: false, compression: nil, columns: sealedColumns)),
        Case(
            name: "gzip, where the agreement says uncompressed", signer: .coordinator,
            edit: { $0["compression"] = "gzip" },
            reason: terms(sealed: true, compression: "gzip", columns: sealedColumns)),
        Case(
            name: "no member IDs, where the agreement delivers them", signer: .coordinator,
            edit: { $0["columns"] = Array(sealedColumns.dropLast()) },
            reason: terms(sealed: true, compression: nil, columns: Array(sealedColumns.dropLast()))),
        Case(
            name: "a plain audience key column in a sealed delivery", signer: .coordinator,
            edit: { $0["columns"] = ["audience_key"] + sealedColumns.dropFirst() },
            reason: terms(sealed: true, compression: nil, columns: ["audience_key"] + sealedColumns.dropFirst())),
        Case(
            name: "an object the delivery does not hold", signer: .coordinator,
            edit: { m in
                var o = m["objects"] as! [[String: Any]]
                o.insert(
                    ["name": "part-99999.csv", "sha256": String(repeating: "0", count: 64), "bytes": 10, "records": 1],
                    at: 0)
                m["objects"] = o
                m["records"] = (m["records"] as! Int) + 1
            },
            reason: "object part-99999.csv is missing"),
    ]

    static let sealedColumns = ["sealed_audience_key", "segment_id", "segment_name", "sealed_member_id"]

    static func terms(sealed: Bool, compression: String?, columns: [String]) -> String {
        "manifest's output (sealed \(sealed), compression \(compression ?? "none"), columns "
            + "\(columns.joined(separator: ","))) is not the agreement's output terms"
    }

    /// A sealed delivery with member IDs, its manifest re-signed after `edit` (or not).
    static func edited(_ c: Case) throws -> (Fixture, ReceivedDelivery) {
        let (f, plan) = try DeliveryOpenTests.delivered(memberIDs: true, sealed: true, gzip: false)
        let original = plan.manifest
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var object = try JSONSerialization.jsonObject(with: try encoder.encode(original.manifest)) as! [String: Any]
        c.edit(&object)
        let manifest = try JSONDecoder().decode(Manifest.self, from: try JSONSerialization.data(withJSONObject: object))
        let signed: SignedManifest
        switch c.signer {
        case .coordinator: signed = SignedManifest.sign(manifest, with: f.coordinatorID.signingKey)
        case .provider: signed = SignedManifest.sign(manifest, with: f.providerID.signingKey)
        case .keepOriginal: signed = SignedManifest(manifest: manifest, signature: original.signature)
        case .flipSignature:
            var sig = Array(original.signature)
            sig[10] = sig[10] == "0" ? "1" : "0"
            signed = SignedManifest(manifest: manifest, signature: String(sig))
        }
        return (f, ReceivedDelivery(manifestBytes: signed.json(), objects: try DeliveryOpenTests.objects(plan)))
    }

    @Test(arguments: cases)
    func aManifestThatDoesNotHoldIsRefusedBeforeAnyRecord(_ c: Case) throws {
        let (f, delivery) = try Self.edited(c)
        let out = BytesOutput()
        do {
            _ = try Provider(agreement: try f.agreement(), identity: f.providerID).open(delivery, into: out)
            Issue.record("\(c.name): the delivery was opened")
        } catch let e as ActivationError {
            #expect(e.code == .deliveryInvalid)
            #expect(e.reason == c.reason)
        }
        #expect(out.bytes.isEmpty, "nothing was written")
    }

    /// The unedited manifest, re-signed by the coordinator, opens: the cases above fail on their
    /// own edit, not on the re-signing.
    @Test func theReSignedOriginalOpens() throws {
        let (f, delivery) = try Self.edited(Case(name: "unchanged", signer: .coordinator, edit: { _ in }, reason: ""))
        let out = BytesOutput()
        let n = try Provider(agreement: try f.agreement(), identity: f.providerID).open(delivery, into: out)
        #expect(n == People.expectedAudienceKeys.count)
    }

    /// A manifest read from one run's path but made for another run of the same collaboration and
    /// agreement (the coordinator signed it; someone with write access copied it there) is
    /// refused, naming both runs (run IDs are lowercase UUIDs, compared exactly); read from its own
    /// path it opens.
    @Test func aManifestForAnotherRunIsRefused() throws {
        let (f, original) = try Self.edited(Case(name: "unchanged", signer: .coordinator, edit: { _ in }, reason: ""))
        let agreement = try f.agreement()
        let made = try ReceivedDelivery.manifest(original.manifestBytes, agreement: agreement).runID
        var elsewhere = original
        let other = UUID().uuidString.lowercased()
        elsewhere.expectedRunID = other
        #expect(
            DeliveryOpenTests.openError(f, elsewhere)
                == "manifest is for run \(made), not for run \(other) whose path it was read from")
        var own = original
        var shouted = original
        shouted.expectedRunID = made.uppercased()
        #expect(DeliveryOpenTests.openError(f, shouted) != nil, "another spelling is another path")
        own.expectedRunID = made
        let out = BytesOutput()
        #expect(try Provider(agreement: agreement, identity: f.providerID).open(own, into: out) > 0)
    }

    /// Bytes that are not a signed manifest at all.
    @Test(arguments: ["", "{", "[]", "{\"manifest\":{},\"signature\":\"00\"}"])
    func bytesThatAreNotAManifestAreRefused(_ text: String) throws {
        let (f, plan) = try DeliveryOpenTests.delivered(memberIDs: false, sealed: true, gzip: false)
        let delivery = ReceivedDelivery(manifestBytes: Array(text.utf8), objects: try DeliveryOpenTests.objects(plan))
        #expect(DeliveryOpenTests.openError(f, delivery) == "manifest.json is not a delivery manifest")
    }

    /// A total that is not the sum of the objects' counts (signed as such) is refused after the
    /// objects, naming both counts.
    @Test func aTotalOtherThanTheObjectsSumIsRefused() throws {
        let (f, delivery) = try Self.edited(
            Case(name: "total", signer: .coordinator, edit: { $0["records"] = ($0["records"] as! Int) + 1 }, reason: "")
        )
        let n = People.expectedAudienceKeys.count
        #expect(DeliveryOpenTests.openError(f, delivery) == "delivery holds \(n) records, the manifest says \(n + 1)")
    }
}
