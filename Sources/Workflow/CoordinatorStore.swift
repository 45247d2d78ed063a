import Activation
import Foundation
import RistrettoPSI

#if canImport(Glibc)
import Glibc
#endif

/// The coordinator's private store, beside its audit log and never shared with either party:
/// each run's matched-set sketch (differencing detection) and each run's lock file.
///
/// Layout: `<root>/<collaboration>/<run>.sketch` (mode 0600) and `<root>/<collaboration>/collaboration.lock`.
/// The directory is mode 0700. Sketches hold keyed 64-bit tags of provider row positions, never an
/// identifier, blinded value or count (`Protocol/SPEC.md` §9.1).
///
/// Thread-safety: value type; the lock is a kernel `flock`, so coordinators on one machine (or on
/// one file system that honours `flock`) exclude each other, and a killed coordinator's lock is
/// released by the kernel.
/// - SeeAlso: `Protocol/SPEC.md` §9.1 "Differencing", §9.2 "Faults".
public struct CoordinatorStore: Sendable {
    /// The store's directory, `<audit-db>.private` as the CLI opens it (``beside(auditDB:)``).
    public let root: String
    /// A store at `root`; its directories are created (mode 0700) when first used.
    public init(root: String) { self.root = root }

    /// The store that belongs to the audit log at `path`: `<path>.private`.
    public static func beside(auditDB path: String) -> CoordinatorStore { CoordinatorStore(root: path + ".private") }

    func directory(_ collaborationID: String) -> String { "\(root)/\(collaborationID)" }

    /// Where the coordinator's matching spills (join partitions, sorted matches, private copies of
    /// the inputs, delivery objects): `<root>/scratch`, mode 0700, its files unlinked at creation
    /// (SPEC §9 "Bounded memory", "Coordinator").
    public var scratchDirectory: String { "\(root)/scratch" }

    /// Every stored sketch of the collaboration.
    /// - Throws: `WorkflowError.io` for an unreadable file, `ActivationError.stateInvalid` for a malformed one.
    public func sketches(collaborationID: String) throws(Error) -> [RunSketch] {
        let dir = directory(collaborationID)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var out: [RunSketch] = []
        for n in names.sorted() where n.hasSuffix(".sketch") && !n.hasPrefix(".") {
            out.append(try RunSketch(parsing: try Files.read("\(dir)/\(n)"), source: "\(dir)/\(n)"))
        }
        return out
    }

    /// Stores (or, for a retried run, replaces) a run's sketch, durably.
    public func save(_ sketch: RunSketch, collaborationID: String) throws(WorkflowError) {
        try Files.makeDirectory(root, mode: 0o700)
        try Files.makeDirectory(directory(collaborationID), mode: 0o700)
        try Files.writeAtomically(
            sketch.serialized(), to: "\(directory(collaborationID))/\(sketch.runID).sketch", mode: 0o600)
    }

    /// Takes the lock for matching `runID` without waiting. The lock is per collaboration, not per
    /// run: the run cap, the privacy budget and the near-duplicate check each read earlier runs and
    /// then add one, so two runs of one collaboration must not interleave either.
    /// - Throws: `ActivationError.runInProgress` when another coordinator holds it; `WorkflowError.io`.
    public func lock(collaborationID: String, runID: String) throws(Error) -> RunLock {
        try Files.makeDirectory(root, mode: 0o700)
        try Files.makeDirectory(directory(collaborationID), mode: 0o700)
        let path = "\(directory(collaborationID))/collaboration.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw WorkflowError(.io, "\(path): cannot open the run lock (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            if e == EWOULDBLOCK {
                throw ActivationError(
                    .runInProgress,
                    "another coordinator is matching a run of this collaboration right now; run \(runID) stops without delivering (retry it when that one ends)"
                )
            }
            throw WorkflowError(.io, "\(path): cannot lock (\(String(cString: strerror(e))))")
        }
        return RunLock(fd: fd)
    }
}

