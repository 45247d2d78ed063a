import Foundation
import RistrettoPSI

/// The kinds of round message, in protocol order.
/// - SeeAlso: `Protocol/SPEC.md` §6 "Rounds" and §7 "Message layout".
public enum MessageKind: UInt8, Sendable, CaseIterable {
    /// Round 1, provider → consumer: `H(y)·b`, shuffled.
    case providerBlinded = 1
    /// Round 1, provider → coordinator: per element of round 1 (same order) its provider row and sealed payload.
    case providerPayload = 2
    /// Round 2, consumer → provider: `H(x)·a`, shuffled, with doubly sealed attributes if delivered.
    case consumerBlinded = 3
    /// Round 3, provider → coordinator: `H(x)·a·b`, shuffled again, attributes carried along.
    case consumerReblinded = 4
    /// Round 4, consumer → coordinator: `H(y)·b·a`, in round 1's order.
    case providerReblinded = 5

    var sender: Role {
        switch self {
        case .providerBlinded, .providerPayload, .consumerReblinded: return .provider
        case .consumerBlinded, .providerReblinded: return .consumer
        }
    }
    var name: String {
        switch self {
        case .providerBlinded: return "provider-blinded"
        case .providerPayload: return "provider-payload"
        case .consumerBlinded: return "consumer-blinded"
        case .consumerReblinded: return "consumer-reblinded"
        case .providerReblinded: return "provider-reblinded"
        }
    }
}

/// The three roles.
public enum Role: UInt8, Sendable {
    case consumer = 1
    case provider = 2
    case coordinator = 3
}

/// A signed round message: a fixed header, fixed-size records, an Ed25519 signature.
///
/// Layout (all integers big-endian):
/// ```
/// magic "CLRM" | version u16 | kind u8 | sender u8 | collaboration UUID 16 | run UUID 16 |
/// agreement hash 32 | count u64 | record size u32 | body SHA-256 32 | reference SHA-256 32 |
/// sealing ephemeral key 32 | metadata length u32 | metadata (JSON) |
/// body: count × record size | signature 64 over ("CLEANROOM-V01-MSG" ‖ header)
/// ```
/// The header includes the body's SHA-256, so the signature covers the body; a reader verifies the
/// signature, then streams the body through SHA-256 before trusting any record.
/// - SeeAlso: `Protocol/SPEC.md` §7 "Message layout".
public struct SignedMessage: Sendable {
    static let magic = Array("CLRM".utf8)
    static let version: UInt16 = 1
    static let signaturePrefix = Array("CLEANROOM-V01-MSG".utf8)
    static let fixedHeaderSize = 4 + 2 + 1 + 1 + 16 + 16 + 32 + 8 + 4 + 32 + 32 + 32 + 4
    static let maxMetadata = 64 * 1024

    /// Which round message this is.
    public let kind: MessageKind
    /// The role that signed it, fixed by `kind`.
    public let sender: Role
    /// The collaboration's ID (16 UUID bytes).
    public let collaborationUUID: [UInt8]
    /// The run's ID (16 UUID bytes).
    public let runUUID: [UInt8]
    /// SHA-256 of the agreement's signed bytes (SPEC §8).
    public let agreementHash: [UInt8]
    /// Number of records in the body.
    public let count: Int
    /// Bytes per record, fixed by kind and agreement.
    public let recordSize: Int
    /// SHA-256 of the body; in the signed header, so the signature covers the body.
    public let bodyHash: [UInt8]
    /// Body hash of the message this one answers or accompanies (zeros when none).
    public let reference: [UInt8]
    /// Ephemeral X25519 key of the records' seal (zeros when none).
    public let sealingKey: [UInt8]
    /// Header metadata, a JSON object of strings (segment ID and name, consumer rows, inner
    /// sealing key).
    public let metadata: [String: String]
    /// The records back to back: `count × recordSize` bytes.
    public private(set) var body: [UInt8]
    let headerBytes: [UInt8]
    let signature: [UInt8]

    /// Builds and signs a message.
    init(
        kind: MessageKind, agreement: VerifiedAgreement, runUUID: [UInt8], recordSize: Int, body: [UInt8],
        reference: [UInt8]? = nil, sealingKey: SealingPublicKey? = nil, metadata: [String: String] = [:],
        signer: SigningKey
    ) {
        precondition(recordSize > 0 && body.count % recordSize == 0)
        self.kind = kind
        self.sender = kind.sender
        self.collaborationUUID = agreement.collaborationUUID
        self.runUUID = runUUID
        self.agreementHash = agreement.hash
        self.count = body.count / recordSize
        self.recordSize = recordSize
        self.bodyHash = SHA256.hash(body)
        self.reference = reference ?? [UInt8](repeating: 0, count: 32)
        self.sealingKey = sealingKey?.bytes ?? [UInt8](repeating: 0, count: 32)
        self.metadata = metadata
        self.body = body
        let h = MessageHeader.encode(
            kind: kind, collaborationUUID: collaborationUUID, runUUID: runUUID, agreementHash: agreementHash,
            count: count, recordSize: recordSize, bodyHash: bodyHash, reference: self.reference,
            sealingKey: self.sealingKey, metadataJSON: SignedMessage.encodeMetadata(metadata))
        headerBytes = h
        signature = signer.signature(for: SignedMessage.signaturePrefix + h)
    }

