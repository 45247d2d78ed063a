import Foundation
import RistrettoPSI

// Streaming I/O seams for the rounds: the roles still do no I/O themselves; they read messages
// from a `ByteSource`, write them to a `MessageSink` and spill to a `ScratchSpace`, which the edge
// (Workflow) backs with files and tests back with arrays. This is what lets a round hold a bounded
// slice of a set instead of the whole of it.
// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".

/// Random-access bytes a round reads a message from: a file at the edge, an array in tests.
///
/// Contract: `read(at:into:)` fills the whole buffer or throws (a short read is an error: the
/// caller has already bounded offsets by `size`). Errors are the edge's own (e.g. `workflow.io`).
public protocol ByteSource: AnyObject {
    var size: Int { get }
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws
}

/// Where a streamed message goes: the header's length is announced first, then the body is
/// appended in order, then the header (for offset 0) and the signature (after the body) are
/// handed over last, once the body's hash is known. Nothing may become visible under the final
/// name before ``finish(header:signature:)`` returns; ``abandon()`` removes everything.
public protocol MessageSink: AnyObject {
    func begin(headerLength: Int) throws
    func append(_ bytes: UnsafeRawBufferPointer) throws
    func finish(header: [UInt8], signature: [UInt8]) throws
    func abandon()
}

/// Temporary storage for the external algorithms (shuffle buckets, join partitions): private
/// to the party, holding blinded values and sealed records only, removed after the step.
public protocol ScratchSpace: AnyObject {
    func makeFile() throws -> any ScratchFile
}

/// One append-then-read scratch file.
///
/// Contract: once appending has ended and one read has returned, reads may come from several
/// threads at once (round 5 formats delivered rows on every core from its private copies); the
/// edge's file flushes its append buffer at the first read, and later reads only `pread`.
public protocol ScratchFile: AnyObject {
    var size: Int { get }
    func append(_ bytes: UnsafeRawBufferPointer) throws
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws
    /// Deletes the file (idempotent); a file is also deleted when the object goes.
    func remove()
}

/// An in-memory ``ByteSource`` (tests, and the in-memory round APIs).
public final class BytesSource: ByteSource, @unchecked Sendable {
    /// The message's bytes, served as they are.
    public let bytes: [UInt8]
    /// A source over `bytes`.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// The length of ``bytes``.
    public var size: Int { bytes.count }
    /// Fills `buffer` from `offset`; a range outside ``bytes`` throws `activation.message.malformed`.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset >= 0, offset + buffer.count <= bytes.count else {
            throw ActivationError(.messageMalformed, "read past the end of the message")
        }
        bytes.withUnsafeBytes {
            buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)]))
        }
    }
}

/// An in-memory ``MessageSink``: ``bytes`` is the whole file once finished.
public final class BytesSink: MessageSink, @unchecked Sendable {
    /// The file so far: zeros in place of the header until ``finish(header:signature:)``, then
    /// header, body and signature; empty after ``abandon()``.
    public private(set) var bytes: [UInt8] = []
    private var headerLength = 0
    /// An empty sink.
    public init() {}
    /// Starts the file afresh with `headerLength` zero bytes held for the header.
    public func begin(headerLength: Int) throws {
        self.headerLength = headerLength
        bytes = [UInt8](repeating: 0, count: headerLength)
    }
    /// Appends body bytes after those held for the header.
    public func append(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
    /// Writes `header` over the bytes held for it and appends `signature`; a header whose length
    /// is not the one announced to ``begin(headerLength:)`` is a precondition failure.
    public func finish(header: [UInt8], signature: [UInt8]) throws {
        precondition(header.count == headerLength, "header length changed after begin")
        bytes.replaceSubrange(0..<headerLength, with: header)
        bytes += signature
    }
    /// Drops everything written.
    public func abandon() { bytes = [] }
}

/// An in-memory ``ScratchSpace`` (tests and small in-memory runs).
public final class MemoryScratch: ScratchSpace, @unchecked Sendable {
    /// An empty scratch space.
    public init() {}
    /// A new, empty file held in memory (never throws).
    public func makeFile() throws -> any ScratchFile { File() }
    final class File: ScratchFile {
        var bytes: [UInt8] = []
        var size: Int { bytes.count }
        func append(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
            precondition(offset >= 0 && offset + buffer.count <= bytes.count)
            bytes.withUnsafeBytes {
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)]))
            }
        }
        func remove() { bytes = [] }
    }
}

