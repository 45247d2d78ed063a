import Foundation
import RistrettoPSI
import Gzip

/// The delivery manifest: written last, it is the commit marker of a delivery.
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5 "Delivery".
public struct Manifest: Codable, Equatable, Sendable {
    public struct Object: Codable, Equatable, Sendable {
        public let name: String
        public let sha256: String
        public let bytes: Int
        public let records: Int
    }
    public var format = "cleanroom-delivery"
    public var version = 1
    public let collaborationID: String
    public let runID: String
    public let agreementHash: String
    public let createdAt: String
    public let sealed: Bool
    /// `gzip` when the objects are gzip-compressed (the SHA-256 and size are of the stored bytes).
    public let compression: String?
    public let columns: [String]
    public let records: Int
    public let objects: [Object]
    /// Ephemeral X25519 key of the provider's own sealed audience keys.
    public let payloadSealingKey: String?
    /// Ephemeral X25519 key of the consumer's inner seal on member IDs.
    public let memberSealingKey: String?
}

/// A manifest with the coordinator's Ed25519 signature over
/// `"CLEANROOM-V01-MANIFEST\n" ‖ JSON(manifest, sorted keys)`.
public struct SignedManifest: Codable, Equatable, Sendable {
    static let prefix = Array("CLEANROOM-V01-MANIFEST\n".utf8)
    public let manifest: Manifest
    public let signature: String

    static func signedBytes(_ m: Manifest) -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return prefix + Array(try! e.encode(m))
    }

    static func sign(_ m: Manifest, with key: SigningKey) -> SignedManifest {
        SignedManifest(manifest: m, signature: Hex.encode(key.signature(for: signedBytes(m))))
    }

    /// The file bytes (`manifest.json`).
    public func json() -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try! e.encode(self))
    }

    public var sha256: [UInt8] { SHA256.hash(json()) }
}

/// What the coordinator writes for one run: record objects, then the manifest.
public struct DeliveryPlan: Sendable {
    public struct Object: Sendable {
        public let name: String
        public let records: Int
        /// The object's bytes, read in pieces (a coordinator scratch file for a large delivery).
        public let content: ObjectContent
        public let sha256: [UInt8]
        public var size: Int { content.size }

        /// An object held in memory (small deliveries, tests).
        public init(name: String, bytes: [UInt8], records: Int) {
            self.init(name: name, content: ObjectContent(bytes), sha256: SHA256.hash(bytes), records: records)
        }
        /// An object whose bytes are elsewhere; `sha256` was computed while writing them.
        public init(name: String, content: ObjectContent, sha256: [UInt8], records: Int) {
            self.name = name; self.content = content; self.sha256 = sha256; self.records = records
        }
        /// All the object's bytes at once (tests and small objects only).
        public func bytes() throws -> [UInt8] { try content.readAll() }
    }
    public let objects: [Object]
    public let manifest: SignedManifest
    public static let manifestName = "manifest.json"

    static func columns(sealed: Bool, memberID: Bool) -> [String] {
        [sealed ? "sealed_audience_key" : "audience_key", "segment_id", "segment_name"] + (memberID ? ["sealed_member_id"] : [])
    }
}

/// One matched provider row, opened by the provider.
public struct DeliveredRecord: Sendable, Equatable {
    public let audienceKey: [UInt8]
    public let segmentID: String
    public let segmentName: String
    public let memberID: [UInt8]?
}

/// A delivery as the provider reads it back from its storage.
public struct ReceivedDelivery: Sendable {
    public let manifestBytes: [UInt8]
    public let objects: [String: [UInt8]]
    public init(manifestBytes: [UInt8], objects: [String: [UInt8]]) { self.manifestBytes = manifestBytes; self.objects = objects }

    /// The longest delivered CSV line: base64 sealed key, two labels, base64 sealed member ID.
    static let maxLineBytes = 1024

