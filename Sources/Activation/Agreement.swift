import Foundation
import Identifiers
import RistrettoPSI

/// The collaboration agreement: the terms both parties sign and the coordinator enforces (the
/// "activation use case template").
///
/// Contract: ``AgreementTerms`` is plain data; ``SignedAgreement`` adds the parties' Ed25519
/// signatures over ``AgreementTerms/signedBytes()``; ``VerifiedAgreement`` can only be obtained
/// from ``SignedAgreement/verified(now:)``, so every role holds terms that are complete, signed by
/// both parties and unexpired.
/// - SeeAlso: `Protocol/SPEC.md` §8 "Agreement".
public struct AgreementTerms: Codable, Equatable, Sendable {
    /// Format tag of the JSON document.
    public static let formatName = "cleanroom-agreement"
    /// Domain-separation prefix of the signed bytes.
    static let signingPrefix = Array("CLEANROOM-V01-AGREEMENT\n".utf8)

    /// One party as the terms name it: a display name and its public keys.
    public struct Party: Codable, Equatable, Sendable {
        /// Display name, shown to the parties; no check reads it.
        public var name: String
        /// Ed25519 public key, hex.
        public var signingKey: String
        /// X25519 public key for sealed records, hex (provider and coordinator).
        public var sealingKey: String?
        /// A party entry; the keys are checked only by ``SignedAgreement/verified(now:)``.
        public init(name: String, signingKey: String, sealingKey: String? = nil) {
            self.name = name
            self.signingKey = signingKey
            self.sealingKey = sealingKey
        }
    }

    /// What is matched, and how identifiers are normalized and hashed to the group.
    public struct Matching: Codable, Equatable, Sendable {
        /// Identifier types matched (raw values of `IdentifierType`).
        public var identifierTypes: [String]
        /// Normalization rule set version.
        public var rulesVersion: Int
        /// Whether Gmail addresses drop dots and `+tag` in the local part (`NormalizationRules.gmailRule`).
        public var gmailRule: Bool
        /// Calling code prepended to national-format phone numbers; `nil` rejects such numbers.
        public var defaultCountryCallingCode: String?
        /// `rfc9380` (default) or `compatibility` (tagless `from_hash(SHA-512)`).
        public var hashToGroup: String
        /// The most elements (records) one round message may carry; a larger set is refused with
        /// `activation.message.too_large` before its body is hashed. Absent (`nil`) in agreements
        /// made before the field existed: they keep their signatures and have no agreed bound.
        public var maxSetSize: Int?
        /// Matching terms; by default rule set 1, no Gmail rule, no default calling code, `rfc9380` and
        /// no set-size bound. The values are checked by ``SignedAgreement/verified(now:)``, not here.
        public init(
            identifierTypes: [String], rulesVersion: Int = 1, gmailRule: Bool = false,
            defaultCountryCallingCode: String? = nil, hashToGroup: String = "rfc9380", maxSetSize: Int? = nil
        ) {
            self.identifierTypes = identifierTypes
            self.rulesVersion = rulesVersion
            self.gmailRule = gmailRule
            self.defaultCountryCallingCode = defaultCountryCallingCode
            self.hashToGroup = hashToGroup
            self.maxSetSize = maxSetSize
        }
    }

    /// How matched provider rows are delivered.
    public struct Output: Codable, Equatable, Sendable {
        /// Deliver the consumer's member ID with each matched provider row.
        public var deliverMemberID: Bool
        /// `csv` is the only format of protocol v1.
        public var format: String
        /// Delivery objects gzip-compressed (`part-NNNNN.csv.gz`).
        public var gzip: Bool
        /// Records sealed to the provider (default) or plain.
        public var sealed: Bool
        /// Output terms; by default CSV, uncompressed, sealed, without member IDs.
        public init(deliverMemberID: Bool = false, format: String = "csv", gzip: Bool = false, sealed: Bool = true) {
            self.deliverMemberID = deliverMemberID
            self.format = format
            self.gzip = gzip
            self.sealed = sealed
        }
    }

