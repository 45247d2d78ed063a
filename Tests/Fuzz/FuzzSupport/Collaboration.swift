// A fixed collaboration for the message and agreement harnesses: every key, ID and time is a
// constant, so the agreement hash is the same in every process and the committed seed messages
// pass its checks (a crash input then replays exactly).
import Activation
import Foundation
import RistrettoPSI

/// The fixed collaboration of the message and agreement harnesses (see Tests/Fuzz/README.md, "Seeds").
public enum FuzzCollaboration {
    static func signingKey(_ byte: UInt8) -> SigningKey {
        let seed = [UInt8](repeating: byte, count: SigningKey.seedByteCount)
        return seed.withUnsafeBytes { try! SigningKey(seed: $0) }
    }
    static func sealingKey(_ byte: UInt8) -> SealingKey {
        let secret = [UInt8](repeating: byte, count: SealingKey.byteCount)
        return secret.withUnsafeBytes { try! SealingKey(secretBytes: $0) }
    }

    /// The consumer's identity, from constant key seeds.
    public static let consumer = PartyIdentity(signingKey: signingKey(1), sealingKey: sealingKey(11))
    /// The provider's identity, from constant key seeds.
    public static let provider = PartyIdentity(signingKey: signingKey(2), sealingKey: sealingKey(12))
    /// The coordinator's identity, from constant key seeds.
    public static let coordinator = PartyIdentity(signingKey: signingKey(3), sealingKey: sealingKey(13))
    /// The honest run's run ID.
    public static let runID = "00000000-0000-4000-8000-00000000f022"
    /// 2026-01-01 and 2100-01-01: verification at `now` never expires during a fuzzing campaign.
    public static let now = Date(timeIntervalSince1970: 1_767_225_600)
    /// The agreed maximum set size, small so mutated counts cross it.
    public static let maxSetSize = 64

    /// The terms both parties sign: email and phone, at most ``maxSetSize`` elements, sealed output
    /// with member IDs, a local destination.
    public static let terms = AgreementTerms(
        collaborationID: "0f0e0d0c-0b0a-4908-8706-050403020100", externalID: "00112233-4455-4677-8899-aabbccddeeff",
        createdAt: now, expiresAt: Date(timeIntervalSince1970: 4_102_444_800),
        consumer: .init(name: "Retailer", signingKey: consumer.signingKey.verifyingKey.hex),
        provider: .init(
            name: "Media Network", signingKey: provider.signingKey.verifyingKey.hex,
            sealingKey: provider.sealingKey.publicKey.hex),
        coordinator: .init(
            name: "Coordinator", signingKey: coordinator.signingKey.verifyingKey.hex,
            sealingKey: coordinator.sealingKey.publicKey.hex),
        matching: .init(identifierTypes: ["email", "phone"], defaultCountryCallingCode: "1", maxSetSize: maxSetSize),
        output: .init(deliverMemberID: true, sealed: true),
        privacy: .init(minConsumerRows: 1, minMatchedRows: 1, maxRunsPerWindow: 10, windowSeconds: 3600),
        destination: .init(kind: "local", directory: "/tmp/provider-bucket"))

    /// The terms signed by both parties.
    public static let signed: SignedAgreement = {
        var s = SignedAgreement(terms: terms)
        try! s.sign(as: .consumer, with: consumer.signingKey)
        try! s.sign(as: .provider, with: provider.signingKey)
        return s
    }()

    /// ``signed``, verified at ``now``.
    public static let agreement: VerifiedAgreement = try! signed.verified(now: now)

    /// One honest run of rounds 1–4 on a handful of people (Ann in both lists, by email and by
    /// phone), with each party's state.
    public struct Run: Sendable {
        /// Round 1: the provider's blinded set, its payload for the coordinator, and its state.
        public let providerPrepared: Provider.Prepared
        /// Round 2: the consumer's blinded set and its state.
        public let consumerPrepared: Consumer.Prepared
        /// Round 3: the consumer's set, re-blinded by the provider.
        public let consumerReblinded: ConsumerReblindedSet
        /// Round 4: the provider's set, re-blinded by the consumer.
        public let providerReblinded: ProviderReblindedSet

        /// The five messages as files, named by kind.
        public var files: [(name: String, bytes: [UInt8])] {
            [
                ("provider-blinded.crm", providerPrepared.forConsumer.message.serialized()),
                ("provider-payload.crm", providerPrepared.forCoordinator.message.serialized()),
                ("consumer-blinded.crm", consumerPrepared.forProvider.message.serialized()),
                ("consumer-reblinded.crm", consumerReblinded.message.serialized()),
                ("provider-reblinded.crm", providerReblinded.message.serialized()),
            ]
        }
    }

    /// The honest run, made once per process: the source of the message seeds and of the other
    /// messages each fuzzed message is checked against.
    public static let run: Run = {
        let providerRole = try! Provider(agreement: agreement, identity: provider)
        let consumerRole = try! Consumer(agreement: agreement, signingKey: consumer.signingKey)
        func row(_ n: Int, _ fields: [String]) -> InputRow { InputRow(row: n, fields: fields.map { Array($0.utf8) }) }
        let audience = ProviderAudience(
            source: "audience.csv",
            rows: [
                row(1, ["aud-1", "ann@example.com", "+14155550101"]), row(2, ["aud-2", "bob@example.com", ""]),
                row(3, ["aud-3", "cy@example.org", "+14155550103"]),
            ],
            identifierColumns: [
                IdentifierColumn(index: 1, name: "email", type: .email),
                IdentifierColumn(index: 2, name: "phone", type: .phone),
            ],
            audienceKeyColumn: (0, "audience_id"))
        let query = ConsumerQuery(
            source: "customers.csv",
            rows: [
                row(1, ["m-1", "Ann@Example.com", "(415) 555-0101"]), row(2, ["m-2", "dee@example.net", "4155550199"]),
            ],
            identifierColumns: [
                IdentifierColumn(index: 1, name: "email", type: .email),
                IdentifierColumn(index: 2, name: "phone", type: .phone),
            ],
            memberIDColumn: (0, "member_id"), segmentID: "fuzz-seed", segmentName: "Fuzz seed")
        let p = try! providerRole.prepare(runID: runID, audience: audience)
        let c = try! consumerRole.prepare(runID: runID, query: query)
        let cr = try! providerRole.respond(to: c.forProvider, state: p.state)
        let pr = try! consumerRole.respond(to: p.forConsumer, state: c.state)
        return Run(providerPrepared: p, consumerPrepared: c, consumerReblinded: cr, providerReblinded: pr)
    }()
}
