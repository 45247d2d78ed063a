import Activation
import Foundation
import RistrettoPSI

#if canImport(Glibc)
import Glibc
#endif

/// Free-space preflights. Round 5's: from the three inputs' headers alone, the scratch space the
/// coordinator will certainly hold, checked against what the scratch directory's file system has
/// free, before any body byte is read, so a run that cannot fit is refused without using up its
/// run ID (no audit entry, nothing written).
///
/// The need is a lower bound, so the check never refuses a run that could have completed: while
/// the sets are joined, the scratch holds the payload's private copy (`n_p` × payload record),
/// the consumer's attribute copy (`n_c` × (record − 32)), the element partitions (40 bytes per
/// element of both sets) and, beyond the spill budget, the rows file (8 bytes per provider
/// position). What comes after depends on how many rows match (sorted runs 56 bytes and winners
/// 16 bytes per match, the delivery objects), unknown before the join: a run admitted here can
/// still fail with `workflow.io` if the matches do not fit.
///
/// Rounds 3 and 4's (``checkRespond(_:scratchDirectory:answerDirectory:available:device:)``): the
/// answer and the spilled scratch, from the received set's header.
/// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory", "Coordinator (round 5)"; §10 `workflow.disk_space`.
public enum ScratchPreflight {
    /// What the inputs' headers say.
    public struct CoordinatorInputs: Sendable, Equatable {
        /// Records in the provider's payload (round 1').
        public var payloadCount: Int
        /// Bytes per payload record.
        public var payloadRecordSize: Int
        /// Records in the consumer's set as the provider re-blinded it (round 3).
        public var consumerCount: Int
        /// Bytes per round-3 record: a 32-byte element, then the sealed attributes.
        public var consumerRecordSize: Int
        /// Elements in the provider's set as the consumer re-blinded it (round 4).
        public var providerCount: Int
        /// The figures as given (tests; the match uses ``init(_:)``).
        public init(
            payloadCount: Int, payloadRecordSize: Int, consumerCount: Int, consumerRecordSize: Int, providerCount: Int
        ) {
            self.payloadCount = payloadCount
            self.payloadRecordSize = payloadRecordSize
            self.consumerCount = consumerCount
            self.consumerRecordSize = consumerRecordSize
            self.providerCount = providerCount
        }

        /// What the match's first step verified (``Coordinator/open(runID:payload:consumerSet:providerSet:history:names:)``):
        /// the headers are read and their signatures checked once, by the match, not again here.
        public init(_ inputs: Coordinator.MatchInputs) {
            self.init(
                payloadCount: inputs.payloadHeader.count, payloadRecordSize: inputs.payloadHeader.recordSize,
                consumerCount: inputs.consumerSetHeader.count, consumerRecordSize: inputs.consumerSetHeader.recordSize,
                providerCount: inputs.providerSetHeader.count)
        }
    }

    /// Bytes of scratch round 5 certainly holds at once for these inputs (see the type's note).
    public static func coordinatorNeed(_ i: CoordinatorInputs, budget: Int = SpillBudget.bytes) -> Int {
        let payloadCopy = i.payloadCount * i.payloadRecordSize
        let attributeCopy = i.consumerCount * max(0, i.consumerRecordSize - 32)
        // Element partitions: 40 bytes an element, both sides. One partition pair stays in memory
        // only when there is one partition; otherwise all but what the two sides' staging buffers
        // of each partition may still hold reaches the disk.
        let partitionBytes = (i.consumerCount + i.providerCount) * 40
        let partitionCount = SpillBudget.pieces(
            count: i.consumerCount + i.providerCount, recordSize: 40, budget: budget)
        let partitions =
            partitionCount > 1 ? max(0, partitionBytes - partitionCount * RespondFootprint.bufferedPerPiece) : 0
        let rows = i.payloadCount * 8 > budget ? i.payloadCount * 8 : 0
        return payloadCopy + attributeCopy + partitions + rows
    }

    /// Refuses (`workflow.disk_space`) when `available` bytes are fewer than `need`; the message
    /// names the directory, both figures and what to do. `available` nil (unknown) passes.
    public static func check(need: Int, available: Int?, directory: String) throws(WorkflowError) {
        guard let available, available < need else { return }
        throw WorkflowError(
            .diskSpace,
            "\(directory): the coordinator's scratch needs at least \(need) bytes for these inputs (payload and attribute copies, element partitions), the file system has \(available) bytes available; free space or set TMPDIR (or --state-dir) to a larger file system, then run the same command again (nothing was written, the run ID is not used)"
        )
    }

