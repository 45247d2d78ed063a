import Foundation
import Testing
import RistrettoPSI
import Activation
import AuditLog
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
        (Inputs(payloadCount: 10_000_000, payloadRecordSize: 138, consumerCount: 10_000_000, consumerRecordSize: 32, providerCount: 10_000_000),
         2_260_000_000),    // payload copy 1.38 GB + partitions 0.8 GB + rows 80 MB; no attributes
        (Inputs(payloadCount: 1_000_000, payloadRecordSize: 178, consumerCount: 2_000_000, consumerRecordSize: 178, providerCount: 1_000_000),
         590_000_000),      // 178 MB + attributes 2M × 146 + partitions 3M × 40; rows fit the budget
        (Inputs(payloadCount: 1_000, payloadRecordSize: 178, consumerCount: 1_000, consumerRecordSize: 32, providerCount: 1_000),
         178_000),          // one partition: held in memory, only the payload copy on disk
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
            let ledger = try AuditLedger(path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
            return try Steps.coordinatorMatch(agreement: room.agreement, identity: room.coordinator, runID: run, exchange: room.exchange,
                                              destination: try Steps.destination(for: room.agreement), ledger: ledger, store: room.store,
                                              availableScratchBytes: { asked.append($0); return available })
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