    /// The limits the coordinator enforces on every run.
    /// - SeeAlso: `Protocol/SPEC.md` §9.1 "Privacy guards at the coordinator".
    public struct Privacy: Codable, Equatable, Sendable {
        /// A run is refused unless the consumer sends at least this many distinct identifiers.
        public var minConsumerRows: Int
        /// k: a run delivers nothing unless at least k provider rows match.
        public var minMatchedRows: Int
        /// The most runs the coordinator accepts in the last ``windowSeconds``.
        public var maxRunsPerWindow: Int
        /// Length of the frequency-cap window, in seconds.
        public var windowSeconds: Int
        /// Near-duplicate (differencing) refusal threshold in percent; absent means 90, 0 turns it
        /// off (see `PrivacyGuards.swift`). Optional so agreements signed before it keep their bytes.
        public var maxRunSimilarityPercent: Int?
        /// Differential privacy for the consumer-visible matched count; absent means off.
        public var noise: Noise?
        /// Privacy terms; by default 100 consumer identifiers, k = 50, 4 runs per 24 hours, the default
        /// near-duplicate threshold and no noise. Checked by ``SignedAgreement/verified(now:)``, not here.
        public init(
            minConsumerRows: Int = 100, minMatchedRows: Int = 50, maxRunsPerWindow: Int = 4,
            windowSeconds: Int = 86_400,
            maxRunSimilarityPercent: Int? = nil, noise: Noise? = nil
        ) {
            self.minConsumerRows = minConsumerRows
            self.minMatchedRows = minMatchedRows
            self.maxRunsPerWindow = maxRunsPerWindow
            self.windowSeconds = windowSeconds
            self.maxRunSimilarityPercent = maxRunSimilarityPercent
            self.noise = noise
        }
    }

    /// Where the coordinator delivers: a local directory or the provider's S3 location.
    /// - SeeAlso: `Protocol/SPEC.md` §12 "Delivery to Amazon S3".
    public struct Destination: Codable, Equatable, Sendable {
        /// `local` or `s3`.
        public var kind: String
        /// The delivery directory (`local`).
        public var directory: String?
        /// The S3 bucket (`s3`).
        public var bucket: String?
        /// Key prefix inside the bucket (`s3`); absent means none.
        public var prefix: String?
        /// AWS region (`s3`); when set it takes precedence over `AWS_REGION`.
        public var region: String?
        /// The provider's IAM role the coordinator assumes for each run with ``AgreementTerms/externalID`` (`s3`).
        public var roleARN: String?
        /// A destination; the fields a `kind` needs are checked when a step builds the destination
        /// (the coordinator's delivery, the provider's open), not here.
        public init(
            kind: String, directory: String? = nil, bucket: String? = nil, prefix: String? = nil,
            region: String? = nil, roleARN: String? = nil
        ) {
            self.kind = kind
            self.directory = directory
            self.bucket = bucket
            self.prefix = prefix
            self.region = region
            self.roleARN = roleARN
        }
    }

    /// Always ``formatName``; ``SignedAgreement/init(json:)`` refuses any other.
    public var format: String = AgreementTerms.formatName
    /// Always `1`; ``SignedAgreement/init(json:)`` refuses any other.
    public var formatVersion: Int = 1
    /// The protocol the terms are for; ``SignedAgreement/verified(now:)`` refuses any other.
    public var protocolVersion: String = "\(DomainSeparation.protocolName)-\(DomainSeparation.protocolVersion)"
    /// A UUID, lowercase.
    public var collaborationID: String
    /// Generated at invitation, unique to the collaboration; the IAM trust policy's condition.
    public var externalID: String
    /// ISO 8601 UTC.
    public var createdAt: String
    /// ISO 8601 UTC; from this instant on the agreement is refused as expired.
    public var expiresAt: String
    /// The consumer, which invites and countersigns.
    public var consumer: Party
    /// The provider; `nil` until it accepts.
    public var provider: Party?
    /// The coordinator, named with both its keys; it does not sign the agreement.
    public var coordinator: Party
    /// The matching terms.
    public var matching: Matching
    /// The delivery format.
    public var output: Output
    /// The privacy limits.
    public var privacy: Privacy
    /// Where deliveries go; `nil` until the provider accepts.
    public var destination: Destination?

