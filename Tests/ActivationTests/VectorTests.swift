import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// End-to-end vectors: fixed keys, scalars and shuffles → every intermediate value and the
/// delivered rows (`Protocol/vectors/activation-e2e-v1.json`, described in `Protocol/SPEC.md` §11).
///
/// The file is regenerated only on purpose (`CLEANROOM_WRITE_VECTORS=1 swift test --filter
/// ActivationVectorTests`); normally every value is recomputed and compared with it.
@Suite("Activation end-to-end vectors")
struct ActivationVectorTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Protocol/vectors/activation-e2e-v1.json")

    struct Vector: Codable, Equatable {
        var description: String
        var seeds: [String: String]  // party → Ed25519 seed hex / X25519 secret hex
        var terms: String  // the signed bytes' JSON part
        var agreementHash: String
        var runID: String
        var scalarA: String, scalarB: String
        var pi1: [Int], sigma1: [Int], sigma2: [Int]
        var providerRows: [[String]]
        var consumerRows: [[String]]
        var providerMessages: [String]  // hash-to-group messages, first-seen order
        var providerHashed: [String]  // H(y)
        var providerBlinded: [String]  // round 1 body: H(y)·b in π1 order
        var providerReblinded: [String]  // round 4 body: ·a, same order
        var consumerMessages: [String]
        var consumerHashed: [String]
        var consumerBlinded: [String]  // round 2 body: H(x)·a in σ1 order
        var consumerReblinded: [String]  // round 3 body: ·b in σ2 order
        var messageFileSHA256: [String: String]
        var matchedRows: Int
        var deliveredCSV: String
        var manifestSHA256: String
    }

    static func seed(_ hex: String) -> [UInt8] { Hex.decode(hex)! }

    /// Runs the protocol with the vector's fixed inputs and returns the full vector it produces.
    static func compute(from v: Vector) throws -> Vector {
        func signing(_ p: String) throws -> SigningKey {
            try seed(v.seeds["\(p).ed25519"]!).withUnsafeBytes { try SigningKey(seed: $0) }
        }
        func sealing(_ p: String) throws -> SealingKey {
            try seed(v.seeds["\(p).x25519"]!).withUnsafeBytes { try SealingKey(secretBytes: $0) }
        }
        let consumerID = PartyIdentity(signingKey: try signing("consumer"), sealingKey: try sealing("consumer"))
        let providerID = PartyIdentity(signingKey: try signing("provider"), sealingKey: try sealing("provider"))
        let coordinatorID = PartyIdentity(
            signingKey: try signing("coordinator"), sealingKey: try sealing("coordinator"))
        let created = ISO8601.parse("2026-01-01T00:00:00Z")!
        let expires = ISO8601.parse("2036-01-01T00:00:00Z")!
        let terms = AgreementTerms(
            collaborationID: "0b6f3c2e-7a1d-4e5f-9c8b-2d4a6e8f0a1c", externalID: "5e1d9c7b-3a2f-4b6d-8e0c-1f2a3b4c5d6e",
            createdAt: created, expiresAt: expires,
            consumer: .init(name: "Retailer", signingKey: consumerID.signingKey.verifyingKey.hex),
            provider: .init(
                name: "Media Network", signingKey: providerID.signingKey.verifyingKey.hex,
                sealingKey: providerID.sealingKey.publicKey.hex),
            coordinator: .init(
                name: "Coordinator", signingKey: coordinatorID.signingKey.verifyingKey.hex,
                sealingKey: coordinatorID.sealingKey.publicKey.hex),
            matching: .init(identifierTypes: ["email", "phone", "maid"], defaultCountryCallingCode: "1"),
            output: .init(deliverMemberID: false, sealed: false),
            privacy: .init(minConsumerRows: 1, minMatchedRows: 1, maxRunsPerWindow: 10, windowSeconds: 3600),
            destination: .init(kind: "local", directory: "/provider-bucket"))
        var signed = SignedAgreement(terms: terms)
        try signed.sign(as: .consumer, with: consumerID.signingKey)
        try signed.sign(as: .provider, with: providerID.signingKey)
        let agreement = try signed.verified(now: created)
        var a = seed(v.scalarA)
        var b = seed(v.scalarB)
        let scalarA = try Scalar(consumingCanonicalBytes: &a)
        let scalarB = try Scalar(consumingCanonicalBytes: &b)

        let pRows = v.providerRows.enumerated().map {
            InputRow(row: $0.offset + 1, fields: $0.element.map { Array($0.utf8) })
        }
        let cRows = v.consumerRows.enumerated().map {
            InputRow(row: $0.offset + 1, fields: $0.element.map { Array($0.utf8) })
        }
        let audience = ProviderAudience(
            source: "audience.csv", rows: pRows,
            identifierColumns: [
                .init(index: 1, name: "email", type: .email), .init(index: 2, name: "phone", type: .phone),
                .init(index: 3, name: "maid", type: .mobileAdID),
            ],
            audienceKeyColumn: (0, "audience_id"))
        let query = ConsumerQuery(
            source: "customers.csv", rows: cRows,
            identifierColumns: [
                .init(index: 1, name: "email", type: .email), .init(index: 2, name: "phone", type: .phone),
            ],
            segmentID: "seg-1", segmentName: "Segment one")
        let provider = try Provider(agreement: agreement, identity: providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: consumerID.signingKey)
        let p = try provider.prepare(runID: v.runID, audience: audience, scalar: scalarB, permutation: v.pi1)
        let c = try consumer.prepare(runID: v.runID, query: query, scalar: scalarA, permutation: v.sigma1)
        let m3 = try provider.respond(to: c.forProvider, state: p.state, permutation: v.sigma2)
        let m5 = try consumer.respond(to: p.forConsumer, state: c.state)
        let coordinator = try Coordinator(agreement: agreement, identity: coordinatorID)
        let outcome = try coordinator.match(
            runID: v.runID, payload: p.forCoordinator, consumerSet: m3, providerSet: m5,
            history: RunHistory(), now: created)
        guard case .deliver(let plan, let counts) = outcome else {
            throw ActivationError(.belowThreshold, "vector run delivered nothing")
        }

        let normalizer = Normalizer(rules: agreement.rules)
        func messages(_ rows: [InputRow], _ cols: [IdentifierColumn]) throws -> [[UInt8]] {
            var seen = Set<[UInt8]>()
            var out: [[UInt8]] = []
            for r in rows {
                for c in cols where !r.fields[c.index].isEmpty {
                    let m = try normalizer.matchValue(r.fields[c.index], as: c.type).hashToGroupMessage
                    if seen.insert(m).inserted { out.append(m) }
                }
            }
            return out
        }
        let hasher = HashToGroup(collaborationID: terms.collaborationID)
        let pm = try messages(pRows, audience.identifierColumns)
        let cm = try messages(cRows, query.identifierColumns)
        func records(_ m: SignedMessage) -> [String] { (0..<m.count).map { Hex.encode(m.record($0).prefix(32)) } }
        var out = v
        out.terms = String(decoding: terms.signedBytes().dropFirst(AgreementTerms.signingPrefix.count), as: UTF8.self)
        out.agreementHash = Hex.encode(agreement.hash)
        out.providerMessages = pm.map { Hex.encode($0) }
        out.providerHashed = try pm.map { try hasher.hash($0).hex }
        out.providerBlinded = records(p.forConsumer.message)
        out.providerReblinded = records(m5.message)
        out.consumerMessages = cm.map { Hex.encode($0) }
        out.consumerHashed = try cm.map { try hasher.hash($0).hex }
        out.consumerBlinded = records(c.forProvider.message)
        out.consumerReblinded = records(m3.message)
        out.messageFileSHA256 = [
            "provider-blinded": Hex.encode(SHA256.hash(p.forConsumer.message.serialized())),
            "provider-payload": Hex.encode(SHA256.hash(p.forCoordinator.message.serialized())),
            "consumer-blinded": Hex.encode(SHA256.hash(c.forProvider.message.serialized())),
            "consumer-reblinded": Hex.encode(SHA256.hash(m3.message.serialized())),
            "provider-reblinded": Hex.encode(SHA256.hash(m5.message.serialized())),
        ]
        out.matchedRows = counts.matchedRows
        out.deliveredCSV = String(decoding: try plan.objects.flatMap { try $0.bytes() }, as: UTF8.self)
        out.manifestSHA256 = Hex.encode(plan.manifest.sha256)
        return out
    }

    static var seedVector: Vector {
        func hex32(_ tag: String) -> String { Hex.encode(SHA256.hash(Array("cleanroom vector \(tag)".utf8))) }
        func scalar(_ tag: String) -> String {
            var b = SHA256.hash(Array("cleanroom scalar \(tag)".utf8))
            b[31] &= 0x0f
            return Hex.encode(b)
        }
        return Vector(
            description:
                "Protocol v1 end to end with fixed keys, scalars and permutations; plain output, no member IDs. Permutations: new position j holds old index perm[j]. Produced by this implementation (a regression vector); its hash-to-group, blinding and signature steps are the primitives checked by the RFC vectors in rfc-ristretto255-h2g-oprf.json.",
            seeds: [
                "consumer.ed25519": hex32("consumer ed"), "consumer.x25519": hex32("consumer x"),
                "provider.ed25519": hex32("provider ed"), "provider.x25519": hex32("provider x"),
                "coordinator.ed25519": hex32("coordinator ed"), "coordinator.x25519": hex32("coordinator x"),
            ],
            terms: "", agreementHash: "", runID: "9d2c4e6a-8b1f-4a3c-9e5d-7f0b2a4c6e8d",
            scalarA: scalar("a"), scalarB: scalar("b"),
            pi1: [4, 0, 6, 2, 7, 1, 5, 3], sigma1: [2, 0, 4, 1, 3], sigma2: [3, 4, 0, 2, 1],
            providerRows: [
                ["aud-001", "alice@example.com", "", ""],
                ["aud-002", "", "(415) 555-0102", "6d92078a-8246-4ba4-ae5b-76104861e7dc"],
                ["aud-003", "carol@example.org", "+1 415 555 0103", ""],
                ["aud-004", "dave@example.net", "", "c0ffee00-1234-4abc-8def-0123456789ab"],
                ["aud-005", "erin@example.com", "", ""],
            ],
            consumerRows: [
                ["M1", "ALICE@example.com ", ""],
                ["M2", "", "415.555.0102"],
                ["M3", Hex.encode(SHA256.hash(Array("carol@example.org".utf8))), ""],
                ["M4", "frank@example.com", "+1 (415) 555-0199"],
            ],
            providerMessages: [], providerHashed: [], providerBlinded: [], providerReblinded: [],
            consumerMessages: [], consumerHashed: [], consumerBlinded: [], consumerReblinded: [],
            messageFileSHA256: [:], matchedRows: 0, deliveredCSV: "", manifestSHA256: "")
    }

    static func load() throws -> Vector { try JSONDecoder().decode(Vector.self, from: Data(contentsOf: path)) }

    @Test func replaysEveryIntermediateValue() throws {
        if ProcessInfo.processInfo.environment["CLEANROOM_WRITE_VECTORS"] == "1" {
            let v = try Self.compute(from: Self.seedVector)
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try e.encode(v).write(to: Self.path)
        }
        let stored = try Self.load()
        let recomputed = try Self.compute(from: stored)
        #expect(recomputed.agreementHash == stored.agreementHash)
        #expect(recomputed.providerMessages == stored.providerMessages)
        #expect(recomputed.providerHashed == stored.providerHashed)
        #expect(recomputed.providerBlinded == stored.providerBlinded)
        #expect(recomputed.providerReblinded == stored.providerReblinded)
        #expect(recomputed.consumerMessages == stored.consumerMessages)
        #expect(recomputed.consumerHashed == stored.consumerHashed)
        #expect(recomputed.consumerBlinded == stored.consumerBlinded)
        #expect(recomputed.consumerReblinded == stored.consumerReblinded)
        #expect(recomputed.messageFileSHA256 == stored.messageFileSHA256)
        #expect(recomputed.matchedRows == stored.matchedRows)
        #expect(recomputed.deliveredCSV == stored.deliveredCSV)
        #expect(recomputed.manifestSHA256 == stored.manifestSHA256)
        #expect(recomputed == stored)
    }

    /// The stored values obey the protocol's algebra on their own: each round is the previous one
    /// multiplied by the stated scalar and reordered by the stated permutation.
    @Test func storedValuesAreConsistent() throws {
        let v = try Self.load()
        var a = Self.seed(v.scalarA)
        var b = Self.seed(v.scalarB)
        let sa = try Scalar(consumingCanonicalBytes: &a)
        let sb = try Scalar(consumingCanonicalBytes: &b)
        let hasher = HashToGroup(collaborationID: "0b6f3c2e-7a1d-4e5f-9c8b-2d4a6e8f0a1c")
        for (m, h) in zip(v.providerMessages, v.providerHashed) { #expect(try hasher.hash(Hex.decode(m)!).hex == h) }
        for (j, i) in v.pi1.enumerated() {
            #expect(try RistrettoElement(hex: v.providerHashed[i]).multiplied(by: sb).hex == v.providerBlinded[j])
            #expect(try RistrettoElement(hex: v.providerBlinded[j]).multiplied(by: sa).hex == v.providerReblinded[j])
        }
        for (j, i) in v.sigma1.enumerated() {
            #expect(try RistrettoElement(hex: v.consumerHashed[i]).multiplied(by: sa).hex == v.consumerBlinded[j])
        }
        for (j, i) in v.sigma2.enumerated() {
            #expect(try RistrettoElement(hex: v.consumerBlinded[i]).multiplied(by: sb).hex == v.consumerReblinded[j])
        }
        // The intersection of the doubly-blinded sets, mapped to provider rows, is what was delivered.
        #expect(Set(v.providerReblinded).intersection(v.consumerReblinded).count >= v.matchedRows)
        #expect(v.deliveredCSV.split(separator: "\n").count == v.matchedRows + 1)
    }
}
