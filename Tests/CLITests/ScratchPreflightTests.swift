import AuditLog
import Foundation
import RistrettoPSI
import Testing

@testable import Activation
@testable import Workflow

/// Round 5's free-space preflight (SPEC §9 "Coordinator (round 5)", §10 `workflow.disk_space`):
/// the need from the headers, the refusal's message, and a refused run that writes nothing,
/// records nothing and runs under the same run ID once there is room. The available bytes are
/// injected at the edge (a tiny file system cannot be mounted here).
@Suite("Coordinator free-space preflight")
struct ScratchPreflightTests {
    /// The 10M × 10M inputs of `cleanroom-bench --filter coordinator-scale` (plain keys, no
    /// member IDs), one with member IDs, and one that fits one partition (none on disk).
    typealias Inputs = ScratchPreflight.CoordinatorInputs
    static let needCases: [(Inputs, Int)] = [
        (
            Inputs(
                payloadCount: 10_000_000, payloadRecordSize: 138, consumerCount: 10_000_000, consumerRecordSize: 32,
                providerCount: 10_000_000),
            2_249_710_848
        ),  // payload copy 1.38 GB + partitions 0.8 GB less 157 × 64 KiB of staging + rows 80 MB; no attributes
        (
            Inputs(
                payloadCount: 1_000_000, payloadRecordSize: 178, consumerCount: 2_000_000, consumerRecordSize: 178,
                providerCount: 1_000_000),
            586_002_304
        ),  // 178 MB + attributes 2M × 146 + partitions 3M × 40 less 61 × 64 KiB; rows fit the budget
        (
            Inputs(
                payloadCount: 1_000, payloadRecordSize: 178, consumerCount: 1_000, consumerRecordSize: 32,
                providerCount: 1_000),
            178_000
        ),  // one partition: held in memory, only the payload copy on disk
    ]

    @Test("the need is the copies, the partitions and the rows file", arguments: needCases)
    func need(inputs: Inputs, expected: Int) {
        #expect(ScratchPreflight.coordinatorNeed(inputs, budget: 32 << 20) == expected)
    }

    @Test func refusalNamesTheDirectoryAndBothFigures() throws {
        #expect(throws: Never.self) { try ScratchPreflight.check(need: 100, available: 100, directory: "/s") }
        #expect(throws: Never.self) { try ScratchPreflight.check(need: 100, available: nil, directory: "/s") }
        do {
            try ScratchPreflight.check(need: 2_260_000_000, available: 1_000_000_000, directory: "/var/scratch")
            Issue.record("a shortfall was not refused")
        } catch {
            #expect(error.code == .diskSpace)
            #expect(error.code.rawValue == "workflow.disk_space")
            for part in ["/var/scratch", "2260000000", "1000000000", "nothing was written"] {
                #expect(error.reason.contains(part), "\(part) missing from: \(error.reason)")
            }
        }
    }

    @Test func availableBytesOfAMissingDirectoryIsItsParentFileSystems() throws {
        let tmp = NSTemporaryDirectory()
        let a = try #require(ScratchPreflight.availableBytes(at: tmp))
        #expect(a > 0)
        let b = try #require(ScratchPreflight.availableBytes(at: tmp + "/no/such/dir-\(UUID().uuidString)"))
        #expect(b > 0)
    }

    /// A run refused for space: `workflow.disk_space`, no audit entry, no delivery, no scratch
    /// left; the same run ID then runs and delivers once there is room.
    @Test func refusedRunKeepsItsRunID() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        var asked: [String] = []
        func match(available: Int?) throws -> Steps.MatchResult {
            let ledger = try AuditLedger(
                path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
            return try Steps.coordinatorMatch(
                agreement: room.agreement, identity: room.coordinator, runID: run, exchange: room.exchange,
                destination: try Steps.destination(for: room.agreement), ledger: ledger, store: room.store,
                availableScratchBytes: {
                    asked.append($0)
                    return available
                })
        }
        do {
            _ = try match(available: 1_000)
            Issue.record("the run was not refused")
        } catch let e as WorkflowError {
            #expect(e.code == .diskSpace)
            #expect(e.reason.contains(room.store.scratchDirectory))
        }
        #expect(asked == [room.store.scratchDirectory])
        #expect(try room.entry(run) == nil, "a space refusal must not use up the run ID")
        #expect(!room.delivered(run))
        let scratch = (try? FileManager.default.contentsOfDirectory(atPath: room.store.scratchDirectory)) ?? []
        #expect(scratch.isEmpty)
        let r = try match(available: nil)
        #expect(r.kind == .delivered)
        #expect(try room.entry(run)?.event.kind == .delivered)
        #expect(room.delivered(run))
    }
}