    /// New terms, as an invitation makes them; the dates are written to the second with
    /// ``ISO8601/format(_:)``. Nothing is checked until ``SignedAgreement/verified(now:)``.
    public init(
        collaborationID: String, externalID: String, createdAt: Date, expiresAt: Date, consumer: Party,
        provider: Party? = nil, coordinator: Party, matching: Matching, output: Output, privacy: Privacy,
        destination: Destination? = nil
    ) {
        self.collaborationID = collaborationID
        self.externalID = externalID
        self.createdAt = ISO8601.format(createdAt)
        self.expiresAt = ISO8601.format(expiresAt)
        self.consumer = consumer
        self.provider = provider
        self.coordinator = coordinator
        self.matching = matching
        self.output = output
        self.privacy = privacy
        self.destination = destination
    }

    /// The exact bytes each party signs: the prefix, then the terms as JSON with sorted keys, no
    /// insignificant whitespace and unescaped slashes.
    public func signedBytes() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, ints and bools cannot fail.
        let json = try! encoder.encode(self)
        return AgreementTerms.signingPrefix + Array(json)
    }

    /// SHA-256 of ``signedBytes()``: the agreement's identity in messages and the audit log.
    public var hash: [UInt8] { SHA256.hash(signedBytes()) }

    /// A fresh random UUID string, lowercase (collaboration, run and External IDs).
    public static func newID() -> String {
        var b = SecureRandom.bytes(16)
        b[6] = (b[6] & 0x0f) | 0x40
        b[8] = (b[8] & 0x3f) | 0x80
        return UUIDBytes.string(b)
    }
}

/// Terms plus the parties' signatures, as stored in the agreement file.
public struct SignedAgreement: Codable, Equatable, Sendable {
    /// The parties' Ed25519 signatures over ``AgreementTerms/signedBytes()``, hex; `nil` until that party signs.
    public struct Signatures: Codable, Equatable, Sendable {
        /// The consumer's signature.
        public var consumer: String?
        /// The provider's signature.
        public var provider: String?
        /// Signatures as given; they are verified only by ``SignedAgreement/verified(now:)``.
        public init(consumer: String? = nil, provider: String? = nil) {
            self.consumer = consumer
            self.provider = provider
        }
    }
    /// The terms both parties sign.
    public var terms: AgreementTerms
    /// The parties' signatures over ``terms``.
    public var signatures: Signatures

    /// Unsigned terms, as an invitation starts.
    public init(terms: AgreementTerms) {
        self.terms = terms
        self.signatures = Signatures()
    }

    /// Parses an agreement file.
    public init(json: Data) throws(ActivationError) {
        do {
            self = try JSONDecoder().decode(SignedAgreement.self, from: json)
        } catch {
            throw ActivationError(
                .agreementMalformed, "agreement is not a valid agreement document (\(Self.shortReason(error)))")
        }
        guard terms.format == AgreementTerms.formatName, terms.formatVersion == 1 else {
            throw ActivationError(.agreementMalformed, "unsupported agreement format or version")
        }
    }

    /// The file form: pretty-printed, sorted keys.
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try! encoder.encode(self)
    }

    /// Who signs with ``sign(as:with:)``: the coordinator never signs the agreement.
    public enum Signer: String, Sendable { case consumer, provider }

    /// Signs as `signer` with `key`, which must be the key the terms name for that party.
    /// Any change to the terms after signing invalidates the signature.
    public mutating func sign(as signer: Signer, with key: SigningKey) throws(ActivationError) {
        let named: String? = signer == .consumer ? terms.consumer.signingKey : terms.provider?.signingKey
        guard named == key.verifyingKey.hex else {
            throw ActivationError(
                .agreementSignatureInvalid, "the signing key is not the \(signer.rawValue) key named in the terms")
        }
        let sig = Hex.encode(key.signature(for: terms.signedBytes()))
        switch signer {
        case .consumer: signatures.consumer = sig
        case .provider: signatures.provider = sig
        }
    }

    /// Checks completeness, both signatures and expiry, and returns the verified agreement.
    public func verified(now: Date = Date()) throws(ActivationError) -> VerifiedAgreement {
        try VerifiedAgreement(self, now: now)
    }

    static func shortReason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "wrong type at '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "unreadable"
        }
    }
}

