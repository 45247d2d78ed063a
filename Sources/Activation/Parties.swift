import Foundation
import Identifiers
import RistrettoPSI

/// A party's long-term identity: its Ed25519 signing key and X25519 sealing key.
public struct PartyIdentity: Sendable {
    /// The Ed25519 key; its public half must be the `signingKey` the agreement names for the party.
    public let signingKey: SigningKey
    /// The X25519 key pair; its public half must be the `sealingKey` the agreement names for the party.
    public let sealingKey: SealingKey
    /// Pairs two keys; they are checked against the agreement when a role is made from them.
    public init(signingKey: SigningKey, sealingKey: SealingKey) {
        self.signingKey = signingKey
        self.sealingKey = sealingKey
    }
    /// A new identity, both keys fresh from libsodium's CSPRNG.
    public static func generate() -> PartyIdentity { PartyIdentity(signingKey: .generate(), sealingKey: .generate()) }
}

/// The provider (media network): blinds its audience, re-blinds the consumer's set, opens deliveries.
///
/// Does no I/O: inputs are rows and parsed messages, outputs are messages and state.
/// - SeeAlso: `Protocol/SPEC.md` §6 rounds 1, 3 and 6.
public struct Provider: Sendable {
    /// The agreement this provider runs under.
    public let agreement: VerifiedAgreement
    let identity: PartyIdentity

    /// The provider role for `identity`.
    /// - Throws: `.agreementSignatureInvalid` unless both keys are the provider's keys in `agreement`.
    public init(agreement: VerifiedAgreement, identity: PartyIdentity) throws(ActivationError) {
        guard identity.signingKey.verifyingKey == agreement.providerKey else {
            throw ActivationError(
                .agreementSignatureInvalid, "this identity is not the provider named in the agreement")
        }
        guard identity.sealingKey.publicKey == agreement.providerSealingKey else {
            throw ActivationError(
                .agreementSignatureInvalid, "this sealing key is not the provider's key in the agreement")
        }
        self.agreement = agreement
        self.identity = identity
    }

    /// Round 6: verify a delivery's manifest and objects, and open the sealed records.
    public func open(_ delivery: ReceivedDelivery) throws(ActivationError) -> [DeliveredRecord] {
        try delivery.open(agreement: agreement, provider: identity.sealingKey)
    }

    /// Round 6, streamed: verify the delivery object by object and write the opened records to
    /// `output` as ``ReceivedDelivery/plainCSV(_:)`` would, in bounded memory. The caller makes
    /// `output` visible only when this returns. Returns the number of records.
    /// - Throws: `activation.delivery.invalid`, or what the delivery's fetch or `output` throws.
    public func open(_ delivery: ReceivedDelivery, into output: any OutputSink) throws -> Int {
        try delivery.open(agreement: agreement, provider: identity.sealingKey, into: output)
    }
}

/// The consumer (retailer): runs the activation query, re-blinds the provider's set.
///
/// Does no I/O. - SeeAlso: `Protocol/SPEC.md` §6 rounds 2 and 4.
public struct Consumer: Sendable {
    /// The agreement this consumer runs under.
    public let agreement: VerifiedAgreement
    let signingKey: SigningKey

    /// The consumer role for `signingKey`.
    /// - Throws: `.agreementSignatureInvalid` unless it is the consumer's key in `agreement`.
    public init(agreement: VerifiedAgreement, signingKey: SigningKey) throws(ActivationError) {
        guard signingKey.verifyingKey == agreement.consumerKey else {
            throw ActivationError(
                .agreementSignatureInvalid, "this identity is not the consumer named in the agreement")
        }
        self.agreement = agreement
        self.signingKey = signingKey
    }
}
