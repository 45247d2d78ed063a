import Foundation
import Gzip
import RistrettoPSI

/// The delivery manifest: written last, it is the commit marker of a delivery.
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5 "Delivery".
public struct Manifest: Codable, Equatable, Sendable {
    /// One record object: the provider checks its size and SHA-256 before parsing any of it.
    public struct Object: Codable, Equatable, Sendable {
        /// Object name in the run's delivery (`part-NNNNN.csv`, or `part-NNNNN.csv.gz` with gzip).
        public let name: String
        /// Lowercase hex SHA-256 of the stored bytes.
        public let sha256: String
        /// Size of the stored bytes.
        public let bytes: Int
        /// Records in the object (CSV lines after the header).
        public let records: Int
    }
    /// Always `cleanroom-delivery`; the open refuses any other.
    public var format = "cleanroom-delivery"
    /// Manifest format version; the open accepts only `1`.
    public var version = 1
    /// The collaboration's ID; the open refuses a manifest of another collaboration.
    public let collaborationID: String
    /// The run's ID (a UUID), bound into the seal context of every sealed field.
    public let runID: String
    /// Hex SHA-256 of the agreement's signed bytes (SPEC §8); the open refuses another agreement's.
    public let agreementHash: String
    /// When the coordinator built the delivery (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    public let createdAt: String
    /// Whether audience keys are sealed to the provider (set from the agreement's `output.sealed`).
    public let sealed: Bool
    /// `gzip` when the objects are gzip-compressed (the SHA-256 and size are of the stored bytes).
    public let compression: String?
    /// The CSV header of every object, in order (`sealed_member_id` last when member IDs are delivered).
    public let columns: [String]
    /// Records over all objects: the matched provider rows delivered.
    public let records: Int
    /// The record objects, in the order they are written and opened.
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
    /// The manifest as signed.
    public let manifest: Manifest
    /// Lowercase hex of the coordinator's Ed25519 signature over the prefixed manifest JSON.
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

    /// SHA-256 of ``json()``, the `manifest.json` bytes (what the audit entry records).
    public var sha256: [UInt8] { SHA256.hash(json()) }
}

/// What the coordinator writes for one run: record objects, then the manifest.
public struct DeliveryPlan: Sendable {
    /// One record object, with the figures its manifest entry lists.
    public struct Object: Sendable {
        /// Object name in the run's delivery (`part-NNNNN.csv`, or `part-NNNNN.csv.gz` with gzip).
        public let name: String
        /// Records in the object (CSV lines after the header).
        public let records: Int
        /// The object's bytes, read in pieces (a coordinator scratch file for a large delivery).
        public let content: ObjectContent
        /// SHA-256 of the stored bytes (after gzip, when compressed).
        public let sha256: [UInt8]
        /// Size of the stored bytes.
        public var size: Int { content.size }

        /// An object held in memory (small deliveries, tests).
        public init(name: String, bytes: [UInt8], records: Int) {
            self.init(name: name, content: ObjectContent(bytes), sha256: SHA256.hash(bytes), records: records)
        }
        /// An object whose bytes are elsewhere; `sha256` was computed while writing them.
        public init(name: String, content: ObjectContent, sha256: [UInt8], records: Int) {
            self.name = name
            self.content = content
            self.sha256 = sha256
            self.records = records
        }
        /// All the object's bytes at once (tests and small objects only).
        public func bytes() throws -> [UInt8] { try content.readAll() }
    }
    /// The record objects, written before the manifest, in manifest order.
    public let objects: [Object]
    /// The signed manifest, written last as the delivery's commit marker.
    public let manifest: SignedManifest
    /// The manifest's object name, beside the record objects.
    public static let manifestName = "manifest.json"

    static func columns(sealed: Bool, memberID: Bool) -> [String] {
        [sealed ? "sealed_audience_key" : "audience_key", "segment_id", "segment_name"]
            + (memberID ? ["sealed_member_id"] : [])
    }
}

/// One matched provider row, opened by the provider.
public struct DeliveredRecord: Sendable, Equatable {
    /// The provider's audience key (opened and unpadded when the delivery is sealed).
    public let audienceKey: [UInt8]
    /// The consumer's segment ID for the run.
    public let segmentID: String
    /// The consumer's segment name for the run.
    public let segmentName: String
    /// The consumer's member ID, opened; `nil` when the delivery carries none.
    public let memberID: [UInt8]?
}

/// Where the provider's opened plain CSV goes, in pieces and in order: a temporary file at the
/// edge, renamed into place by the caller only once ``ReceivedDelivery/open(agreement:provider:into:)``
/// returned (so nothing is visible at the output path after any error); an array in tests.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".
public protocol OutputSink: AnyObject {
    /// Appends the next piece of the CSV; `bytes` is valid only during the call, and a throw
    /// stops the open.
    func append(_ bytes: UnsafeRawBufferPointer) throws
}