/// An agreement that is complete, signed by both parties, unexpired, and for this protocol.
public struct VerifiedAgreement: Sendable {
    /// The verified terms.
    public let terms: AgreementTerms
    /// ``AgreementTerms/hash`` of ``terms``.
    public let hash: [UInt8]
    /// The 16 bytes of ``AgreementTerms/collaborationID``.
    public let collaborationUUID: [UInt8]
    /// The consumer's Ed25519 key; its signature over the terms verified.
    public let consumerKey: VerifyingKey
    /// The provider's Ed25519 key; its signature over the terms verified.
    public let providerKey: VerifyingKey
    /// The coordinator's Ed25519 key, as the terms name it.
    public let coordinatorKey: VerifyingKey
    /// The provider's X25519 key, as the terms name it.
    public let providerSealingKey: SealingPublicKey
    /// The coordinator's X25519 key, as the terms name it.
    public let coordinatorSealingKey: SealingPublicKey
    /// The identifier types to match, parsed; never empty.
    public let identifierTypes: [IdentifierType]
    /// The normalization rules every prepare under this agreement applies.
    public let rules: NormalizationRules
    /// The hash-to-group the terms select.
    public let hasher: HashToGroupChoice

    init(_ signed: SignedAgreement, now: Date) throws(ActivationError) {
        let t = signed.terms
        guard t.protocolVersion == "\(DomainSeparation.protocolName)-\(DomainSeparation.protocolVersion)" else {
            throw ActivationError(.agreementMalformed, "agreement is for protocol \(t.protocolVersion)")
        }
        guard let collab = UUIDBytes.parse(t.collaborationID) else {
            throw ActivationError(.agreementMalformed, "collaborationID is not a UUID")
        }
        guard UUIDBytes.parse(t.externalID) != nil else {
            throw ActivationError(.agreementMalformed, "externalID is not a UUID")
        }
        guard let provider = t.provider, t.destination != nil else {
            throw ActivationError(
                .agreementIncomplete, "the provider has not accepted (no provider keys or destination)")
        }
        guard let consumerSig = signed.signatures.consumer, let providerSig = signed.signatures.provider else {
            throw ActivationError(
                .agreementUnsigned, "the agreement must be signed by both the consumer and the provider")
        }
        func key(_ hex: String, _ who: String) throws(ActivationError) -> VerifyingKey {
            do { return try VerifyingKey(hex: hex) } catch {
                throw ActivationError(.agreementMalformed, "\(who).signingKey is not a valid Ed25519 key")
            }
        }
        func sealing(_ hex: String?, _ who: String) throws(ActivationError) -> SealingPublicKey {
            guard let hex else { throw ActivationError(.agreementIncomplete, "\(who).sealingKey is missing") }
            do { return try SealingPublicKey(hex: hex) } catch {
                throw ActivationError(.agreementMalformed, "\(who).sealingKey is not a valid X25519 key")
            }
        }
        consumerKey = try key(t.consumer.signingKey, "consumer")
        providerKey = try key(provider.signingKey, "provider")
        coordinatorKey = try key(t.coordinator.signingKey, "coordinator")
        providerSealingKey = try sealing(provider.sealingKey, "provider")
        coordinatorSealingKey = try sealing(t.coordinator.sealingKey, "coordinator")
        let bytes = t.signedBytes()
        guard let cs = Hex.decode(consumerSig), consumerKey.isValidSignature(cs, for: bytes) else {
            throw ActivationError(
                .agreementSignatureInvalid, "the consumer's signature does not verify over these terms")
        }
        guard let ps = Hex.decode(providerSig), providerKey.isValidSignature(ps, for: bytes) else {
            throw ActivationError(
                .agreementSignatureInvalid, "the provider's signature does not verify over these terms")
        }
        guard let expiry = ISO8601.parse(t.expiresAt) else {
            throw ActivationError(.agreementMalformed, "expiresAt is not an ISO 8601 UTC time")
        }
        guard now < expiry else { throw ActivationError(.agreementExpired, "the agreement expired at \(t.expiresAt)") }
        var types: [IdentifierType] = []
        for raw in t.matching.identifierTypes {
            guard let ty = IdentifierType(rawValue: raw) else {
                throw ActivationError(.agreementMalformed, "unknown identifier type '\(raw)'")
            }
            types.append(ty)
        }
        guard !types.isEmpty else { throw ActivationError(.agreementMalformed, "no identifier types to match") }
        do {
            rules = try NormalizationRules(
                version: t.matching.rulesVersion, gmailRule: t.matching.gmailRule,
                defaultCountryCallingCode: t.matching.defaultCountryCallingCode)
        } catch {
            throw ActivationError(.agreementMalformed, "normalization rules: \(error)")
        }
        switch t.matching.hashToGroup {
        case "rfc9380": hasher = .rfc9380(HashToGroup(collaborationID: t.collaborationID))
        case "compatibility": hasher = .compatibility
        default: throw ActivationError(.agreementMalformed, "hashToGroup must be rfc9380 or compatibility")
        }
        if let max = t.matching.maxSetSize, max < 1 {
            throw ActivationError(.agreementMalformed, "matching.maxSetSize must be at least 1")
        }
        guard t.output.format == "csv" else {
            throw ActivationError(.agreementMalformed, "output format must be csv (optionally gzip-compressed)")
        }
        guard t.privacy.minMatchedRows >= 1, t.privacy.minConsumerRows >= 1, t.privacy.maxRunsPerWindow >= 1,
            t.privacy.windowSeconds >= 1
        else {
            throw ActivationError(.agreementMalformed, "privacy limits must be at least 1")
        }
        try PrivacyGuards.validate(t.privacy)
        terms = t
        hash = t.hash
        collaborationUUID = collab
        identifierTypes = types
    }
}

