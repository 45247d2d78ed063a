import Activation
import Foundation
import RistrettoPSI
import S3Delivery
import Tabular

#if canImport(Glibc)
import Glibc
#endif

/// Where round messages are exchanged: `<root>/<collaboration>/<run>/<kind>.crm`, in a local
/// directory or under an `s3://bucket/prefix` root that each party reaches with its own AWS
/// credentials (so nothing in the protocol needs a shared disk).
///
/// Contract: a message is written once (a local exclusive create, or S3 `If-None-Match: *`) and
/// read whole; every message is signed and verified by its reader, so the store is untrusted.
/// - SeeAlso: `Protocol/SPEC.md` §12.7 "Exchanges on S3".
public struct Exchange: Sendable {
    /// The exchange's root: a local directory, or the `s3://bucket/prefix` location.
    public let root: String
    let s3: S3Exchange?
    /// A private directory (the party's state directory's `scratch`, the coordinator's private
    /// store's) where an S3 exchange's messages are staged so they are read and written in pieces
    /// (SPEC §12.7); nil: an S3 message is held in memory while it is read or written.
    public let scratchDirectory: String?
    /// Bytes available on a directory's file system, asked before an S3 message is downloaded
    /// into ``scratchDirectory`` (`statvfs`; tests inject a shortfall).
    var availableBytes: @Sendable (String) -> Int? = { ScratchPreflight.availableBytes(at: $0) }

    struct S3Exchange: Sendable {
        let location: S3Location
        let writer: S3Writer
        let reader: S3Reader
    }

    /// A local directory.
    public init(root: String) { self.init(root: root, s3: nil, scratchDirectory: nil) }
    init(root: String, s3: S3Exchange?, scratchDirectory: String?) {
        self.root = root
        self.s3 = s3
        self.scratchDirectory = scratchDirectory
    }

    /// A local directory, or `s3://bucket/prefix` with the caller's credentials from `environment`
    /// (credential chain, `AWS_REGION`, endpoint overrides).
    /// - Parameters:
    ///   - location: a local directory, or `s3://bucket/prefix`.
    ///   - environment: the AWS settings an S3 location is reached with; unused for a directory.
    ///   - scratchDirectory: for S3, where messages are staged to be streamed (created
    ///     mode 0700 when first used; its files are 0600 and unlinked at once). Ignored for a
    ///     local directory, whose files are read and written in place.
    /// - Throws: `AWSError` when an S3 location's URI, endpoints or credential chain cannot be
    ///   resolved (e.g. `aws.configuration`).
    public init(location: String, environment: AWSEnvironment, scratchDirectory: String? = nil) throws {
        guard location.hasPrefix("s3://") else {
            self.init(root: location)
            return
        }
        let l = try S3Location(uri: location)
        let endpoints = try AWSEndpoints.resolve(environment)
        let http = AWSHTTP.fromEnvironment(environment)
        let creds = try CredentialChain.resolve(environment, endpoints: endpoints, http: http)
        self.init(
            root: l.description,
            s3: S3Exchange(
                location: l, writer: S3Writer(endpoints: endpoints, bucket: l.bucket, http: http, credentials: creds),
                reader: S3Reader(endpoints: endpoints, bucket: l.bucket, http: http, credentials: creds)),
            scratchDirectory: scratchDirectory)
    }