/// An in-memory ``OutputSink``.
public final class BytesOutput: OutputSink, @unchecked Sendable {
    /// Everything appended so far, in order.
    public private(set) var bytes: [UInt8] = []
    /// An empty output.
    public init() {}
    /// Appends a copy of `b`; never throws.
    public func append(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
}

/// A delivery as the provider reads it back from its storage: the manifest's bytes, and a way to
/// fetch each object the manifest names, one at a time, as a ``ByteSource`` (a file at the edge),
/// so opening a delivery never holds a whole object or the opened set.
public struct ReceivedDelivery {
    /// The `manifest.json` bytes as fetched: nothing in them is trusted until
    /// ``manifest(_:agreement:)`` has verified them.
    public let manifestBytes: [UInt8]
    /// Fetches the object a verified manifest names (called once per object, in manifest order,
    /// after the manifest verified; the source is released before the next object is fetched).
    let fetch: (Manifest.Object) throws -> any ByteSource
    /// Bytes actually held, for reserving the in-memory result (nil: unknown, nothing reserved).
    let heldBytes: Int?
    /// The run this delivery was fetched for (its storage path names it); when set, a manifest
    /// for any other run is refused, even one the coordinator signed.
    public var expectedRunID: String?

    /// A delivery held in memory (tests, the benchmark).
    public init(manifestBytes: [UInt8], objects: [String: [UInt8]]) {
        self.manifestBytes = manifestBytes
        let sources = objects.mapValues { BytesSource($0) }
        fetch = { o throws(ActivationError) in
            guard let s = sources[o.name] else {
                throw ActivationError(.deliveryInvalid, "object \(o.name) is missing")
            }
            return s
        }
        heldBytes = objects.values.reduce(0) { $0 + $1.count }
    }

    /// A delivery whose objects are fetched on demand: `fetch` is called for each object of the
    /// verified manifest, in order; what it throws (a missing file, an S3 error) is rethrown.
    /// - Parameters:
    ///   - manifestBytes: the `manifest.json` bytes as fetched.
    ///   - expectedRunID: the run whose path the manifest was read from; a manifest for another run
    ///     is then refused (``expectedRunID``).
    ///   - fetch: fetches one object the verified manifest names.
    public init(
        manifestBytes: [UInt8], expectedRunID: String? = nil,
        fetch: @escaping (Manifest.Object) throws -> any ByteSource
    ) {
        self.manifestBytes = manifestBytes
        self.expectedRunID = expectedRunID
        self.fetch = fetch
        heldBytes = nil
    }

    /// The longest delivered CSV line: base64 sealed key, two labels, base64 sealed member ID.
    /// (At most 228 + 2 × 256 + 196 bytes and three commas: §6 round 5.) A longer line is refused,
    /// which bounds the line buffer of a streamed open.
    static let maxLineBytes = 1024
    /// Pieces a source is read in (smaller in tests, so lines and gzip pieces cross reads).
    var readChunk = 1 << 20
    /// Records parsed and opened together, on every core (smaller in tests, so errors and objects
    /// cross batches).
    var openBatch = 4096
    /// `nil`: a batch is opened on a pipeline job while the next is inflated and split whenever
    /// batches run on more than one thread (``Parallel/workerCount``; `CLEANROOM_THREADS=1` keeps
    /// the whole open on the calling thread). Tests force either path.
    var pipelined: Bool?

    /// Parses and verifies the manifest: the coordinator's signature, the collaboration and the
    /// agreement it was made under, and the agreement's output terms (sealed or plain, gzip or not,
    /// member IDs or not: the columns), so that a manifest cannot deliver in another form than the
    /// parties agreed, whoever wrote it.
    /// - Throws: `activation.delivery.invalid` naming the rule.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 6.
    public static func manifest(_ bytes: [UInt8], agreement: VerifiedAgreement) throws(ActivationError) -> Manifest {
        let signed: SignedManifest
        do { signed = try JSONDecoder().decode(SignedManifest.self, from: Data(bytes)) } catch {
            throw ActivationError(.deliveryInvalid, "manifest.json is not a delivery manifest")
        }
        guard let sig = Hex.decode(signed.signature),
            agreement.coordinatorKey.isValidSignature(sig, for: SignedManifest.signedBytes(signed.manifest))
        else {
            throw ActivationError(.deliveryInvalid, "manifest signature does not verify with the coordinator's key")
        }
        let m = signed.manifest
        guard m.compression == nil || m.compression == "gzip" else {
            throw ActivationError(.deliveryInvalid, "manifest names an unknown compression")
        }
        guard m.format == "cleanroom-delivery", m.version == 1, m.collaborationID == agreement.terms.collaborationID,
            m.agreementHash == Hex.encode(agreement.hash)
        else {
            throw ActivationError(.deliveryInvalid, "manifest belongs to another collaboration or agreement")
        }
        let output = agreement.terms.output
        guard m.sealed == output.sealed, m.compression == (output.gzip ? "gzip" : nil),
            m.columns == DeliveryPlan.columns(sealed: output.sealed, memberID: output.deliverMemberID)
        else {
            throw ActivationError(
                .deliveryInvalid,
                "manifest's output (sealed \(m.sealed), compression \(m.compression ?? "none"), columns "
                    + "\(m.columns.joined(separator: ","))) is not the agreement's output terms")
        }
        return m
    }