/// Which hash-to-group the agreement selected.
public enum HashToGroupChoice: Sendable {
    case rfc9380(HashToGroup)
    case compatibility

    func hash(_ messages: [[UInt8]]) throws(CryptoError) -> ElementBatch {
        switch self {
        case .rfc9380(let h): return try ElementBatch.hashing(messages, with: h)
        case .compatibility: return try ElementBatch.compatibilityHashing(messages)
        }
    }
}

/// UUID text ↔ 16 bytes, lowercase canonical form only (collaboration, run and External IDs).
public enum UUIDBytes {
    /// The 16 bytes of a run ID, which every step checks before using it (it names paths, S3 keys
    /// and seal contexts).
    /// - Throws: `activation.invalid_input` when it is not a lowercase 8-4-4-4-12 UUID.
    public static func runID(_ s: String) throws(ActivationError) -> [UInt8] {
        guard let bytes = parse(s) else { throw ActivationError(.invalidInput, "run ID is not a lowercase UUID") }
        return bytes
    }

    /// The 16 bytes of a lowercase 8-4-4-4-12 UUID; `nil` for anything else, uppercase included.
    public static func parse(_ s: String) -> [UInt8]? {
        let u = Array(s.utf8)
        guard u.count == 36, u[8] == 45, u[13] == 45, u[18] == 45, u[23] == 45 else { return nil }
        let hex = u.enumerated().filter { ![8, 13, 18, 23].contains($0.offset) }.map(\.element)
        guard hex.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else { return nil }
        return Hex.decode(String(decoding: hex, as: UTF8.self))
    }

    /// The lowercase 8-4-4-4-12 form of `b`.
    /// - Precondition: `b` is 16 bytes (callers pass fixed-size header fields, or ``parse(_:)``'s result).
    public static func string(_ b: [UInt8]) -> String {
        precondition(b.count == 16, "a UUID is 16 bytes")
        let h = Array(Hex.encode(b))
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-"
            + String(h[20..<32])
    }
}

/// ISO 8601 UTC timestamps with second precision, the only time format in agreements and manifests.
///
/// - SeeAlso: ``UTCTimestamp`` (RFC 3339 §5.6, without ICU), `Protocol/SPEC.md` §"Agreement".
public enum ISO8601 {
    /// `YYYY-MM-DDTHH:MM:SSZ`, truncated to the second (``UTCTimestamp/format(_:)``).
    public static func format(_ date: Date) -> String { UTCTimestamp.format(date) }
    /// The instant `s` names, or `nil` when it is not an RFC 3339 `date-time` (``UTCTimestamp/parse(_:)``).
    public static func parse(_ s: String) -> Date? { UTCTimestamp.parse(s) }
}