/// A held run lock; released on ``release()``, on deinit, or by the kernel if the process dies.
public final class RunLock: @unchecked Sendable {
    private var fd: Int32
    init(fd: Int32) { self.fd = fd }
    /// Unlocks and closes the lock file; a second call does nothing.
    public func release() {
        // Unlocked explicitly before the close: a child process forked by another thread holds a
        // copy of the descriptor until its exec closes it (O_CLOEXEC acts only at exec), and a
        // flock belongs to the open file description, so a close alone could leave the lock held
        // for that moment and refuse the next run with activation.run_in_progress.
        if fd >= 0 {
            flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }
    deinit { release() }
}

extension LocalDirectoryDestination {
    /// Removes staging directories a killed coordinator left for `runID` (never a committed
    /// delivery). Only called while holding the run's lock, so no live delivery is staging there.
    func removeStaleStaging(collaborationID: String, runID: String) {
        let base = "\(directory)/\(collaborationID)"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for n in names where n.hasPrefix(".staging-\(runID)-") {
            try? FileManager.default.removeItem(atPath: "\(base)/\(n)")
        }
    }
}

extension RunEvent {
    /// A run event as the coordinator records it (public so a ledger can be exercised directly).
    public init(
        _ kind: Kind, collaborationID: String, runID: String, agreementHash: [UInt8], counts: MatchCounts,
        deliveredObjects: Int, manifestSHA256: [UInt8]?, reasonCode: String?
    ) {
        self.kind = kind
        self.collaborationID = collaborationID
        self.runID = runID
        self.agreementHash = agreementHash
        self.counts = counts
        self.deliveredObjects = deliveredObjects
        self.manifestSHA256 = manifestSHA256
        self.reasonCode = reasonCode
    }
}

/// What the coordinator records privately just before it writes a delivery's manifest to S3
/// (write-ahead), so a retry of a run killed between that write and its audit entry can record
/// the delivery without reading the provider's bucket (its role may only write there).
///
/// Holds the agreement hash, the manifest's SHA-256, a digest of the object list (names and
/// SHA-256s) and the object count: no identifier, blinded value or matched-row count (under
/// noise the audit log holds only noisy counts, so the exact count is not kept here either).
/// - SeeAlso: `Protocol/SPEC.md` §12.8 "Crash after the manifest".
public struct DeliveryIntent: Equatable, Sendable, Codable {
    /// The run the delivery is for.
    public let runID: String
    /// The agreement's hash, lowercase hex.
    public let agreementHash: String
    /// The SHA-256 of the manifest about to be written, lowercase hex.
    public let manifestSHA256: String
    /// SHA-256 over `name NUL sha256 LF` for each object in manifest order, lowercase hex.
    public let objectsDigest: String
    /// The number of delivery objects.
    public let objects: Int

    /// The intent of delivering `plan` for `runID` under `agreement`.
    public init(_ plan: DeliveryPlan, agreement: VerifiedAgreement, runID: String) {
        self.runID = runID
        agreementHash = Hex.encode(agreement.hash)
        manifestSHA256 = Hex.encode(plan.manifest.sha256)
        objectsDigest = Self.digest(plan.manifest.manifest.objects)
        objects = plan.objects.count
    }

    /// SHA-256 over `name NUL sha256 LF` for each object in manifest order: equal digests mean
    /// byte-identical objects under the same names.
    static func digest(_ objects: [Manifest.Object]) -> String {
        Hex.encode(SHA256.hash(Array(objects.map { "\($0.name)\u{0}\($0.sha256)\n" }.joined().utf8)))
    }
}

extension CoordinatorStore {
    func intentPath(_ collaborationID: String, _ runID: String) -> String {
        "\(directory(collaborationID))/\(runID).intent"
    }

    /// Records `intent` durably (mode 0600) before the manifest is written.
    public func saveIntent(_ intent: DeliveryIntent, collaborationID: String) throws(WorkflowError) {
        try Files.makeDirectory(root, mode: 0o700)
        try Files.makeDirectory(directory(collaborationID), mode: 0o700)
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        try Files.writeAtomically(
            Array(try! e.encode(intent)), to: intentPath(collaborationID, intent.runID), mode: 0o600)
    }

    /// The intent recorded for `runID`, or nil when there is none.
    /// - Throws: `ActivationError.stateInvalid` for a malformed record.
    public func intent(collaborationID: String, runID: String) throws(Error) -> DeliveryIntent? {
        let p = intentPath(collaborationID, runID)
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        let bytes = try Files.read(p)
        guard let i = try? JSONDecoder().decode(DeliveryIntent.self, from: Data(bytes)), i.runID == runID else {
            throw ActivationError(.stateInvalid, "\(p): not a delivery intent record for this run")
        }
        return i
    }

    /// Drops the intent once the run's audit entry is recorded.
    public func removeIntent(collaborationID: String, runID: String) {
        unlink(intentPath(collaborationID, runID))
    }
}