    /// Opens every record into memory (tests, the benchmark): a wrapper over the streamed open.
    func open(agreement: VerifiedAgreement, provider: SealingKey) throws(ActivationError) -> [DeliveredRecord] {
        var out: [DeliveredRecord] = []
        do {
            _ = try stream(
                agreement: agreement, provider: provider,
                reserve: { m in
                    // Reserved once (growth by doubling would briefly hold two copies); bounded by the
                    // bytes actually held, so a manifest's claimed count cannot make it allocate.
                    if let held = heldBytes { out.reserveCapacity(max(0, min(m.records, held / 8))) }
                },
                each: { r in
                    out.append(
                        DeliveredRecord(
                            audienceKey: Array(r.audienceKey), segmentID: String(decoding: r.segmentID, as: UTF8.self),
                            segmentName: String(decoding: r.segmentName, as: UTF8.self),
                            memberID: r.memberID.map { Array($0) }))
                })
        } catch let e as ActivationError { throw e } catch {
            // Only fetch errors: the in-memory fetch throws ActivationError.
            throw ActivationError(.deliveryInvalid, "\(error)")
        }
        return out
    }

    /// Verifies the delivery and writes its records as the plain CSV of ``plainCSV(_:)`` to
    /// `output`, object by object, in bounded memory. Returns the number of records.
    ///
    /// Contract: the manifest is verified first; then, for each object, its size and SHA-256 are
    /// checked over the whole source before any of its records is parsed or opened; a second pass
    /// inflates (gzip, bounded by the manifest's record count), parses line by line and opens each
    /// record, and hashes again so an object changed in place between the passes is refused. The
    /// caller commits `output` only when this returns, and discards it on any throw.
    /// - Throws: `activation.delivery.invalid` naming the object, record and rule; whatever the
    ///   fetch or `output` throws (e.g. `workflow.io`, `aws.*`).
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 6, §9 "Bounded memory".
    func open(agreement: VerifiedAgreement, provider: SealingKey, into output: any OutputSink) throws -> Int {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(readChunk + Self.maxLineBytes * 4)
        func flush() throws {
            try buffer.withUnsafeBytes { try output.append($0) }
            buffer.removeAll(keepingCapacity: true)
        }
        var member = false
        let n = try stream(
            agreement: agreement, provider: provider,
            reserve: { m in
                member = m.columns.contains("sealed_member_id")
                buffer += Self.plainHeader(member: member)
            },
            each: { r in
                Self.appendPlainLine(
                    &buffer, r.audienceKey, r.segmentID, r.segmentName,
                    member ? (r.memberID ?? UnsafeRawBufferPointer(start: nil, count: 0)) : nil)
                if buffer.count >= readChunk { try flush() }
            })
        try flush()
        return n
    }

    /// One opened record, borrowed for the duration of the callback (views into the opened
    /// batch's buffer: no copy and no reference counting per field).
    struct OpenedFields {
        let audienceKey: UnsafeRawBufferPointer
        let segmentID: UnsafeRawBufferPointer
        let segmentName: UnsafeRawBufferPointer
        let memberID: UnsafeRawBufferPointer?
    }

    /// Lines of one object gathered to be opened together: their bytes back to back, where each
    /// ends, and the record number (from 1) of the first.
    struct LineBatch: Sendable {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        let firstRecord: Int
        init(firstRecord: Int) { self.firstRecord = firstRecord }
        mutating func append(_ line: UnsafeRawBufferPointer) {
            bytes.append(contentsOf: line)
            ends.append(bytes.count)
        }
    }

    /// A batch's records opened by one worker, in order: their fields back to back in `bytes`
    /// (audience key, segment ID, segment name, then the member ID when the delivery has one),
    /// where each field ends (four per record), and the error of the record after the last one
    /// held, if one failed (the worker stops there: nothing after a failure is ever emitted).
    struct OpenedRun: Sendable {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        var failure: ActivationError?
    }

    /// Parses and opens a batch's records on every core (`Parallel.forEachRange`), each range into
    /// its own ``OpenedRun``, returned in order. Every check of one record is the one-at-a-time
    /// open's, with its message.
    static func openLines(
        _ batch: LineBatch, fields: Int, payload: RecordOpener?, member: RecordOpener?, object: String
    ) -> [OpenedRun] {
        // One slot per record, filled only at each range's first record: no lock, and in order.
        var slots = [OpenedRun?](repeating: nil, count: batch.ends.count)
        slots.withUnsafeMutableBufferPointer { slots in
            batch.bytes.withUnsafeBytes { bytes in
                batch.ends.withUnsafeBufferPointer { ends in
                    Parallel.forEachRange(count: ends.count) { range in
                        guard !range.isEmpty else { return }  // its slot belongs to the next range
                        var run = OpenedRun()
                        run.bytes.reserveCapacity(range.count * 256)
                        run.ends.reserveCapacity(range.count * 4)
                        // Room for a decoded and an opened field of the longest line.
                        withUnsafeTemporaryAllocation(byteCount: 2 * maxLineBytes, alignment: 16) { scratch in
                            for i in range {
                                let l = UnsafeRawBufferPointer(rebasing: bytes[(i == 0 ? 0 : ends[i - 1])..<ends[i]])
                                if let e = openLine(
                                    l, record: batch.firstRecord + i, fields: fields, payload: payload, member: member,
                                    object: object, into: &run, scratch: scratch)
                                {
                                    run.failure = e
                                    break
                                }
                            }
                        }
                        slots[range.lowerBound] = run
                    }
                }
            }
        }
        return slots.compactMap { $0 }
    }