    /// The message's address, `<root>/<collaboration>/<run>/<file name>`: the file itself on a local
    /// exchange, the object's `s3://` address on S3 (for errors and reports).
    public func path(_ a: VerifiedAgreement, run: String, _ kind: MessageKind) -> String {
        "\(root)/\(a.terms.collaborationID)/\(run)/\(Self.fileName(kind))"
    }
    /// The file (or object) name of a message of `kind`, e.g. `provider-blinded.crm`.
    public static func fileName(_ kind: MessageKind) -> String {
        switch kind {
        case .providerBlinded: "provider-blinded.crm"
        case .providerPayload: "provider-payload.crm"
        case .consumerBlinded: "consumer-blinded.crm"
        case .consumerReblinded: "consumer-reblinded.crm"
        case .providerReblinded: "provider-reblinded.crm"
        }
    }
    func write(_ m: SignedMessage, _ a: VerifiedAgreement, run: String) throws {
        if let s3 {
            _ = try s3.writer.put(
                key: s3.location.key(a.terms.collaborationID, run, Self.fileName(m.kind)), bytes: m.serialized())
            return
        }
        // Streamed in three pieces: no concatenated copy of the body (the largest allocation of a step).
        try Files.writeAtomically(to: path(a, run: run, m.kind), exclusive: true) { emit throws(WorkflowError) in
            try m.writeParts(emit)
        }
    }
    /// Opens the message of `kind` for a streamed read (SPEC §9 "Bounded memory"): a local file is
    /// read in place; an S3 object is downloaded in ranges into a scratch file of
    /// ``scratchDirectory`` (without one, fetched whole into memory).
    ///
    /// Before the first byte is kept, the object's size (from the first range's `Content-Range`)
    /// is checked against the space there: too little stops with `workflow.disk_space`, nothing
    /// kept (SPEC §12.7).
    func source(_ a: VerifiedAgreement, run: String, _ kind: MessageKind) throws -> any ByteSource {
        if let s3 {
            guard let scratchDirectory else { return BytesSource(try read(a, run: run, kind)) }
            let file = try DirectoryScratch(directory: scratchDirectory).makeFile()
            let key = s3.location.key(a.terms.collaborationID, run, Self.fileName(kind))
            _ = try s3.reader.download(
                key: key,
                expect: { size in
                    try ScratchPreflight.checkDownload(
                        size: size, of: "s3://\(s3.location.bucket)/\(key)", into: scratchDirectory,
                        available: availableBytes(scratchDirectory))
                }, write: { try file.append($0) })
            return ScratchFileSource(file)
        }
        return try FileSource(path: path(a, run: run, kind))
    }
    /// A sink for a streamed write of the message of `kind`: a hidden temporary file linked into
    /// place when complete; on S3 the body is staged in a scratch file of ``scratchDirectory`` and
    /// uploaded from it in pieces once signed (without one, gathered in memory and put whole).
    func sink(_ a: VerifiedAgreement, run: String, _ kind: MessageKind) throws -> any MessageSink {
        if let s3 {
            let key = s3.location.key(a.terms.collaborationID, run, Self.fileName(kind))
            guard let scratchDirectory else { return S3MessageSink(exchange: s3, key: key) }
            return S3StreamedMessageSink(
                exchange: s3, key: key, file: try DirectoryScratch(directory: scratchDirectory).makeFile())
        }
        return try FileMessageSink(path: path(a, run: run, kind))
    }
    /// Whether the message of `kind` was written (an S3 exchange asks with HeadObject).
    /// - Throws: `AWSError` when an S3 exchange cannot tell (e.g. 403 without list permission).
    func exists(_ a: VerifiedAgreement, run: String, _ kind: MessageKind) throws -> Bool {
        if let s3 {
            return try s3.reader.exists(key: s3.location.key(a.terms.collaborationID, run, Self.fileName(kind)))
        }
        return FileManager.default.fileExists(atPath: path(a, run: run, kind))
    }
    /// Whether this exchange is on S3 (where writes never overwrite and nothing is deleted).
    var isS3: Bool { s3 != nil }
    /// The whole message in memory (an exchange without a scratch directory): on S3 in ranges,
    /// so a message of any size is read (one GET's answer is bounded, SPEC §12 "HTTP").
    func read(_ a: VerifiedAgreement, run: String, _ kind: MessageKind) throws -> [UInt8] {
        if let s3 {
            var bytes: [UInt8] = []
            _ = try s3.reader.download(
                key: s3.location.key(a.terms.collaborationID, run, Self.fileName(kind)),
                expect: { bytes.reserveCapacity($0) }, write: { bytes.append(contentsOf: $0) })
            return bytes
        }
        return try Files.read(path(a, run: run, kind))
    }
}