/// A message's signed header, parsed and checked (everything but the body's hash).
/// - SeeAlso: `Protocol/SPEC.md` §7 "Message layout".
public struct MessageHeader: Sendable {
    /// The message's kind, the one the reader expected.
    public let kind: MessageKind
    /// The sender, the role the kind implies.
    public let sender: Role
    /// The collaboration's UUID bytes, the agreement's.
    public let collaborationUUID: [UInt8]
    /// The run's UUID bytes (the run expected, when the reader was given one).
    public let runUUID: [UInt8]
    /// SHA-256 of the agreement's signed bytes, the verified agreement's.
    public let agreementHash: [UInt8]
    /// Records in the body (at most the agreement's `matching.maxSetSize`, when it has one).
    public let count: Int
    /// Bytes per record (1 to 65536; the round checks the size its agreement implies).
    public let recordSize: Int
    /// The body's SHA-256 as signed; the body is checked against it as it is read
    /// (``MessageReader/endPass()``).
    public let bodyHash: [UInt8]
    /// Body hash of the message this one answers or accompanies (zeros when none).
    public let reference: [UInt8]
    /// Ephemeral X25519 key of the records' seal (zeros when none).
    public let sealingKey: [UInt8]
    /// The metadata: a JSON object of strings (empty when the header carries none).
    public let metadata: [String: String]
    /// The header's bytes (what the signature covers, after the domain prefix).
    let bytes: [UInt8]

    /// Builds a header's bytes; the body hash is a parameter because a streamed writer learns it last.
    static func encode(
        kind: MessageKind, collaborationUUID: [UInt8], runUUID: [UInt8], agreementHash: [UInt8], count: Int,
        recordSize: Int, bodyHash: [UInt8], reference: [UInt8], sealingKey: [UInt8], metadataJSON: [UInt8]
    ) -> [UInt8] {
        var h = SignedMessage.magic
        h += BE.u16(SignedMessage.version)
        h.append(kind.rawValue)
        h.append(kind.sender.rawValue)
        h += collaborationUUID + runUUID + agreementHash
        h += BE.u64(UInt64(count)) + BE.u32(UInt32(recordSize))
        h += bodyHash + reference + sealingKey
        h += BE.u32(UInt32(metadataJSON.count)) + metadataJSON
        return h
    }