    /// Parses and opens one delivered line, appending its four fields and their ends to `run`;
    /// returns the error naming the record instead (and leaves `run`'s ends as they were).
    ///
    /// A line without a quote (every line the coordinator writes for a sealed delivery) is split
    /// in place into byte ranges; a line with one goes through ``CSVField/split(_:)``.
    static func openLine(
        _ l: UnsafeRawBufferPointer, record: Int, fields: Int, payload: RecordOpener?, member: RecordOpener?,
        object: String, into run: inout OpenedRun, scratch: UnsafeMutableRawBufferPointer
    ) -> ActivationError? {
        func fieldCount() -> ActivationError {
            ActivationError(.deliveryInvalid, "object \(object) record \(record): wrong field count")
        }
        let usedFields = member == nil ? 3 : 4
        if fields >= usedFields, let base = l.baseAddress, memchr(base, 0x22, l.count) == nil {
            // Where the first four fields end, and how many fields there are.
            var cut: (Int, Int, Int, Int) = (0, 0, 0, 0)
            var count = 0
            var start = 0
            while true {
                let comma =
                    memchr(base + start, 0x2c, l.count - start).map { base.distance(to: UnsafeRawPointer($0)) }
                    ?? l.count
                switch count {
                case 0: cut.0 = comma
                case 1: cut.1 = comma
                case 2: cut.2 = comma
                case 3: cut.3 = comma
                default: break
                }
                count += 1
                if comma == l.count || count > fields { break }
                start = comma + 1
            }
            guard count == fields else { return fieldCount() }
            let f0 = UnsafeRawBufferPointer(rebasing: l[0..<cut.0])
            let f1 = UnsafeRawBufferPointer(rebasing: l[(cut.0 + 1)..<cut.1])
            let f2 = UnsafeRawBufferPointer(rebasing: l[(cut.1 + 1)..<cut.2])
            let f3 = member == nil ? nil : UnsafeRawBufferPointer(rebasing: l[(cut.2 + 1)..<cut.3])
            return append(
                f0, f1, f2, f3, record: record, payload: payload, member: member, object: object, into: &run,
                scratch: scratch)
        }
        let f = CSVField.split(Array(l)[...])
        guard f.count == fields else { return fieldCount() }
        return f[0].withUnsafeBytes { f0 in
            f[1].withUnsafeBytes { f1 in
                f[2].withUnsafeBytes { f2 in
                    if member == nil {
                        return append(
                            f0, f1, f2, nil, record: record, payload: payload, member: member, object: object,
                            into: &run, scratch: scratch)
                    }
                    return f[3].withUnsafeBytes { f3 in
                        append(
                            f0, f1, f2, f3, record: record, payload: payload, member: member, object: object,
                            into: &run, scratch: scratch)
                    }
                }
            }
        }
    }