/// Rounds 3 and 4's free-space preflight (SPEC §9 "Bounded memory", rounds 3 and 4, step 1;
/// §10 `workflow.disk_space`): the footprint from the received header, the check per file
/// system, and a refused respond that writes nothing, keeps the run state and completes under
/// the same run ID once there is room.
@Suite("Respond free-space preflight")
struct RespondPreflightTests {
    /// (count, record size, shuffled (round 3), budget) → answer, scratch, shared need: what
    /// certainly reached the disk, each spilled piece less 64 KiB of buffers, the answer less 1 MiB.
    /// Piece counts are SpillBudget's: ⌈√⌊bytes / 32 KiB⌋⌉ above 1 MiB (at most 256), or more
    /// when a piece would exceed the budget.
    static let footprints: [(Int, Int, Bool, Int, Int, Int, Int)] = [
        // 10M consumer elements, plain (32-byte records), round 3: shuffle 320 MB in 99 buckets +
        // partitions 400 MB in 111, then the answer (320 MB) drained from the shuffle: the larger
        // need is the shuffle with the partitions. 318,951,424 = 320,000,000 − 1 MiB;
        // 706,237,440 = (400,000,000 − 111 × 64 KiB) + (320,000,000 − 99 × 64 KiB).
        (10_000_000, 32, true, 32 << 20, 318_951_424, 706_237_440, 706_237_440),
        // The same set in round 4: answer streamed while the partitions are held (both at once).
        (10_000_000, 32, false, 32 << 20, 318_951_424, 392_725_504, 711_676_928),
        // 1M records of 178 bytes (sealed attributes), round 3: shuffle 178 MB in 74 buckets +
        // partitions 40 MB in 35.
        (1_000_000, 178, true, 32 << 20, 176_951_424, 210_856_576, 210_856_576),
        // 100k: partitions (4 MB, 12 pieces) and shuffle (3.2 MB, 10 pieces) spill, though they
        // fit the budget: pieces of a few hundred KB hold less than one set (SpillBudget).
        (100_000, 32, true, 32 << 20, 2_151_424, 5_758_208, 5_758_208),
        (100_000, 32, false, 32 << 20, 2_151_424, 3_213_568, 5_364_992),
        // Smaller than the answer sink's buffer: nothing need reach the disk.
        (1_000, 32, false, 32 << 20, 0, 0, 0),
    ]

    @Test("the footprint is the answer and what spills", arguments: footprints)
    func footprint(_ c: (Int, Int, Bool, Int, Int, Int, Int)) {
        let f = RespondFootprint.of(count: c.0, recordSize: c.1, shuffled: c.2, budget: c.3)
        #expect(f.answerBytes == c.4)
        #expect(f.scratchBytes == c.5)
        #expect(f.sharedBytes == c.6)
        #expect(f.answerWhileScratchHeld == !c.2)
    }