    /// Parses the header at the start of `prefix` (the first bytes of a file of `fileSize` bytes)
    /// and checks every header rule: magic, version, kind, sender, collaboration, agreement, run,
    /// record size, the agreed maximum count, and that the file's length is exactly header + count
    /// records + signature. The signature and the body hash are checked by the caller.
    static func parse(
        prefix data: [UInt8], fileSize: Int, expecting kind: MessageKind, agreement: VerifiedAgreement,
        run: [UInt8]?, source: String
    ) throws(ActivationError) -> MessageHeader {
        func fail(_ code: ActivationError.Code, _ why: String) -> ActivationError {
            ActivationError(code, "\(source): \(why)")
        }
        let fixed = SignedMessage.fixedHeaderSize
        guard fileSize >= fixed + 64, data.count >= fixed else {
            throw fail(.messageMalformed, "file too short to be a message (truncated?)")
        }
        guard Array(data[0..<4]) == SignedMessage.magic else {
            throw fail(.messageMalformed, "not a CleanRoom message (bad magic)")
        }
        var r = ByteReader(data, from: 4)
        let version = r.u16()
        guard version == SignedMessage.version else {
            throw fail(.messageWrongVersion, "message version \(version), expected \(SignedMessage.version)")
        }
        let kindByte = r.u8()
        let senderByte = r.u8()
        guard let k = MessageKind(rawValue: kindByte) else {
            throw fail(.messageWrongKind, "unknown message kind \(kindByte)")
        }
        guard k == kind else { throw fail(.messageWrongKind, "message is '\(k.name)', expected '\(kind.name)'") }
        guard senderByte == k.sender.rawValue else {
            throw fail(.messageMalformed, "sender role does not match the message kind")
        }
        let collab = r.bytes(16)
        let runID = r.bytes(16)
        let agreementHash = r.bytes(32)
        let count = r.u64()
        let recordSize = Int(r.u32())
        let bodyHash = r.bytes(32)
        let reference = r.bytes(32)
        let sealing = r.bytes(32)
        let metaLen = Int(r.u32())
        guard metaLen <= SignedMessage.maxMetadata, r.offset + metaLen + 64 <= fileSize,
            r.offset + metaLen <= data.count
        else {
            throw fail(.messageMalformed, "metadata length out of range")
        }
        let metaBytes = r.bytes(metaLen)
        let headerEnd = r.offset
        guard collab == agreement.collaborationUUID else {
            throw fail(.messageWrongCollaboration, "message belongs to another collaboration")
        }
        guard agreementHash == agreement.hash else {
            throw fail(.messageWrongAgreement, "message was made under a different agreement")
        }
        if let run, run != runID {
            throw fail(
                .messageWrongRun, "message belongs to run \(UUIDBytes.string(runID)), expected \(UUIDBytes.string(run))"
            )
        }
        guard recordSize > 0, recordSize <= 1 << 16 else {
            throw fail(.messageMalformed, "record size \(recordSize) out of range")
        }
        if let max = agreement.terms.matching.maxSetSize, count > UInt64(max) {
            throw fail(
                .messageTooLarge,
                "header says \(count) records, the agreement allows at most \(max) (matching.maxSetSize)")
        }
        let bodyLen = fileSize - headerEnd - 64
        guard count <= UInt64(Int.max / recordSize), Int(count) * recordSize == bodyLen else {
            throw fail(
                .messageCountMismatch,
                "header says \(count) records of \(recordSize) bytes, body holds \(bodyLen) bytes")
        }
        let metadata: [String: String]
        do {
            metadata = metaLen == 0 ? [:] : try JSONDecoder().decode([String: String].self, from: Data(metaBytes))
        } catch { throw fail(.messageMalformed, "metadata is not a JSON object of strings") }
        return MessageHeader(
            kind: k, sender: k.sender, collaborationUUID: collab, runUUID: runID, agreementHash: agreementHash,
            count: Int(count), recordSize: recordSize, bodyHash: bodyHash, reference: reference,
            sealingKey: sealing, metadata: metadata, bytes: Array(data[0..<headerEnd]))
    }

    /// Verifies the sender's signature over the header (which carries the body hash).
    func verify(signature: [UInt8], agreement: VerifiedAgreement, source: String) throws(ActivationError) {
        let key: VerifyingKey = sender == .consumer ? agreement.consumerKey : agreement.providerKey
        guard key.isValidSignature(signature, for: SignedMessage.signaturePrefix + bytes) else {
            throw ActivationError(
                .messageSignatureInvalid,
                "\(source): signature does not verify with the \(sender == .consumer ? "consumer" : "provider")'s key")
        }
    }
}