    /// Opens a record's sealed fields (base64, sealed, padded) into `scratch` and appends the
    /// record to `run`; the error naming the record if a sealed field does not decode, open or unpad.
    private static func append(
        _ key: UnsafeRawBufferPointer, _ segmentID: UnsafeRawBufferPointer, _ segmentName: UnsafeRawBufferPointer,
        _ memberID: UnsafeRawBufferPointer?, record: Int, payload: RecordOpener?, member: RecordOpener?,
        object: String, into run: inout OpenedRun, scratch: UnsafeMutableRawBufferPointer
    ) -> ActivationError? {
        let start = run.bytes.count
        // Base64 into the first half of `scratch`, opened into the second, unpadded and appended.
        func appendOpened(_ field: UnsafeRawBufferPointer, _ opener: RecordOpener) -> Bool {
            let half = scratch.count / 2
            guard let sealed = Base64.decode(field, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<half]))
            else { return false }
            let plain = UnsafeMutableRawBufferPointer(rebasing: scratch[half...])
            guard let n = try? opener.open(UnsafeRawBufferPointer(rebasing: scratch[0..<sealed]), into: plain), n >= 2
            else { return false }
            let length = Int(plain[0]) << 8 | Int(plain[1])
            guard length <= n - 2 else { return false }
            run.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: plain[2..<(2 + length)]))
            return true
        }
        var ok = true
        if let payload { ok = appendOpened(key, payload) } else { run.bytes.append(contentsOf: key) }
        let keyEnd = run.bytes.count
        run.bytes.append(contentsOf: segmentID)
        let idEnd = run.bytes.count
        run.bytes.append(contentsOf: segmentName)
        let nameEnd = run.bytes.count
        if ok, let member, let memberID { ok = appendOpened(memberID, member) }
        guard ok else {
            run.bytes.removeSubrange(start...)
            return ActivationError(.deliveryInvalid, "object \(object) record \(record): sealed field does not open")
        }
        run.ends.append(keyEnd)
        run.ends.append(idEnd)
        run.ends.append(nameEnd)
        run.ends.append(run.bytes.count)
        return nil
    }

    /// The streamed open shared by both entry points: verification, inflation, parsing, opening.
    private func stream(
        agreement: VerifiedAgreement, provider: SealingKey, reserve: (Manifest) throws -> Void,
        each: (OpenedFields) throws -> Void
    ) throws -> Int {
        let m = try Self.manifest(manifestBytes, agreement: agreement)
        guard let run = UUIDBytes.parse(m.runID) else {
            throw ActivationError(.deliveryInvalid, "manifest run ID is not a UUID")
        }
        if let expectedRunID, m.runID != expectedRunID {
            throw ActivationError(
                .deliveryInvalid,
                "manifest is for run \(m.runID), not for run \(expectedRunID) whose path it was read from")
        }
        func opener(_ hex: String?, _ context: [UInt8]) throws(ActivationError) -> RecordOpener {
            do {
                guard let hex else { throw CryptoError(.invalidKey, "missing") }
                return try RecordOpener(
                    recipient: provider, ephemeralPublicKey: try SealingPublicKey(hex: hex), context: context)
            } catch { throw ActivationError(.deliveryInvalid, "manifest sealing key missing or invalid") }
        }
        let payloadOpener = m.sealed ? try opener(m.payloadSealingKey, Layout.payloadContext(agreement, run)) : nil
        let memberOpener =
            m.columns.contains("sealed_member_id")
            ? try opener(m.memberSealingKey, Layout.innerContext(agreement, run)) : nil
        let header = m.columns.map { Array($0.utf8) }
        try reserve(m)
        var total = 0
        for o in m.objects {
            let source = try fetch(o)
            // Pass 1: the object's bytes are exactly the manifest's before anything is parsed.
            guard source.size == o.bytes, try Self.sha256(source, chunk: readChunk) == o.sha256 else {
                throw ActivationError(.deliveryInvalid, "object \(o.name) does not match its SHA-256 in the manifest")
            }
            // Pass 2: inflate, split into lines, open; hashed again (a file changed in place between
            // the passes is caught below, before the caller commits anything). Lines are gathered
            // in batches opened on every core (``openLines``) and handed to `each` in order.
            var lines = LineSplitter(object: o.name)
            var sawHeader = false
            var records = 0
            let fieldCount = m.columns.count
            var gathered = LineBatch(firstRecord: 1)
            var inFlight: (job: Parallel.Job<[OpenedRun]>, first: Int)?
            var stopped = false
            // Hands a batch's records to `each` in order; the first that failed is thrown there,
            // after the records before it, as when each record was opened as its line came.
            func emit(_ opened: [OpenedRun]) throws {
                do {
                    for run in opened {
                        try run.bytes.withUnsafeBytes { b in
                            try run.ends.withUnsafeBufferPointer { ends in
                                var start = 0
                                var k = 0
                                while k < ends.count {
                                    let key = ends[k]
                                    let id = ends[k + 1]
                                    let name = ends[k + 2]
                                    let end = ends[k + 3]
                                    try each(
                                        OpenedFields(
                                            audienceKey: .init(rebasing: b[start..<key]),
                                            segmentID: .init(rebasing: b[key..<id]),
                                            segmentName: .init(rebasing: b[id..<name]),
                                            memberID: memberOpener == nil ? nil : .init(rebasing: b[name..<end])))
                                    start = end
                                    k += 4
                                }
                            }
                        }
                        if let failure = run.failure { throw failure }
                    }
                } catch {
                    stopped = true
                    throw error
                }
            }
            func completeInFlight() throws {
                guard let f = inFlight else { return }
                inFlight = nil
                try emit(try f.job.join())
            }
            // Sends the gathered batch on: to a job of its own (after the one before it is
            // emitted), or opened here and now.
            func dispatch(pipelined: Bool) throws {
                guard !gathered.ends.isEmpty, !stopped else { return }
                let batch = gathered
                gathered = LineBatch(firstRecord: batch.firstRecord + batch.ends.count)
                // About the last batch's size at once, rather than growth by doubling per batch.
                gathered.bytes.reserveCapacity(batch.bytes.count)
                gathered.ends.reserveCapacity(batch.ends.count)
                if pipelined {
                    let job = Parallel.Job {
                        Self.openLines(
                            batch, fields: fieldCount, payload: payloadOpener, member: memberOpener, object: o.name)
                    }
                    try completeInFlight()
                    inFlight = (job, batch.firstRecord)
                } else {
                    try completeInFlight()
                    try emit(
                        Self.openLines(
                            batch, fields: fieldCount, payload: payloadOpener, member: memberOpener, object: o.name))
                }
            }
            // Everything gathered so far opened and emitted, in order.
            func finishBatches() throws {
                guard !stopped else { return }
                try completeInFlight()
                try dispatch(pipelined: false)
            }
            let pipelined = self.pipelined ?? (Parallel.workerCount > 1)
            func line(_ l: UnsafeRawBufferPointer) throws {
                if !sawHeader {
                    guard CSVField.split(Array(l)[...]) == header else {
                        throw ActivationError(.deliveryInvalid, "object \(o.name) has an unexpected header")
                    }
                    sawHeader = true
                    return
                }
                records += 1
                // Past the manifest's count: keep counting (to name the real count), open nothing more.
                guard records <= o.records else { return }
                gathered.append(l)
                if gathered.ends.count >= openBatch { try dispatch(pipelined: pipelined) }
            }
            var hasher = SHA256.Hasher()
            do {
                if m.compression == "gzip" {
                    // A bound from the record count: a hostile object cannot inflate past it.
                    let inflater: Gzip.Inflater
                    do { inflater = try Gzip.Inflater(limit: (o.records + 1) * Self.maxLineBytes) } catch {
                        throw ActivationError(.deliveryInvalid, "object \(o.name): \(error.code.rawValue)")
                    }
                    do {
                        try Self.forEachChunk(source, chunk: readChunk) { chunk in
                            hasher.update(chunk)
                            try inflater.feed(chunk) { plain in try lines.feed(plain, line) }
                        }
                        try inflater.finish()
                    } catch let e as Gzip.Error {
                        throw ActivationError(.deliveryInvalid, "object \(o.name): \(e.code.rawValue)")
                    }
                } else {
                    try Self.forEachChunk(source, chunk: readChunk) { chunk in
                        hasher.update(chunk)
                        try lines.feed(chunk, line)
                    }
                }
                try lines.finish(line)
            } catch {
                // A failure met while reading on (a long line, a bad gzip stream, a read error)
                // comes after the records before it: those are opened first, and theirs wins.
                try finishBatches()
                throw error
            }
            try finishBatches()
            guard Hex.encode(hasher.finalize()) == o.sha256 else {
                throw ActivationError(
                    .deliveryInvalid,
                    "object \(o.name) changed while being read; it no longer matches its SHA-256 in the manifest")
            }
            guard sawHeader else {
                throw ActivationError(.deliveryInvalid, "object \(o.name) has an unexpected header")
            }
            guard records == o.records else {
                throw ActivationError(
                    .deliveryInvalid, "object \(o.name) holds \(records) records, the manifest says \(o.records)")
            }
            total += records
        }
        guard total == m.records else {
            throw ActivationError(.deliveryInvalid, "delivery holds \(total) records, the manifest says \(m.records)")
        }
        return total
    }

    /// Hex SHA-256 of a whole source, read in pieces.
    static func sha256(_ source: any ByteSource, chunk: Int) throws -> String {
        var h = SHA256.Hasher()
        try forEachChunk(source, chunk: chunk) { h.update($0) }
        return Hex.encode(h.finalize())
    }

    /// Hands `source`'s bytes to `body` in order, in pieces of at most `chunk` bytes.
    static func forEachChunk(_ source: any ByteSource, chunk size: Int, _ body: (UnsafeRawBufferPointer) throws -> Void)
        throws
    {
        var chunk = [UInt8](repeating: 0, count: min(size, max(source.size, 1)))
        var offset = 0
        while offset < source.size {
            let n = min(chunk.count, source.size - offset)
            try chunk.withUnsafeMutableBytes { b in
                let piece = UnsafeMutableRawBufferPointer(rebasing: b[0..<n])
                try source.read(at: offset, into: piece)
                try body(UnsafeRawBufferPointer(piece))
            }
            offset += n
        }
    }

    /// The opened records as a plain CSV ready for a DSP upload.
    public static func plainCSV(_ records: [DeliveredRecord]) -> [UInt8] {
        let member = records.contains { $0.memberID != nil }
        var out = plainHeader(member: member)
        if let r = records.first {
            // One allocation of about the final size instead of growth by doubling.
            out.reserveCapacity(
                out.count + records.count
                    * (r.audienceKey.count + r.segmentID.utf8.count + r.segmentName.utf8.count
                        + (r.memberID?.count ?? 0) + 8))
        }
        for r in records {
            let id = Array(r.segmentID.utf8)
            let name = Array(r.segmentName.utf8)
            let memberID = r.memberID ?? []
            r.audienceKey.withUnsafeBytes { k in
                id.withUnsafeBytes { i in
                    name.withUnsafeBytes { n in
                        memberID.withUnsafeBytes { m in appendPlainLine(&out, k, i, n, member ? m : nil) }
                    }
                }
            }
        }
        return out
    }

    static func plainHeader(member: Bool) -> [UInt8] {
        Array(("audience_key,segment_id,segment_name" + (member ? ",member_id" : "") + "\n").utf8)
    }

    /// One plain CSV line (RFC 4180 quoting where needed); `member` nil: no member column.
    static func appendPlainLine(
        _ out: inout [UInt8], _ key: UnsafeRawBufferPointer, _ segmentID: UnsafeRawBufferPointer,
        _ segmentName: UnsafeRawBufferPointer, _ member: UnsafeRawBufferPointer?
    ) {
        CSVField.appendQuoted(&out, key)
        out.append(0x2c)
        CSVField.appendQuoted(&out, segmentID)
        out.append(0x2c)
        CSVField.appendQuoted(&out, segmentName)
        if let member {
            out.append(0x2c)
            CSVField.appendQuoted(&out, member)
        }
        out.append(0x0a)
    }
}