    /// Parses and verifies the manifest (signature, collaboration, agreement).
    public static func manifest(_ bytes: [UInt8], agreement: VerifiedAgreement) throws(ActivationError) -> Manifest {
        let signed: SignedManifest
        do { signed = try JSONDecoder().decode(SignedManifest.self, from: Data(bytes)) } catch {
            throw ActivationError(.deliveryInvalid, "manifest.json is not a delivery manifest")
        }
        guard let sig = Hex.decode(signed.signature),
              agreement.coordinatorKey.isValidSignature(sig, for: SignedManifest.signedBytes(signed.manifest)) else {
            throw ActivationError(.deliveryInvalid, "manifest signature does not verify with the coordinator's key")
        }
        let m = signed.manifest
        guard m.compression == nil || m.compression == "gzip" else {
            throw ActivationError(.deliveryInvalid, "manifest names an unknown compression")
        }
        guard m.format == "cleanroom-delivery", m.version == 1, m.collaborationID == agreement.terms.collaborationID,
              m.agreementHash == Hex.encode(agreement.hash) else {
            throw ActivationError(.deliveryInvalid, "manifest belongs to another collaboration or agreement")
        }
        return m
    }

    func open(agreement: VerifiedAgreement, provider: SealingKey) throws(ActivationError) -> [DeliveredRecord] {
        let m = try Self.manifest(manifestBytes, agreement: agreement)
        guard let run = UUIDBytes.parse(m.runID) else { throw ActivationError(.deliveryInvalid, "manifest run ID is not a UUID") }
        func opener(_ hex: String?, _ context: [UInt8]) throws(ActivationError) -> RecordOpener {
            do {
                guard let hex else { throw CryptoError(.invalidKey, "missing") }
                return try RecordOpener(recipient: provider, ephemeralPublicKey: try SealingPublicKey(hex: hex), context: context)
            } catch { throw ActivationError(.deliveryInvalid, "manifest sealing key missing or invalid") }
        }
        let payloadOpener = m.sealed ? try opener(m.payloadSealingKey, Layout.payloadContext(agreement, run)) : nil
        let memberOpener = m.columns.contains("sealed_member_id") ? try opener(m.memberSealingKey, Layout.innerContext(agreement, run)) : nil
        var out: [DeliveredRecord] = []
        // Reserved once (growth by doubling would briefly hold two copies); bounded by the bytes
        // actually received, so a manifest's claimed count cannot make it allocate.
        out.reserveCapacity(max(0, min(m.records, objects.values.reduce(0) { $0 + $1.count } / 8)))
        for o in m.objects {
            guard let bytes = objects[o.name] else { throw ActivationError(.deliveryInvalid, "object \(o.name) is missing") }
            guard Hex.encode(SHA256.hash(bytes)) == o.sha256, bytes.count == o.bytes else {
                throw ActivationError(.deliveryInvalid, "object \(o.name) does not match its SHA-256 in the manifest")
            }
            var csv = bytes
            if m.compression == "gzip" {
                // A bound from the record count: a hostile object cannot inflate past it.
                do { csv = try Gzip.decompress(bytes, limit: (o.records + 1) * Self.maxLineBytes) } catch {
                    throw ActivationError(.deliveryInvalid, "object \(o.name): \(error.code.rawValue)")
                }
            }
            var lines = CSVField.lines(csv)
            guard lines.first.map({ CSVField.split($0) == m.columns.map { Array($0.utf8) } }) == true else {
                throw ActivationError(.deliveryInvalid, "object \(o.name) has an unexpected header")
            }
            lines.removeFirst()
            guard lines.count == o.records else { throw ActivationError(.deliveryInvalid, "object \(o.name) holds \(lines.count) records, the manifest says \(o.records)") }
            for (n, line) in lines.enumerated() {
                let f = CSVField.split(line)
                guard f.count == m.columns.count else { throw ActivationError(.deliveryInvalid, "object \(o.name) record \(n + 1): wrong field count") }
                do {
                    let key: [UInt8]
                    if let payloadOpener {
                        guard let b = Base64.decode(f[0]), let k = Layout.unpadded(try payloadOpener.open(b)) else { throw CryptoError(.decryptionFailed, "") }
                        key = k
                    } else { key = f[0] }
                    var member: [UInt8]?
                    if let memberOpener {
                        guard let b = Base64.decode(f[3]), let v = Layout.unpadded(try memberOpener.open(b)) else { throw CryptoError(.decryptionFailed, "") }
                        member = v
                    }
                    out.append(DeliveredRecord(audienceKey: key, segmentID: String(decoding: f[1], as: UTF8.self),
                                               segmentName: String(decoding: f[2], as: UTF8.self), memberID: member))
                } catch {
                    throw ActivationError(.deliveryInvalid, "object \(o.name) record \(n + 1): sealed field does not open")
                }
            }
        }
        guard out.count == m.records else { throw ActivationError(.deliveryInvalid, "delivery holds \(out.count) records, the manifest says \(m.records)") }
        return out
    }