    @Test func sharedFileSystemIsCheckedOnceForBoth() throws {
        let f = RespondFootprint(answerBytes: 300, scratchBytes: 400, answerWhileScratchHeld: true)
        var asked: [String] = []
        let sameDevice = { (_: String) -> UInt64? in 7 }
        func check(_ available: Int?, device: @escaping (String) -> UInt64? = sameDevice, answer: String? = "/ex/run")
            throws(WorkflowError)
        {
            try ScratchPreflight.checkRespond(
                f, scratchDirectory: "/state/scratch", answerDirectory: answer,
                available: {
                    asked.append($0)
                    return available
                }, device: device)
        }
        #expect(throws: Never.self) { try check(700) }
        #expect(asked == ["/state/scratch"])
        do {
            try check(699)
            Issue.record("a shortfall was not refused")
        } catch {
            #expect(error.code == .diskSpace)
            for part in ["/state/scratch", "700", "699", "/ex/run", "nothing was written", "run state is kept"] {
                #expect(error.reason.contains(part), "\(part) missing from: \(error.reason)")
            }
        }
        // On two file systems each is checked for its own part only.
        asked = []
        var counter: UInt64 = 0
        let twoDevices = { (_: String) -> UInt64? in
            counter += 1
            return counter
        }
        #expect(throws: Never.self) { try check(400, device: twoDevices) }
        #expect(asked == ["/ex/run", "/state/scratch"])
        #expect(#expect(throws: WorkflowError.self) { try check(399, device: twoDevices) }?.code == .diskSpace)
        // An S3 answer gathered in memory: only the scratch is on disk.
        asked = []
        #expect(throws: Never.self) { try check(400, answer: nil) }
        #expect(asked == ["/state/scratch"])
        // Unknown space passes (the step then fails with workflow.io if the disk fills).
        #expect(throws: Never.self) { try check(nil) }
    }

    @Test func roundThreeNeedsTheLargerOfShuffleAndAnswerOnOneFileSystem() throws {
        let f = RespondFootprint(answerBytes: 300, scratchBytes: 400, answerWhileScratchHeld: false)
        #expect(throws: Never.self) {
            try ScratchPreflight.checkRespond(
                f, scratchDirectory: "/s", answerDirectory: "/s", available: { _ in 400 }, device: { _ in nil })
        }
        let e = #expect(throws: WorkflowError.self) {
            try ScratchPreflight.checkRespond(
                f, scratchDirectory: "/s", answerDirectory: "/s", available: { _ in 399 }, device: { _ in nil })
        }
        #expect(e?.code == .diskSpace)
    }

    /// Both responds refused for space: `workflow.disk_space`, no answer (nor a temporary file) in
    /// the exchange, the run state kept; the same run then completes and matches.
    @Test func refusedRespondKeepsTheRun() throws {
        // Sets large enough that each answer certainly reaches the disk past the sink's 1 MiB
        // buffer (about 39,000 consumer and 48,000 provider elements of 32 bytes).
        let room = try PrivacyGuardsTests.Room(
            .init(minConsumerRows: 10, minMatchedRows: 5),
            data: SyntheticData(providerRows: 30_000, consumerRows: 30_000, overlap: 5_000))
        let run = AgreementTerms.newID()
        try room.providerPrepare(run)
        try room.consumerPrepare(run)
        let runDir = "\(room.root)/exchange/\(room.collaboration)/\(run)"
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: runDir))
        let providerState = StateStore(root: "\(room.root)/provider-state")
        let consumerState = StateStore(root: "\(room.root)/consumer-state")
        var asked: [String] = []
        do {
            _ = try Steps.providerRespond(
                agreement: room.agreement, identity: room.provider, runID: run, exchange: room.exchange,
                state: providerState,
                availableBytes: {
                    asked.append($0)
                    return 1_000
                })
            Issue.record("round 3 was not refused")
        } catch let e as WorkflowError {
            #expect(e.code == .diskSpace)
            #expect(e.reason.contains(runDir))
        }
        #expect(
            asked == ["\(room.root)/provider-state/scratch"], "one file system: checked once, at the scratch directory")
        do {
            _ = try Steps.consumerRespond(
                agreement: room.agreement, signingKey: room.consumer.signingKey, runID: run, exchange: room.exchange,
                state: consumerState, availableBytes: { _ in 1_000 })
            Issue.record("round 4 was not refused")
        } catch let e as WorkflowError {
            #expect(e.code == .diskSpace)
        }
        #expect(
            Set(try FileManager.default.contentsOfDirectory(atPath: runDir)) == before,
            "nothing written, not even a temporary file")
        #expect(FileManager.default.fileExists(atPath: providerState.path(room.agreement, run: run, role: .provider)))
        #expect(FileManager.default.fileExists(atPath: consumerState.path(room.agreement, run: run, role: .consumer)))
        try room.respond(run)
        #expect(try room.match(run).kind == .delivered)
    }
}