/// Splits bytes fed in pieces into `\n`-terminated lines (a last unterminated line counts), as
/// ``CSVField/lines(_:)`` does for a whole buffer, holding at most one line of
/// ``ReceivedDelivery/maxLineBytes``.
struct LineSplitter {
    let object: String
    private var carry: [UInt8] = []
    private var lineNumber = 0
    init(object: String) {
        self.object = object
        carry.reserveCapacity(ReceivedDelivery.maxLineBytes)
    }

    /// Hands each completed line to `line`, borrowed for the call: straight from `bytes` when
    /// the whole line is in this piece, else from the carried start joined with its end.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ line: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let base = bytes.baseAddress else { return }
        var start = 0
        while start < bytes.count {
            guard let found = memchr(base + start, 0x0a, bytes.count - start) else {
                try keep(UnsafeRawBufferPointer(rebasing: bytes[start...]))
                return
            }
            let nl = base.distance(to: UnsafeRawPointer(found))
            let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<nl])
            if carry.isEmpty {
                try check(piece.count)
                lineNumber += 1
                try line(piece)
            } else {
                try keep(piece)
                lineNumber += 1
                try carry.withUnsafeBytes { try line($0) }
                carry.removeAll(keepingCapacity: true)
            }
            start = nl + 1
        }
    }

    mutating func finish(_ line: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !carry.isEmpty else { return }
        lineNumber += 1
        try carry.withUnsafeBytes { try line($0) }
        carry.removeAll(keepingCapacity: true)
    }

    /// The line being read may not grow past ``ReceivedDelivery/maxLineBytes`` with `more` bytes.
    private func check(_ more: Int) throws {
        guard carry.count + more <= ReceivedDelivery.maxLineBytes else {
            throw ActivationError(
                .deliveryInvalid,
                "object \(object) line \(lineNumber + 1): longer than \(ReceivedDelivery.maxLineBytes) bytes")
        }
    }

    private mutating func keep(_ piece: UnsafeRawBufferPointer) throws {
        try check(piece.count)
        carry.append(contentsOf: piece)
    }
}