/// A party's private state directory (mode 0700): per-run state files (mode 0600) that hold the
/// run's scalar between the party's two steps, shredded after the second.
public struct StateStore: Sendable {
    /// The private state directory.
    public let root: String
    /// A store at `root`; its directories are created (mode 0700) when first used.
    public init(root: String) { self.root = root }
    func path(_ a: VerifiedAgreement, run: String, role: Role) -> String {
        "\(root)/\(a.terms.collaborationID)/\(run).\(KeyFiles.roleName(role)).state"
    }
    func save(_ s: RunState, _ a: VerifiedAgreement) throws(WorkflowError) {
        try Files.makeDirectory(root, mode: 0o700)
        try Files.makeDirectory("\(root)/\(a.terms.collaborationID)", mode: 0o700)
        let bytes = s.serialized(collaborationUUID: a.collaborationUUID)
        let r: Result<Void, WorkflowError> = bytes.withUnsafeBytes { b in
            Result { () throws(WorkflowError) in
                try Files.writeAtomically(b, to: path(a, run: s.runID, role: s.role), mode: 0o600, exclusive: true)
            }
        }
        try r.get()
    }
    func load(_ a: VerifiedAgreement, run: String, role: Role) throws(Error) -> RunState {
        let p = path(a, run: run, role: role)
        var raw = try Files.read(p)
        defer { SecureBytes.zero(&raw) }
        let secure = SecureBytes(consuming: &raw)
        let state = try RunState(parsing: secure, role: role, agreement: a, source: p)
        // A state file copied under another run's name would otherwise surface later, and less
        // clearly, as a message from the wrong run.
        guard state.runID == run else {
            throw ActivationError(.stateInvalid, "\(p): state file belongs to run \(state.runID), not run \(run)")
        }
        return state
    }
    func delete(_ a: VerifiedAgreement, run: String, role: Role) { Files.shred(path(a, run: run, role: role)) }

    /// Where a prepare lists every value it left out under `--skip-invalid`:
    /// `<root>/<collaboration>/<run>.<role>.skipped.csv`, beside the run state and as private
    /// (mode 0600): row numbers and column names of the party's own input, never a value.
    public func skipReportPath(_ a: VerifiedAgreement, run: String, role: Role) -> String {
        "\(root)/\(a.terms.collaborationID)/\(run).\(KeyFiles.roleName(role)).skipped.csv"
    }

    /// Writes `skipped` as CSV (`row,column,rule`, one line per skip in input order) for
    /// ``skipReportPath(_:run:role:)``, streamed from the scratch file into a hidden temporary
    /// file, synced, but not yet visible: the caller commits it once the round is published (or
    /// abandons it). Nil when nothing was skipped.
    /// - SeeAlso: `Protocol/BAD_INPUT.md` "Identifiers".
    func stageSkipReport(_ skipped: SkippedValues, _ a: VerifiedAgreement, run: String, role: Role) throws
        -> AtomicOutputFile?
    {
        let path = skipReportPath(a, run: run, role: role)
        guard skipped.count > 0 else { return nil }
        try Files.makeDirectory(root, mode: 0o700)
        try Files.makeDirectory("\(root)/\(a.terms.collaborationID)", mode: 0o700)
        let out = try AtomicOutputFile(path: path, mode: 0o600)
        var line: [UInt8] = []
        func emit(_ text: String) throws {
            line.removeAll(keepingCapacity: true)
            line.append(contentsOf: text.utf8)
            try line.withUnsafeBytes { try out.append($0) }
        }
        try emit("row,column,rule\n")
        var written = 0
        try skipped.forEach { s in
            try emit("\(s.row),\(CSVField.quote(Array(s.column.utf8))),\(s.code)\n")
            written += 1
        }
        precondition(written == skipped.count, "every skip is listed")
        try out.sync()
        return out
    }
    /// The party's scratch space for a step's spill files (shuffle buckets, duplicate-check
    /// partitions): `<root>/scratch`, mode 0700, inside the private state directory, so spilled
    /// blinded values are kept as privately as the run's scalar. Files are unlinked at creation.
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".
    func scratch() throws(WorkflowError) -> DirectoryScratch {
        try Files.makeDirectory(root, mode: 0o700)
        return try DirectoryScratch(directory: "\(root)/scratch")
    }
}

/// The provider's storage, as the coordinator writes it and the provider reads it.
public protocol DeliveryDestination: Sendable {
    /// Writes the objects, then the manifest (the commit marker). Refuses a run already delivered.
    /// Throws `WorkflowError` (local) or `AWSError` (S3): the coordinator records the code.
    func deliver(_ plan: DeliveryPlan, collaborationID: String, runID: String) throws
    /// Reads a committed delivery back (the provider's own access): the manifest now, each object
    /// when the open asks for it. An object that must be copied to be read in pieces (S3) goes to
    /// a file of `scratch`, one object at a time.
    func read(collaborationID: String, runID: String, scratch: any ScratchSpace) throws -> ReceivedDelivery
}

extension DeliveryDestination {
    /// ``read(collaborationID:runID:scratch:)`` with in-memory scratch (each S3 object is then
    /// held while it is opened, one at a time): for reading only the manifest, and tests.
    public func read(collaborationID: String, runID: String) throws -> ReceivedDelivery {
        try read(collaborationID: collaborationID, runID: runID, scratch: MemoryScratch())
    }
}