/// Reads a signed message from a ``ByteSource`` in bounded memory.
///
/// Contract: `init` checks the header and the signature (read from the end of the file) before
/// any record is returned; the body is then read in passes of chunks, each pass feeding SHA-256,
/// and ``endPass()`` throws `activation.message.checksum_mismatch` if the body read in that pass
/// is not the signed one. A caller commits nothing derived from a pass until `endPass()` returned:
/// the source may be an untrusted exchange that changes between passes, so every pass is checked.
/// - SeeAlso: `Protocol/SPEC.md` §7, §9 "Bounded memory".
public struct MessageReader {
    /// The header, checked and its signature verified (the body's hash is checked per pass).
    public let header: MessageHeader
    let source: any ByteSource
    let name: String
    private var hasher = SHA256.Hasher()
    private var nextRecord = 0

    /// Opens `source` as a message of `kind` under `agreement` (and of `run`, when given): reads
    /// the header and checks every header rule, then verifies the signature in the last 64 bytes.
    /// No body byte is read. `name` names the source in errors.
    ///
    /// Throws the `activation.message.*` code of the first rule broken (`Protocol/SPEC.md` §7),
    /// or the source's own read errors.
    public init(
        _ source: any ByteSource, expecting kind: MessageKind, agreement: VerifiedAgreement, run: [UInt8]? = nil,
        name: String
    ) throws {
        let size = source.size
        var prefix = [UInt8](repeating: 0, count: min(size, SignedMessage.fixedHeaderSize + SignedMessage.maxMetadata))
        try prefix.withUnsafeMutableBytes { try source.read(at: 0, into: $0) }
        header = try MessageHeader.parse(
            prefix: prefix, fileSize: size, expecting: kind, agreement: agreement, run: run, source: name)
        var sig = [UInt8](repeating: 0, count: 64)
        try sig.withUnsafeMutableBytes { try source.read(at: size - 64, into: $0) }
        try header.verify(signature: sig, agreement: agreement, source: name)
        self.source = source
        self.name = name
    }

    /// Records in the body, as the verified header says.
    public var count: Int { header.count }
    /// Bytes per record, as the verified header says.
    public var recordSize: Int { header.recordSize }
    /// Records read so far in this pass.
    public var position: Int { nextRecord }

    /// Reads up to `maxRecords` next records of this pass into `buffer` (replacing its contents)
    /// and returns how many were read (0 at the end of the body).
    public mutating func next(_ maxRecords: Int, into buffer: inout [UInt8]) throws -> Int {
        let n = min(maxRecords, header.count - nextRecord)
        guard n > 0 else {
            buffer.removeAll(keepingCapacity: true)
            return 0
        }
        let bytes = n * header.recordSize
        if buffer.count != bytes {
            if buffer.count > bytes {
                buffer.removeLast(buffer.count - bytes)
            } else {
                buffer.append(contentsOf: repeatElement(0, count: bytes - buffer.count))
            }
        }
        let offset = header.bytes.count + nextRecord * header.recordSize
        try buffer.withUnsafeMutableBytes { try source.read(at: offset, into: $0) }
        buffer.withUnsafeBytes { hasher.update($0) }
        nextRecord += n
        return n
    }

    /// Ends a pass: every record must have been read, and the body must hash to the signed value.
    /// Resets the reader for another pass.
    public mutating func endPass() throws(ActivationError) {
        precondition(nextRecord == header.count, "a pass must read every record before it ends")
        let digest = hasher.finalize()
        hasher = SHA256.Hasher()
        nextRecord = 0
        guard digest == header.bodyHash else {
            throw ActivationError(.messageChecksumMismatch, "\(name): body SHA-256 does not match the signed header")
        }
    }
}