/// Whether `byte` occurs in `bytes` (libc's `memchr`).
private func holds(_ bytes: ArraySlice<UInt8>, _ byte: UInt8) -> Bool {
    bytes.withUnsafeBytes { b in !b.isEmpty && memchr(b.baseAddress!, Int32(byte), b.count) != nil }
}

/// Minimal RFC 4180 handling for the delivery files, whose shape the coordinator controls
/// (one record per line; audience keys never hold CR or LF), and for the parties' skip reports.
public enum CSVField {
    /// `v` as one CSV field: quoted, with quotes doubled, when it holds a comma, quote or line break.
    public static func quote(_ v: [UInt8]) -> String { String(decoding: quoted(v), as: UTF8.self) }
    static func appendQuoted(_ out: inout [UInt8], _ v: ArraySlice<UInt8>) {
        guard v.contains(where: { $0 == 0x2c || $0 == 0x22 || $0 == 0x0a || $0 == 0x0d }) else {
            out += v
            return
        }
        out.append(0x22)
        for b in v {
            if b == 0x22 { out.append(0x22) }
            out.append(b)
        }
        out.append(0x22)
    }
    /// ``appendQuoted(_:_:)`` from a borrowed buffer (the provider's per-record output path).
    static func appendQuoted(_ out: inout [UInt8], _ v: UnsafeRawBufferPointer) {
        var plain = true
        for b in v where b == 0x2c || b == 0x22 || b == 0x0a || b == 0x0d {
            plain = false
            break
        }
        guard plain else {
            appendQuoted(&out, Array(v)[...])
            return
        }
        out.append(contentsOf: v)
    }
    static func quoted(_ v: [UInt8]) -> [UInt8] {
        guard v.contains(where: { $0 == 0x2c || $0 == 0x22 || $0 == 0x0a || $0 == 0x0d }) else { return v }
        var out: [UInt8] = [0x22]
        for b in v {
            if b == 0x22 { out.append(0x22) }
            out.append(b)
        }
        out.append(0x22)
        return out
    }
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x0a, omittingEmptySubsequences: false).dropLast(bytes.last == 0x0a ? 1 : 0).map { $0 }
    }
    static func split(_ line: ArraySlice<UInt8>) -> [[UInt8]] {
        // Without a quote the fields are the pieces between commas (what the loop below gives),
        // copied whole rather than byte by byte: the common case of a delivered record.
        if !holds(line, 0x22) {
            return line.split(separator: 0x2c, maxSplits: Int.max, omittingEmptySubsequences: false).map { Array($0) }
        }
        var fields: [[UInt8]] = []
        var cur: [UInt8] = []
        var inQuotes = false
        var i = line.startIndex
        while i < line.endIndex {
            let b = line[i]
            if inQuotes {
                if b == 0x22 {
                    if line.index(after: i) < line.endIndex && line[line.index(after: i)] == 0x22 {
                        cur.append(0x22)
                        i = line.index(after: i)
                    } else {
                        inQuotes = false
                    }
                } else {
                    cur.append(b)
                }
            } else if b == 0x22 {
                inQuotes = true
            } else if b == 0x2c {
                fields.append(cur)
                cur = []
            } else {
                cur.append(b)
            }
            i = line.index(after: i)
        }
        fields.append(cur)
        return fields
    }
}