/// Whether a name from a manifest (not yet verified when the destination reads it) is a plain
/// object name inside the run: the manifest decides which files are read.
func isObjectName(_ name: String) -> Bool { !name.isEmpty && !name.contains("/") && !name.hasPrefix(".") }

/// A local directory standing in for the provider's bucket: `<dir>/<collaboration>/<run>/`.
///
/// Objects are staged in a hidden sibling directory, the manifest is written last, and the
/// staging directory is renamed into place, so a reader never sees a partial delivery.
public struct LocalDirectoryDestination: DeliveryDestination {
    /// The directory standing in for the bucket.
    public let directory: String
    /// A destination under `directory`, created when the first delivery is staged.
    public init(directory: String) { self.directory = directory }

    /// Writes every object and then the manifest into a hidden `.staging-<run>-<random>` directory,
    /// then renames it to `<directory>/<collaboration>/<run>`: a reader never sees a partial delivery.
    /// - Throws: `workflow.already_exists` when the run was already delivered (also when another
    ///   coordinator's delivery wins the rename); `workflow.io` when a write fails. The staging
    ///   directory is removed on any error.
    public func deliver(_ plan: DeliveryPlan, collaborationID: String, runID: String) throws(WorkflowError) {
        let base = "\(directory)/\(collaborationID)"
        let final = "\(base)/\(runID)"
        if FileManager.default.fileExists(atPath: final) {
            throw WorkflowError(.alreadyExists, "run \(runID) was already delivered; a delivery is never overwritten")
        }
        let staging = "\(base)/.staging-\(runID)-\(Hex.encode(SecureRandom.bytes(4)))"
        do throws(WorkflowError) {
            try Files.makeDirectory(staging)
            for o in plan.objects {
                try Files.writeAtomically(to: "\(staging)/\(o.name)", exclusive: true) { emit throws(WorkflowError) in
                    do { try o.content.forEachChunk { b in try emit(b) } } catch let e as WorkflowError {
                        throw e
                    } catch {
                        throw WorkflowError(.io, "\(o.name): the delivery object cannot be read back (\(error))")
                    }
                }
            }
            try Files.writeAtomically(
                plan.manifest.json(), to: "\(staging)/\(DeliveryPlan.manifestName)", exclusive: true)
            // rename(2) of a directory onto an existing non-empty one fails: two coordinators cannot both deliver.
            guard rename(staging, final) == 0 else {
                let e = errno
                throw WorkflowError(
                    e == ENOTEMPTY || e == EEXIST ? .alreadyExists : .io,
                    "run \(runID): cannot commit the delivery (\(String(cString: strerror(e))))")
            }
            Files.syncDirectory(base)
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// Reads a committed delivery back: the manifest now (only parsed here; the open verifies it),
    /// each object in place when the open reaches it, so `scratch` is not used.
    /// - Throws: `workflow.not_found` without a manifest, `workflow.io` when it cannot be read,
    ///   `workflow.destination` when it is not a manifest or (at the object) names an object outside
    ///   the run.
    public func read(collaborationID: String, runID: String, scratch: any ScratchSpace) throws(WorkflowError)
        -> ReceivedDelivery
    {
        let dir = "\(directory)/\(collaborationID)/\(runID)"
        let manifestBytes = try Files.read("\(dir)/\(DeliveryPlan.manifestName)")
        guard (try? JSONDecoder().decode(SignedManifest.self, from: Data(manifestBytes))) != nil else {
            throw WorkflowError(.destination, "\(dir)/manifest.json is not a delivery manifest")
        }
        // Each object is read in place (pread), when the open reaches it.
        return ReceivedDelivery(manifestBytes: manifestBytes, expectedRunID: runID) { o throws(WorkflowError) in
            guard isObjectName(o.name) else {
                throw WorkflowError(.destination, "manifest names an object outside the run")
            }
            return try FileSource(path: "\(dir)/\(o.name)")
        }
    }
}

/// Reads a party's CSV, naming the file in every error.
public enum CSVInput {
    /// Every row in memory (small inputs and tests; the prepare steps stream with ``open(_:)``).
    public static func load(_ path: String) throws(Error) -> (header: Header, rows: [InputRow]) {
        let source = try open(path)
        var rows: [InputRow] = []
        while let r = try source.next() { rows.append(r) }
        return (source.header, rows)
    }

    /// The header, and the rows as a source that reads the file in chunks as a prepare asks for
    /// them (SPEC §9 "Bounded memory").
    public static func open(_ path: String) throws(Error) -> CSVRowSource {
        try CSVRowSource(reader: CSVReader(path: path, displayName: (path as NSString).lastPathComponent))
    }
}

/// A streamed CSV file as an ``InputRowSource``: one record at a time from ``CSVReader``, whose
/// errors (`csv.*`, naming file, row and line) pass through unchanged.
public final class CSVRowSource: InputRowSource {
    /// The file's header row.
    public let header: Header
    private var reader: CSVReader
    init(reader: consuming CSVReader) {
        header = reader.header
        self.reader = reader
    }
    /// The next record, or nil at the end of the file; `csv.*` errors pass through.
    public func next() throws -> InputRow? {
        guard let r = try reader.next() else { return nil }
        // One copy into the row's compact storage: no array per field.
        return r.withFieldStorage { bytes, ends in InputRow(row: r.row, bytes: bytes, ends: ends) }
    }
}

/// Gathers a streamed message and puts it with `If-None-Match: *` once signed.
final class S3MessageSink: MessageSink, @unchecked Sendable {
    let exchange: Exchange.S3Exchange
    let key: String
    let bytes = BytesSink()
    init(exchange: Exchange.S3Exchange, key: String) {
        self.exchange = exchange
        self.key = key
    }
    func begin(headerLength: Int) throws { try bytes.begin(headerLength: headerLength) }
    func append(_ b: UnsafeRawBufferPointer) throws { try bytes.append(b) }
    func finish(header: [UInt8], signature: [UInt8]) throws {
        try bytes.finish(header: header, signature: signature)
        _ = try exchange.writer.put(key: key, bytes: bytes.bytes)
    }
    func abandon() { bytes.abandon() }
}

/// Stages a streamed message's body in a scratch file, then puts header ‖ body ‖ signature with
/// `If-None-Match: *` once signed, read in pieces (one PutObject up to the writer's threshold,
/// else a multipart upload whose parts are read as they are sent): the message is never held.
final class S3StreamedMessageSink: MessageSink, @unchecked Sendable {
    let exchange: Exchange.S3Exchange
    let key: String
    let file: any ScratchFile
    private var headerLength = 0
    init(exchange: Exchange.S3Exchange, key: String, file: any ScratchFile) {
        self.exchange = exchange
        self.key = key
        self.file = file
    }
    func begin(headerLength: Int) throws { self.headerLength = headerLength }
    func append(_ b: UnsafeRawBufferPointer) throws { try file.append(b) }
    func finish(header: [UInt8], signature: [UInt8]) throws {
        precondition(header.count == headerLength, "header length changed after begin")
        defer { file.remove() }
        let parts = Parts(header: header, body: file, signature: signature)
        _ = try exchange.writer.put(key: key, size: parts.size) { offset, buffer in try parts.read(offset, buffer) }
    }
    func abandon() { file.remove() }

    /// The message as three consecutive pieces, read at any offset (calls are serialised by the writer).
    final class Parts: @unchecked Sendable {
        let header: [UInt8], body: any ScratchFile, signature: [UInt8]
        let bodySize: Int
        var size: Int { header.count + bodySize + signature.count }
        init(header: [UInt8], body: any ScratchFile, signature: [UInt8]) {
            self.header = header
            self.body = body
            self.signature = signature
            bodySize = body.size
        }
        func read(_ offset: Int, _ buffer: UnsafeMutableRawBufferPointer) throws {
            var at = offset
            var filled = 0
            while filled < buffer.count {
                let dst = UnsafeMutableRawBufferPointer(rebasing: buffer[filled...])
                let n: Int
                if at < header.count {
                    n = min(header.count - at, dst.count)
                    header.withUnsafeBytes { dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[at..<(at + n)])) }
                } else if at < header.count + bodySize {
                    n = min(header.count + bodySize - at, dst.count)
                    try body.read(at: at - header.count, into: UnsafeMutableRawBufferPointer(rebasing: dst[0..<n]))
                } else {
                    let s = at - header.count - bodySize
                    n = min(signature.count - s, dst.count)
                    guard n > 0 else { throw WorkflowError(.io, "read past the end of a staged message") }
                    signature.withUnsafeBytes {
                        dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[s..<(s + n)]))
                    }
                }
                filled += n
                at += n
            }
        }
    }
}
