import Activation
import Foundation
import RistrettoPSI
import Workflow

/// The three parties of a benchmark collaboration and their agreement, made under one directory:
/// key files in `keys-<role>/identity.key` (the paths the child `cleanroom` processes are given),
/// the agreement signed by both parties in `agreement.json`, a local destination in
/// `provider-bucket`. Shared by the end-to-end scenario and `coordinator-scale`, which differ only
/// in the label and the output terms.
struct BenchParties {
    let consumer: PartyIdentity
    let provider: PartyIdentity
    let coordinator: PartyIdentity
    let agreementPath: String
    let agreement: VerifiedAgreement

    /// - Parameters:
    ///   - dir: the directory the key files, `agreement.json` and `provider-bucket` go under.
    ///   - label: the parties are named "`label` consumer", "`label` provider", "`label` coordinator".
    ///   - output: what is delivered (sealed payloads, member IDs).
    ///   - days: how long the agreement is valid.
    /// - Throws: the error of generating or loading a key file, signing, writing the agreement, or
    ///   loading it back.
    init(dir: String, label: String, output: AgreementTerms.Output, days: Double) throws {
        for role in [Role.consumer, .provider, .coordinator] {
            let name = KeyFiles.roleName(role)
            _ = try KeyFiles.generate(role: role, name: "\(label) \(name)", directory: "\(dir)/keys-\(name)")
        }
        consumer = try KeyFiles.load("\(dir)/keys-consumer/identity.key", role: .consumer).identity
        provider = try KeyFiles.load("\(dir)/keys-provider/identity.key", role: .provider).identity
        coordinator = try KeyFiles.load("\(dir)/keys-coordinator/identity.key", role: .coordinator).identity
        let terms = AgreementTerms(
            collaborationID: AgreementTerms.newID(), externalID: AgreementTerms.newID(),
            createdAt: Date(), expiresAt: Date().addingTimeInterval(days * 86_400),
            consumer: .init(name: "\(label) consumer", signingKey: consumer.signingKey.verifyingKey.hex),
            provider: .init(
                name: "\(label) provider", signingKey: provider.signingKey.verifyingKey.hex,
                sealingKey: provider.sealingKey.publicKey.hex),
            coordinator: .init(
                name: "\(label) coordinator", signingKey: coordinator.signingKey.verifyingKey.hex,
                sealingKey: coordinator.sealingKey.publicKey.hex),
            matching: .init(identifierTypes: ["email"]),
            output: output,
            privacy: .init(
                minConsumerRows: 1, minMatchedRows: 1, maxRunsPerWindow: 1_000_000, windowSeconds: 60,
                maxRunSimilarityPercent: 0),  // repeated runs of the same lists are the point here
            destination: .init(kind: "local", directory: "\(dir)/provider-bucket"))
        var signed = SignedAgreement(terms: terms)
        try signed.sign(as: .consumer, with: consumer.signingKey)
        try signed.sign(as: .provider, with: provider.signingKey)
        agreementPath = "\(dir)/agreement.json"
        try Files.writeAtomically(Array(signed.json()), to: agreementPath)
        agreement = try Steps.loadAgreement(agreementPath)
    }
}