/// Standard base64 for sealed fields in CSV (RFC 4648 §4: the standard alphabet, `=` padding,
/// no line breaks).
enum Base64 {
    /// Foundation's encoding: not used by the sources (they use ``append(_:to:)``); kept as the
    /// tests' independent reference for it and to build test deliveries.
    static func encode(_ b: [UInt8]) -> String { Data(b).base64EncodedString() }
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends the encoding of `b` (the bytes of ``encode(_:)``: standard alphabet, `=` padding,
    /// no line breaks) without going through `Data` and `String`, for the delivery's hot loop.
    static func append(_ b: ArraySlice<UInt8>, to out: inout [UInt8]) {
        // The output grows once and is written through pointers: appending byte by byte (a
        // capacity check and a store per character) showed as 2 % of round 5 in `perf`.
        let n = (b.count + 2) / 3 * 4
        guard n > 0 else { return }
        let at = out.count
        out.append(contentsOf: repeatElement(0, count: n))
        out.withUnsafeMutableBufferPointer { dst in
            b.withUnsafeBufferPointer { src in
                alphabet.withUnsafeBufferPointer { a in
                    var o = at
                    var i = 0
                    while src.count - i >= 3 {
                        let v = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8 | UInt32(src[i + 2])
                        dst[o] = a[Int(v >> 18)]
                        dst[o + 1] = a[Int(v >> 12 & 63)]
                        dst[o + 2] = a[Int(v >> 6 & 63)]
                        dst[o + 3] = a[Int(v & 63)]
                        i += 3
                        o += 4
                    }
                    switch src.count - i {
                    case 2:
                        let v = UInt32(src[i]) << 16 | UInt32(src[i + 1]) << 8
                        dst[o] = a[Int(v >> 18)]
                        dst[o + 1] = a[Int(v >> 12 & 63)]
                        dst[o + 2] = a[Int(v >> 6 & 63)]
                        dst[o + 3] = 0x3d
                    case 1:
                        let v = UInt32(src[i]) << 16
                        dst[o] = a[Int(v >> 18)]
                        dst[o + 1] = a[Int(v >> 12 & 63)]
                        dst[o + 2] = 0x3d
                        dst[o + 3] = 0x3d
                    default: break
                    }
                }
            }
        }
    }

    /// Each byte's 6-bit value in the standard alphabet; 0xff for every other byte (`=` included).
    static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xff, count: 256)
        for (v, c) in alphabet.enumerated() { t[Int(c)] = UInt8(v) }
        return t
    }()

    /// Decodes `b` as ``decode(_:into:)`` does, into a new array (tests).
    static func decode(_ b: [UInt8]) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: b.count / 4 * 3)
        let n = b.withUnsafeBytes { s in out.withUnsafeMutableBytes { o in decode(s, into: o) } }
        return n.map { Array(out[..<$0]) }
    }

    /// Decodes the canonical encoding of some bytes into the start of `out` (room for
    /// `src.count / 4 * 3` bytes) without allocating; returns how many bytes it wrote.
    ///
    /// Contract: accepts exactly what ``append(_:to:)`` writes, and refuses (nil) anything else:
    /// a length that is not a multiple of 4, a byte outside the standard alphabet (URL-safe
    /// `-`/`_`, whitespace and line breaks included), `=` anywhere but as the last one or two
    /// bytes, and non-zero bits left over in the last character before the padding (so every
    /// byte string has one encoding). Stricter than Foundation's `Data(base64Encoded:)`, which
    /// also takes `====`, `QQ=A` and `QR==`. The empty input decodes to no bytes.
    static func decode(_ src: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> Int? {
        let count = src.count
        guard count % 4 == 0 else { return nil }
        guard count > 0 else { return 0 }
        let padding = src[count - 1] != 0x3d ? 0 : src[count - 2] != 0x3d ? 1 : 2
        let n = count / 4 * 3 - padding
        precondition(out.count >= n, "the output holds the decoded bytes")
        return values.withUnsafeBufferPointer { t -> Int? in
            var bad: UInt8 = 0  // any invalid byte sets the high bit: one check after the loop
            var i = 0
            var o = 0
            // Whole quads; the last one is done below when it holds padding.
            let full = padding == 0 ? count : count - 4
            while i < full {
                let a = t[Int(src[i])]
                let b = t[Int(src[i + 1])]
                let c = t[Int(src[i + 2])]
                let d = t[Int(src[i + 3])]
                bad |= a | b | c | d
                out[o] = a << 2 | b >> 4
                out[o + 1] = b << 4 | c >> 2
                out[o + 2] = c << 6 | d
                i += 4
                o += 3
            }
            guard bad & 0x80 == 0 else { return nil }
            if padding > 0 {
                let a = t[Int(src[i])]
                let b = t[Int(src[i + 1])]
                guard (a | b) & 0x80 == 0 else { return nil }
                out[o] = a << 2 | b >> 4
                if padding == 2 {
                    guard b & 0x0f == 0 else { return nil }
                } else {
                    let c = t[Int(src[i + 2])]
                    guard c & 0x80 == 0, c & 0x03 == 0 else { return nil }
                    out[o + 1] = b << 4 | c >> 2
                }
            }
            return n
        }
    }
}

/// The bytes of one delivered object, readable in pieces: in memory, or in a scratch file the
/// coordinator wrote while building the delivery, so a destination can stream a large object
/// instead of holding it (SPEC §9 "Bounded memory").
public final class ObjectContent: @unchecked Sendable {
    /// The object's length in bytes; every read stays within it.
    public let size: Int
    private let memory: [UInt8]?
    private let file: (any ScratchFile)?

    /// Content held in memory.
    public init(_ bytes: [UInt8]) {
        memory = bytes
        file = nil
        size = bytes.count
    }
    /// Content in a finished scratch file; `size` is the file's size when this is made.
    public init(file: any ScratchFile) {
        memory = nil
        self.file = file
        size = file.size
    }

    /// Fills `buffer` with the bytes at `offset` (within `size`).
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        precondition(offset >= 0 && offset + buffer.count <= size)
        if let memory {
            memory.withUnsafeBytes {
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)]))
            }
        } else {
            try file!.read(at: offset, into: buffer)
        }
    }

    /// Hands the bytes to `body` in order, in pieces of at most `chunk` bytes.
    public func forEachChunk(_ chunk: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let memory {
            try memory.withUnsafeBytes { try body($0) }
            return
        }
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
