import Foundation
import RistrettoPSI
import Identifiers

/// A party's long-term identity: its Ed25519 signing key and X25519 sealing key.
public struct PartyIdentity: Sendable {
    public let signingKey: SigningKey
    public let sealingKey: SealingKey
    public init(signingKey: SigningKey, sealingKey: SealingKey) { self.signingKey = signingKey; self.sealingKey = sealingKey }
    public static func generate() -> PartyIdentity { PartyIdentity(signingKey: .generate(), sealingKey: .generate()) }
}

/// The provider (media network): blinds its audience, re-blinds the consumer's set, opens deliveries.
///
/// Does no I/O: inputs are rows and parsed messages, outputs are messages and state.
/// - SeeAlso: `Protocol/SPEC.md` §6 rounds 1, 3 and 6.
public struct Provider: Sendable {
    public let agreement: VerifiedAgreement
    let identity: PartyIdentity

    public init(agreement: VerifiedAgreement, identity: PartyIdentity) throws(ActivationError) {
        guard identity.signingKey.verifyingKey == agreement.providerKey else {
            throw ActivationError(.agreementSignatureInvalid, "this identity is not the provider named in the agreement")
        }
        guard identity.sealingKey.publicKey == agreement.providerSealingKey else {
            throw ActivationError(.agreementSignatureInvalid, "this sealing key is not the provider's key in the agreement")
        }
        self.agreement = agreement
        self.identity = identity
    }

    /// Round 3: strictly decode the consumer's set, refuse duplicates, re-blind with `b`, shuffle
    /// again (sealed attributes move with their element).
    ///
    /// Takes the set by value: the answer is built in the verified input's buffer (each record's
    /// element is replaced, then the records are permuted in place), so a round over a large set
    /// holds one copy of it, not two (SPEC §9 "Bounded memory").
    public func respond(to consumerSet: consuming ConsumerBlindedSet, state: RunState, permutation: [Int]? = nil) throws(ActivationError) -> ConsumerReblindedSet {
        var m = (consume consumerSet).message
        guard m.runUUID == state.runUUID else { throw ActivationError(.messageWrongRun, "consumer set belongs to another run than this state") }
        let source = "consumer-blinded"
        let reblinded = try Layout.reblinded(m, by: state.scalar, source: source)
        let perm = permutation ?? Shuffle.permutation(m.count)
        precondition(perm.count == m.count, "permutation size must equal the set size")
        let recordSize = m.recordSize
        var body = m.takeBody()
        body.withUnsafeMutableBytes { dst in
            reblinded.withUnsafeBytes { src in
                for i in 0..<perm.count {
                    (dst.baseAddress! + i * recordSize).copyMemory(from: src.baseAddress! + i * Layout.elementSize, byteCount: Layout.elementSize)
                }
            }
            Layout.permuteRecords(dst, recordSize: recordSize, perm)
        }
        let out = SignedMessage(kind: .consumerReblinded, agreement: agreement, runUUID: m.runUUID, recordSize: recordSize,
                                body: body, reference: m.bodyHash, sealingKey: try? SealingPublicKey(bytes: m.sealingKey),
                                metadata: m.metadata, signer: identity.signingKey)
        return ConsumerReblindedSet(out)
    }

    /// Round 6: verify a delivery's manifest and objects, and open the sealed records.
    public func open(_ delivery: ReceivedDelivery) throws(ActivationError) -> [DeliveredRecord] {
        try delivery.open(agreement: agreement, provider: identity.sealingKey)
    }
}

/// The consumer (retailer): runs the activation query, re-blinds the provider's set.
///
/// Does no I/O. - SeeAlso: `Protocol/SPEC.md` §6 rounds 2 and 4.
public struct Consumer: Sendable {
    public let agreement: VerifiedAgreement
    let signingKey: SigningKey

    public init(agreement: VerifiedAgreement, signingKey: SigningKey) throws(ActivationError) {
        guard signingKey.verifyingKey == agreement.consumerKey else {
            throw ActivationError(.agreementSignatureInvalid, "this identity is not the consumer named in the agreement")
        }
        self.agreement = agreement
        self.signingKey = signingKey
    }

    /// Round 4: strictly decode the provider's set, refuse duplicates, re-blind with `a`, keep order.
    public func respond(to providerSet: ProviderBlindedSet, state: RunState) throws(ActivationError) -> ProviderReblindedSet {
        let m = providerSet.message
        guard m.runUUID == state.runUUID else { throw ActivationError(.messageWrongRun, "provider set belongs to another run than this state") }
        let source = "provider-blinded"
        let reblinded = try Layout.reblinded(m, by: state.scalar, source: source)
        let out = SignedMessage(kind: .providerReblinded, agreement: agreement, runUUID: m.runUUID, recordSize: Layout.elementSize,
                                body: reblinded.withUnsafeBytes { Array($0) }, reference: m.bodyHash, signer: signingKey)
        return ProviderReblindedSet(out)
    }
}

/// Returns memory freed by the many small allocations of a round's early stages (rows, normalized
/// messages) to the system. Why: glibc keeps freed small chunks resident in its heap, and the
/// round's next large buffer (the message body) is a fresh mapping that cannot reuse them, so
/// without this the peak is the sum of both stages, not the larger one (SPEC §9 "Bounded memory").
enum FreedMemory {
    /// glibc's `malloc_trim` (in `<malloc.h>`, which the Glibc module does not export), looked up
    /// once; absent on other C libraries, where this is a no-op.
    private static let trim: (@convention(c) (Int) -> Int32)? = {
        guard let handle = dlopen(nil, RTLD_NOW), let f = dlsym(handle, "malloc_trim") else { return nil }
        return unsafeBitCast(f, to: (@convention(c) (Int) -> Int32).self)
    }()

    static func release() { _ = trim?(0) }
}

/// Uniform permutations from libsodium's CSPRNG.
enum Shuffle {
    static func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, SecureRandom.index(below: i + 1)) } }
        return p
    }
}