/// Writes a signed message to a ``MessageSink`` in bounded memory: the header's fields (all but
/// the body hash) are fixed first, records are appended and hashed as they come, and ``finish()``
/// fills in the body hash, signs the header and hands both to the sink. The bytes are exactly
/// those of ``SignedMessage`` (§7), so the test vectors hold for either writer.
/// - SeeAlso: `Protocol/SPEC.md` §7, §9 "Bounded memory".
public struct MessageWriter {
    let kind: MessageKind
    let agreement: VerifiedAgreement
    let runUUID: [UInt8]
    /// Records the header announces; ``finish()`` requires exactly this many appended.
    public let count: Int
    /// Bytes per record.
    public let recordSize: Int
    /// Settable until ``finish()``: round 1's payload refers to the blinded message written beside it.
    var reference: [UInt8]
    let sealingKey: [UInt8]
    let metadataJSON: [UInt8]
    let signer: SigningKey
    let sink: any MessageSink
    private var hasher = SHA256.Hasher()
    private var written = 0

    init(
        kind: MessageKind, agreement: VerifiedAgreement, runUUID: [UInt8], count: Int, recordSize: Int,
        reference: [UInt8]? = nil, sealingKey: SealingPublicKey? = nil, metadata: [String: String] = [:],
        signer: SigningKey, sink: any MessageSink
    ) throws {
        precondition(recordSize > 0 && count >= 0)
        self.kind = kind
        self.agreement = agreement
        self.runUUID = runUUID
        self.count = count
        self.recordSize = recordSize
        self.reference = reference ?? [UInt8](repeating: 0, count: 32)
        self.sealingKey = sealingKey?.bytes ?? [UInt8](repeating: 0, count: 32)
        self.metadataJSON = SignedMessage.encodeMetadata(metadata)
        self.signer = signer
        self.sink = sink
        try sink.begin(headerLength: SignedMessage.fixedHeaderSize + metadataJSON.count)
    }

    /// Appends whole records (a multiple of the record size; never more than `count` in all).
    public mutating func append(_ records: UnsafeRawBufferPointer) throws {
        precondition(records.count % recordSize == 0, "partial record")
        written += records.count / recordSize
        precondition(written <= count, "more records than the header announces")
        hasher.update(records)
        try sink.append(records)
    }

    /// Appends whole records held in an array, as the buffer-pointer `append(_:)`.
    public mutating func append(_ records: [UInt8]) throws {
        try records.withUnsafeBytes { try append($0) }
    }

    /// Signs and completes the message; returns its body hash (what the next round references).
    public mutating func finish() throws -> [UInt8] {
        precondition(written == count, "fewer records than the header announces")
        let bodyHash = hasher.finalize()
        let header = MessageHeader.encode(
            kind: kind, collaborationUUID: agreement.collaborationUUID, runUUID: runUUID,
            agreementHash: agreement.hash, count: count, recordSize: recordSize, bodyHash: bodyHash,
            reference: reference, sealingKey: sealingKey, metadataJSON: metadataJSON)
        try sink.finish(header: header, signature: signer.signature(for: SignedMessage.signaturePrefix + header))
        return bodyHash
    }
}

extension MessageWriter {
    /// Benchmark inputs only (`@_spi(Benchmarks)`): a writer for a message of any kind, so that
    /// `cleanroom-bench coordinator-scale` can write round 5's three inputs straight from group
    /// arithmetic, without running rounds 1–4, as the parties' own writer writes them (same
    /// header, hash and signature; the coordinator cannot tell them apart). The caller supplies
    /// what a round would: the record size the agreement implies, the reference (round 1's body
    /// hash for the payload and provider-reblinded), the metadata and the sender's key.
    /// - SeeAlso: `BENCHMARKS.md` "Coordinator at scale"; `Protocol/SPEC.md` §7.
    @_spi(Benchmarks)
    public static func benchmarkWriter(
        kind: MessageKind, agreement: VerifiedAgreement, runUUID: [UInt8], count: Int, recordSize: Int,
        reference: [UInt8], metadata: [String: String], signer: SigningKey,
        sink: any MessageSink
    ) throws -> MessageWriter {
        try MessageWriter(
            kind: kind, agreement: agreement, runUUID: runUUID, count: count, recordSize: recordSize,
            reference: reference, metadata: metadata, signer: signer, sink: sink)
    }
}