    /// The file bytes.
    public func serialized() -> [UInt8] { headerBytes + body + signature }

    /// The file bytes in three pieces (header, body, signature), handed to `sink` in order, so a
    /// writer can stream a message to disk without first concatenating a copy of its body.
    public func writeParts<E: Error>(_ sink: (UnsafeRawBufferPointer) throws(E) -> Void) throws(E) {
        for part in [headerBytes, body, signature] {
            let r: Result<Void, E> = part.withUnsafeBytes { b in Result { () throws(E) in try sink(b) } }
            try r.get()
        }
    }

    /// Parses and fully verifies a message: layout, version, kind, collaboration, agreement,
    /// signature by the expected sender, body checksum and count.
    /// - Throws: ``ActivationError`` with the `activation.message.*` code of the first rule broken.
    ///
    /// Takes ownership of `data` so the body can stay in the same buffer (header and signature are
    /// cut off in place): reading a message costs one copy of the file, not two.
    public static func parse(
        _ data: consuming [UInt8], expecting kind: MessageKind, agreement: VerifiedAgreement,
        run: [UInt8]? = nil, source: String
    ) throws(ActivationError) -> SignedMessage {
        // The header is parsed from its own copy of the first bytes (≤ 64 KiB + fixed fields), so
        // the body stays uniquely owned and is trimmed in place below.
        let h = try MessageHeader.parse(
            prefix: Array(data[0..<min(data.count, fixedHeaderSize + maxMetadata)]), fileSize: data.count,
            expecting: kind, agreement: agreement, run: run, source: source)
        let sig = Array(data[(data.count - 64)...])
        try h.verify(signature: sig, agreement: agreement, source: source)
        data.removeLast(64)
        data.removeFirst(h.bytes.count)
        guard SHA256.hash(data) == h.bodyHash else {
            throw ActivationError(.messageChecksumMismatch, "\(source): body SHA-256 does not match the signed header")
        }
        return SignedMessage(
            kind: h.kind, sender: h.sender, collaborationUUID: h.collaborationUUID, runUUID: h.runUUID,
            agreementHash: h.agreementHash, count: h.count, recordSize: h.recordSize, bodyHash: h.bodyHash,
            reference: h.reference, sealingKey: h.sealingKey, metadata: h.metadata, body: data,
            headerBytes: h.bytes, signature: sig)
    }
    private init(
        kind: MessageKind, sender: Role, collaborationUUID: [UInt8], runUUID: [UInt8], agreementHash: [UInt8],
        count: Int, recordSize: Int, bodyHash: [UInt8], reference: [UInt8], sealingKey: [UInt8],
        metadata: [String: String], body: [UInt8], headerBytes: [UInt8], signature: [UInt8]
    ) {
        self.kind = kind
        self.sender = sender
        self.collaborationUUID = collaborationUUID
        self.runUUID = runUUID
        self.agreementHash = agreementHash
        self.count = count
        self.recordSize = recordSize
        self.bodyHash = bodyHash
        self.reference = reference
        self.sealingKey = sealingKey
        self.metadata = metadata
        self.body = body
        self.headerBytes = headerBytes
        self.signature = signature
    }

    static func encodeMetadata(_ m: [String: String]) -> [UInt8] {
        guard !m.isEmpty else { return [] }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return Array(try! e.encode(m))
    }

    /// Record `i` of the body.
    func record(_ i: Int) -> ArraySlice<UInt8> { body[(i * recordSize)..<((i + 1) * recordSize)] }
}

/// Big-endian integer encoding.
enum BE {
    static func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func u32(_ v: UInt32) -> [UInt8] { (0..<4).reversed().map { UInt8((v >> (8 * UInt32($0))) & 0xff) } }
    static func u64(_ v: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8((v >> (8 * UInt64($0))) & 0xff) } }
    static func read64<C: Collection>(_ b: C) -> UInt64 where C.Element == UInt8 {
        b.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Sequential reader over a byte array whose length the caller has already checked.
struct ByteReader {
    let data: [UInt8]
    var offset: Int
    init(_ data: [UInt8], from: Int) {
        self.data = data
        self.offset = from
    }
    mutating func bytes(_ n: Int) -> [UInt8] {
        defer { offset += n }
        return Array(data[offset..<offset + n])
    }
    mutating func u8() -> UInt8 {
        defer { offset += 1 }
        return data[offset]
    }
    mutating func u16() -> UInt16 { UInt16(BE.read64(bytes(2))) }
    mutating func u32() -> UInt32 { UInt32(BE.read64(bytes(4))) }
    mutating func u64() -> UInt64 { BE.read64(bytes(8)) }
}