    /// Rounds 3 and 4: refuses (`workflow.disk_space`) a respond whose answer and scratch do not
    /// fit where they go, from the footprint its verified header gives (``RespondFootprint``).
    ///
    /// `answerDirectory` is where the answer's body is written (a local exchange's run directory,
    /// or the staging directory of an S3 exchange; nil when an S3 answer is gathered in memory).
    /// When it shares a file system with `scratchDirectory` (same `st_dev`, or the same path) the
    /// two needs are checked together (``RespondFootprint/sharedBytes``), else each on its own.
    /// Unknown available space passes, like ``check(need:available:directory:)``.
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory" (rounds 3 and 4, step 1), §10 `workflow.disk_space`.
    public static func checkRespond(
        _ f: RespondFootprint, scratchDirectory: String, answerDirectory: String?,
        available: (String) -> Int? = availableBytes(at:),
        device: (String) -> UInt64? = device(at:)
    ) throws(WorkflowError) {
        func refuse(_ dir: String, need: Int, parts: String) throws(WorkflowError) {
            guard need > 0, let have = available(dir), have < need else { return }
            throw WorkflowError(
                .diskSpace,
                "\(dir): this respond needs at least \(need) bytes there (\(parts)), the file system has \(have) bytes available; free space or move the state directory or the exchange to a larger file system, then run the same command again (nothing was written; the run state is kept, so the same run ID completes once there is room)"
            )
        }
        let answer = "the answer \(f.answerBytes)"
        let scratch = "spilled shuffle and duplicate check \(f.scratchBytes)"
        guard let answerDirectory else {
            try refuse(scratchDirectory, need: f.scratchBytes, parts: scratch)
            return
        }
        let shared = sameFileSystem(answerDirectory, scratchDirectory, device: device)
        if shared {
            let parts =
                f.answerWhileScratchHeld
                ? "\(answer) while the \(scratch) is held"
                : "the larger of \(scratch) and \(answer), written after it"
            try refuse(
                scratchDirectory, need: f.sharedBytes, parts: parts + "; \(answerDirectory) is on the same file system")
        } else {
            try refuse(answerDirectory, need: f.answerBytes, parts: answer)
            try refuse(scratchDirectory, need: f.scratchBytes, parts: scratch)
        }
    }

    /// An S3 message about to be downloaded into `directory` (an exchange's staging directory):
    /// refuses (`workflow.disk_space`) when the object's `size` exceeds the `available` bytes
    /// there; unknown available space passes.
    /// - SeeAlso: `Protocol/SPEC.md` §12.7 "Exchanges on S3".
    public static func checkDownload(
        size: Int, of object: String, into directory: String, available: Int?,
        remedy: String = downloadRemedy
    ) throws(WorkflowError) {
        guard let available, available < size else { return }
        throw WorkflowError(
            .diskSpace,
            "\(directory): downloading \(object) needs \(size) bytes there, the file system has \(available) bytes available; \(remedy)"
        )
    }

    /// What a step that downloads an exchange message says to do.
    public static let downloadRemedy =
        "free space or move the state directory (the coordinator: its audit database's private store) to a larger file system, then run the same command again (nothing was kept, the run state and the run ID are still usable)"
    /// What `provider open` says: its scratch sits beside the output.
    public static let openRemedy =
        "free space there or write --out to a larger file system, then run the same command again (the output was not written; the delivery is unchanged and can be opened again)"

    /// Whether `a` and `b` are on one file system: the same path, or the same known device.
    public static func sameFileSystem(_ a: String, _ b: String, device: (String) -> UInt64? = device(at:)) -> Bool {
        a == b || device(a).map { $0 == device(b) } == true
    }

    /// Bytes available to this user on the file system holding `directory` (or its nearest
    /// existing parent): `statvfs`'s `f_bavail × f_frsize`, or `f_bfree × f_frsize` for root,
    /// who may also write the blocks reserved for it (so a check never refuses what root could
    /// complete); nil if it cannot be asked.
    public static func availableBytes(at directory: String) -> Int? {
        guard let path = nearestExisting(directory) else { return nil }
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        let blocks = geteuid() == 0 ? s.f_bfree : s.f_bavail
        let (bytes, overflow) = Int(blocks).multipliedReportingOverflow(by: Int(s.f_frsize))
        return overflow ? Int.max : bytes
    }

    /// The device (`stat`'s `st_dev`) of the file system holding `directory` (or its nearest
    /// existing parent); nil if it cannot be asked.
    public static func device(at directory: String) -> UInt64? {
        guard let path = nearestExisting(directory) else { return nil }
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_dev)
    }

    static func nearestExisting(_ directory: String) -> String? {
        var path = directory.isEmpty ? "." : directory
        while !FileManager.default.fileExists(atPath: path) {
            let parent = (path as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != path else { return nil }
            path = parent
        }
        return path
    }
}