    /// The opened records as a plain CSV ready for a DSP upload.
    public static func plainCSV(_ records: [DeliveredRecord]) -> [UInt8] {
        let member = records.contains { $0.memberID != nil }
        var out = Array(("audience_key,segment_id,segment_name" + (member ? ",member_id" : "") + "\n").utf8)
        if let r = records.first {
            // One allocation of about the final size instead of growth by doubling.
            out.reserveCapacity(out.count + records.count * (r.audienceKey.count + r.segmentID.utf8.count + r.segmentName.utf8.count + (r.memberID?.count ?? 0) + 8))
        }
        for r in records {
            var f = [CSVField.quoted(r.audienceKey), CSVField.quoted(Array(r.segmentID.utf8)), CSVField.quoted(Array(r.segmentName.utf8))]
            if member { f.append(CSVField.quoted(r.memberID ?? [])) }
            out += f.joined(separator: [UInt8(ascii: ",")]) + [UInt8(ascii: "\n")]
        }
        return out
    }
}

/// Minimal RFC 4180 handling for the delivery files, whose shape the coordinator controls
/// (one record per line; audience keys never hold CR or LF).
enum CSVField {
    static func quote(_ v: [UInt8]) -> String { String(decoding: quoted(v), as: UTF8.self) }
    static func quoted(_ v: [UInt8]) -> [UInt8] {
        guard v.contains(where: { $0 == 0x2c || $0 == 0x22 || $0 == 0x0a || $0 == 0x0d }) else { return v }
        var out: [UInt8] = [0x22]
        for b in v { if b == 0x22 { out.append(0x22) }; out.append(b) }
        out.append(0x22)
        return out
    }
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0a, omittingEmptySubsequences: false).dropLast(bytes.last == 0x0a ? 1 : 0).map { $0 }
    }
    static func split(_ line: ArraySlice<UInt8>) -> [[UInt8]] {
        var fields: [[UInt8]] = [], cur: [UInt8] = [], inQuotes = false
        var i = line.startIndex
        while i < line.endIndex {
            let b = line[i]
            if inQuotes {
                if b == 0x22 {
                    if line.index(after: i) < line.endIndex && line[line.index(after: i)] == 0x22 { cur.append(0x22); i = line.index(after: i) } else { inQuotes = false }
                } else { cur.append(b) }
            } else if b == 0x22 { inQuotes = true } else if b == 0x2c { fields.append(cur); cur = [] } else { cur.append(b) }
            i = line.index(after: i)
        }
        fields.append(cur)
        return fields
    }
}

/// Standard base64 for sealed fields in CSV.
enum Base64 {
    static func encode(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }
    static func decode(_ b: [UInt8]) -> [UInt8]? { Data(base64Encoded: Data(b)).map { Array($0) } }
}

/// The bytes of one delivered object, readable in pieces: in memory, or in a scratch file the
/// coordinator wrote while building the delivery, so a destination can stream a large object
/// instead of holding it (SPEC §9 "Bounded memory").
public final class ObjectContent: @unchecked Sendable {
    public let size: Int
    private let memory: [UInt8]?
    private let file: (any ScratchFile)?

    public init(_ bytes: [UInt8]) { memory = bytes; file = nil; size = bytes.count }
    public init(file: any ScratchFile) { memory = nil; self.file = file; size = file.size }

    /// Fills `buffer` with the bytes at `offset` (within `size`).
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        precondition(offset >= 0 && offset + buffer.count <= size)
        if let memory {
            memory.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)])) }
        } else {
            try file!.read(at: offset, into: buffer)
        }
    }

    /// Hands the bytes to `body` in order, in pieces of at most `chunk` bytes.
    public func forEachChunk(_ chunk: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let memory { try memory.withUnsafeBytes { try body($0) }; return }
        var buffer = [UInt8](repeating: 0, count: min(chunk, size))
        var offset = 0
        while offset < size {
            let n = min(chunk, size - offset)
            try buffer.withUnsafeMutableBytes { b in
                let piece = UnsafeMutableRawBufferPointer(rebasing: b[0..<n])
                try read(at: offset, into: piece)
                try body(UnsafeRawBufferPointer(piece))
            }
            offset += n
        }
    }

    /// All the bytes at once.
    public func readAll() throws -> [UInt8] {
        if let memory { return memory }
        var out = [UInt8](repeating: 0, count: size)
        try out.withUnsafeMutableBytes { try read(at: 0, into: $0) }
        return out
    }
}
