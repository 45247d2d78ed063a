import Activation
import AuditLog
import Foundation
import RistrettoPSI
import TestSupport
import Testing
import Workflow

/// The coordinator's privacy guards through the real edges: each role step with its files, the
/// SQLite audit log (reopened for every run, so every rule is counted from the log) and the
/// coordinator-private sketch store. Each refusal has its own code, delivers nothing and leaves
/// an audit entry.
@Suite("Privacy guards through the audit log", .serialized)
struct PrivacyGuardsTests {
    /// One collaboration in a scratch directory, its roles driven in process through `Steps`.
    final class Room {
        let root: String
        let consumer = PartyIdentity.generate(), provider = PartyIdentity.generate(),
            coordinator = PartyIdentity.generate()
        let agreement: VerifiedAgreement
        let data: SyntheticData
        var exchange: Exchange { Exchange(root: "\(root)/exchange") }
        var bucket: String { "\(root)/bucket" }
        var auditPath: String { "\(root)/coordinator/audit.sqlite" }
        var store: CoordinatorStore { CoordinatorStore.beside(auditDB: auditPath) }
        var collaboration: String { agreement.terms.collaborationID }

        /// `destination` nil: a local bucket directory under `root`.
        init(
            _ privacy: AgreementTerms.Privacy,
            data: SyntheticData = SyntheticData(providerRows: 400, consumerRows: 300, overlap: 200),
            collaborationID: String = AgreementTerms.newID(), externalID: String = AgreementTerms.newID(),
            destination: AgreementTerms.Destination? = nil
        ) throws {
            root =
                FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-guards-\(UUID().uuidString)")
                .path
            try FileManager.default.createDirectory(atPath: "\(root)/coordinator", withIntermediateDirectories: true)
            self.data = data
            try Data(data.providerCSV).write(to: URL(fileURLWithPath: "\(root)/audience.csv"))
            try Data(data.consumerCSV).write(to: URL(fileURLWithPath: "\(root)/customers.csv"))
            let terms = AgreementTerms(
                collaborationID: collaborationID, externalID: externalID, createdAt: Date(),
                expiresAt: Date().addingTimeInterval(30 * 86_400),
                consumer: .init(name: "Retailer", signingKey: consumer.signingKey.verifyingKey.hex),
                provider: .init(
                    name: "Media", signingKey: provider.signingKey.verifyingKey.hex,
                    sealingKey: provider.sealingKey.publicKey.hex),
                coordinator: .init(
                    name: "Coordinator", signingKey: coordinator.signingKey.verifyingKey.hex,
                    sealingKey: coordinator.sealingKey.publicKey.hex),
                matching: .init(identifierTypes: ["email", "phone", "maid"], defaultCountryCallingCode: "1"),
                output: .init(), privacy: privacy,
                destination: destination ?? .init(kind: "local", directory: "\(root)/bucket"))
            var signed = SignedAgreement(terms: terms)
            try signed.sign(as: .consumer, with: consumer.signingKey)
            try signed.sign(as: .provider, with: provider.signingKey)
            agreement = try signed.verified()
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// Rounds 1–4 for a new run, the consumer's query narrowed by `filters` or read from `input`.
        func prepare(filters: [(column: String, values: [String])] = [], input: String? = nil) throws -> String {
            let run = AgreementTerms.newID()
            try providerPrepare(run)
            try consumerPrepare(run, filters: filters, input: input)
            try respond(run)
            return run
        }
        func providerPrepare(_ run: String) throws {
            _ = try Steps.providerPrepare(
                agreement: agreement, identity: provider, input: "\(root)/audience.csv",
                columns: ColumnSpec([(.email, "email"), (.phone, "phone"), (.mobileAdID, "mobile_ad_id")]),
                audienceKeyColumn: "audience_id", runID: run, exchange: exchange,
                state: StateStore(root: "\(root)/provider-state"), policy: .reject)
        }
        func consumerPrepare(_ run: String, filters: [(column: String, values: [String])] = [], input: String? = nil)
            throws
        {
            _ = try Steps.consumerPrepare(
                agreement: agreement, signingKey: consumer.signingKey, input: input ?? "\(root)/customers.csv",
                columns: ColumnSpec([(.email, "email"), (.phone, "phone")]), filters: filters,
                consent: ["ads_consent"], memberIDColumn: nil, segmentID: "seg", segmentName: "Segment",
                runID: run, exchange: exchange, state: StateStore(root: "\(root)/consumer-state"),
                policy: .skipAndReport)
        }
        func respond(_ run: String) throws {
            _ = try Steps.providerRespond(
                agreement: agreement, identity: provider, runID: run, exchange: exchange,
                state: StateStore(root: "\(root)/provider-state"))
            _ = try Steps.consumerRespond(
                agreement: agreement, signingKey: consumer.signingKey, runID: run, exchange: exchange,
                state: StateStore(root: "\(root)/consumer-state"))
        }

        /// Round 5 with a freshly opened audit log, as a separate coordinator process would.
        func match(_ run: String, now: Date = Date()) throws -> Steps.MatchResult {
            let ledger = try AuditLedger(path: auditPath, signingKey: coordinator.signingKey, agreement: agreement)
            return try Steps.coordinatorMatch(
                agreement: agreement, identity: coordinator, runID: run, exchange: exchange,
                destination: try Steps.destination(for: agreement), ledger: ledger, store: store, now: now)
        }

        /// The refusal's code, or nil when the run was not refused.
        func refusal(_ run: String, now: Date = Date()) throws -> ActivationError.Code? {
            do {
                _ = try match(run, now: now)
                return nil
            } catch let e as ActivationError { return e.code }
        }

        func entry(_ run: String) throws -> AuditEntry? {
            try AuditLog.openReadOnly(at: auditPath).entries(collaborationID: collaboration).last {
                $0.event.runID == run
            }
        }
        func delivered(_ run: String) -> Bool {
            FileManager.default.fileExists(atPath: "\(bucket)/\(collaboration)/\(run)")
        }
        func verifies() throws -> Int {
            try AuditLog.openReadOnly(at: auditPath).verify(pinnedKey: coordinator.signingKey.verifyingKey).entryCount
        }
    }

    /// Checks a refused run: its own code, nothing delivered, an audit entry `rejected` with that code.
    static func expectRefused(_ room: Room, _ run: String, _ code: ActivationError.Code, now: Date = Date()) throws {
        #expect(try room.refusal(run, now: now) == code)
        #expect(!room.delivered(run), "a refused run delivers nothing")
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .rejected)
        #expect(e.event.reasonCode == code.rawValue)
        #expect(e.event.matchedRowsDelivered == 0)
    }

    @Test func tooFewConsumerIdentifiersIsRefusedAndRecorded() throws {
        let room = try Room(.init(minConsumerRows: 100_000, minMatchedRows: 10))
        try Self.expectRefused(room, try room.prepare(), .belowMinimumConsumerRows)
        #expect(try room.verifies() == 1)
    }

    @Test func fewerThanKMatchedRowsDeliversNothingAndIsRecorded() throws {
        let room = try Room(.init(minConsumerRows: 10, minMatchedRows: 100_000))
        let run = try room.prepare()
        let r = try room.match(run)
        #expect(r.kind == .belowThreshold)
        #expect(!room.delivered(run))
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .belowThreshold && e.event.reasonCode == ActivationError.Code.belowThreshold.rawValue)
        #expect(e.event.matchedRowsDelivered == 0)
    }

    /// Frequency capping counted from the audit log: two runs in the window, the third refused
    /// (rejected runs do not count), and allowed again once the window has passed.
    @Test func runsBeyondTheWindowCapAreRefusedCountedFromTheLog() throws {
        let room = try Room(
            .init(
                minConsumerRows: 10, minMatchedRows: 5, maxRunsPerWindow: 2, windowSeconds: 3600,
                maxRunSimilarityPercent: 0))
        #expect(try room.match(try room.prepare(filters: [("loyalty_tier", ["gold"])])).kind == .delivered)
        #expect(try room.match(try room.prepare(filters: [("loyalty_tier", ["silver"])])).kind == .delivered)
        let third = try room.prepare()
        try Self.expectRefused(room, third, .runLimitReached)
        let fourth = try room.prepare()
        // the rejected third did not use up a slot, but the cap holds
        try Self.expectRefused(room, fourth, .runLimitReached)
        // An hour later the window has moved past all four entries.
        #expect(try room.match(try room.prepare(), now: Date().addingTimeInterval(3601)).kind == .delivered)
        #expect(try room.verifies() == 5)
    }

    /// Differencing: re-running with the list minus a few matching people is refused as a near
    /// duplicate (and so is the same list again), while a genuinely different segment runs.
    @Test func reRunDifferingByAFewPeopleIsRefused() throws {
        let room = try Room(.init(minConsumerRows: 10, minMatchedRows: 5, maxRunsPerWindow: 10))
        let first = try room.prepare()
        let r = try room.match(first)
        #expect(r.kind == .delivered)
        #expect(r.counts.matchedRows == room.data.expectedAudienceKeys.count)

        // The same customers minus three that match (rows of people in the overlap).
        let lines = String(decoding: room.data.consumerCSV, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false)
        let fewer = "\(room.root)/customers-minus-3.csv"
        var dropped = 0
        let kept = lines.enumerated().filter { i, l in
            guard i > 0, dropped < 3, l.hasSuffix(",yes"),
                l.split(separator: ",", omittingEmptySubsequences: false)[1] != ""
            else { return true }
            dropped += 1
            return false
        }.map(\.element)
        try Data(kept.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: fewer))
        try Self.expectRefused(room, try room.prepare(input: fewer), .nearDuplicateRun)
        try Self.expectRefused(room, try room.prepare(), .nearDuplicateRun)

        // Near-duplicate refusals count toward the cap (probing the threshold is not free).
        let history = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement
        )
        .history(collaborationID: room.collaboration, windowSeconds: 86_400, now: Date())
        #expect(history.runsInWindow == 3)

        // Gold members only: about half the matched set, below the 90 % similarity threshold.
        #expect(try room.match(try room.prepare(filters: [("loyalty_tier", ["gold"])])).kind == .delivered)
        #expect(try room.verifies() == 4)

        // The private store holds sketches only: tags, no identifier, audience key or count.
        let dir = "\(room.store.root)/\(room.collaboration)"
        let sketches = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".sketch") }
        #expect(sketches.count == 2, "only runs that reached the match decision leave a sketch")
        let consumerText = String(decoding: room.data.consumerCSV, as: UTF8.self)
        for name in sketches {
            let text = try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)
            #expect(
                (try FileManager.default.attributesOfItem(atPath: "\(dir)/\(name)")[.posixPermissions] as? Int) == 0o600
            )
            for key in room.data.expectedAudienceKeys { #expect(!text.contains(key)) }
            for line in text.split(separator: "\n").dropFirst(2) {
                #expect(line.count == 16 && !consumerText.contains(line))
            }
        }
        // Nothing of the sketch reaches the consumer-readable log.
        let auditBytes = try Data(contentsOf: URL(fileURLWithPath: room.auditPath))
        for name in sketches {
            for line in try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8).split(separator: "\n").dropFirst(
                2
            ).prefix(20) {
                #expect(auditBytes.range(of: Data(line.utf8)) == nil)
            }
        }
    }

    /// Differential privacy: the log records the noisy count and the ε spent; the budget, summed
    /// from the log, refuses the run that would exceed it.
    @Test func noisyCountsAndTheBudgetLiveInTheLog() throws {
        let noise = AgreementTerms.Privacy.Noise(epsilonMillis: 1000, budgetMillis: 2500)
        let room = try Room(
            .init(
                minConsumerRows: 10, minMatchedRows: 5, maxRunsPerWindow: 10, maxRunSimilarityPercent: 0, noise: noise))
        var results: [(String, Steps.MatchResult)] = []
        for _ in 0..<2 {
            let run = try room.prepare()
            results.append((run, try room.match(run)))
        }
        for (run, r) in results {
            let e = try #require(try room.entry(run))
            #expect(e.event.privacyEpsilonMillis == 1000)
            #expect(r.counts.noisyMatchedRows != nil)
            if r.kind == .delivered { #expect(e.event.matchedRowsDelivered == r.counts.noisyMatchedRows) }
        }
        #expect(
            try AuditLog.openReadOnly(at: room.auditPath).epsilonSpentMillis(collaborationID: room.collaboration)
                == 2000)
        let third = try room.prepare()
        try Self.expectRefused(room, third, .privacyBudgetExhausted)
        #expect(try room.entry(third)?.event.privacyEpsilonMillis == nil, "a refused run spends nothing")
        #expect(try room.verifies() == 3)
        let show = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement
        )
        .consumerView(collaborationID: room.collaboration)
        #expect(show.contains("ε 1.000 spent"))
        let cli = try CLI.run(["audit", "show", "--db", room.auditPath, "--collaboration", room.collaboration])
        #expect(cli.status == 0 && cli.stdout.contains("differential privacy: ε 2.000 spent"), "\(cli.stdout)")
    }

    /// The ledger's contract under noise: the exact count never reaches the log, in any column.
    @Test func exactCountIsNotInTheLogUnderNoise() throws {
        let room = try Room(
            .init(minConsumerRows: 10, minMatchedRows: 5, noise: .init(epsilonMillis: 500, budgetMillis: 5000)))
        let ledger = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
        var counts = MatchCounts()
        counts.consumerRows = 300
        counts.consumerIdentifiers = 420
        counts.providerElements = 900
        counts.matchedElements = 1300
        counts.matchedRows = 1234
        counts.noisyMatchedRows = 1251
        counts.epsilonMillis = 500
        try ledger.record(
            RunEvent(
                .delivered, collaborationID: room.collaboration, runID: AgreementTerms.newID(),
                agreementHash: room.agreement.hash, counts: counts, deliveredObjects: 1,
                manifestSHA256: SHA256.hash([1]), reasonCode: nil))
        let e = try #require(try AuditLog.openReadOnly(at: room.auditPath).entries().first)
        #expect(e.event.matchedRowsDelivered == 1251)
        let numbers = [
            e.event.consumerRowsProcessed, e.event.consumerIdentifiersProcessed, e.event.matchedRowsDelivered,
            e.event.deliveredObjectCount, e.event.privacyEpsilonMillis ?? 0,
        ]
        #expect(!numbers.contains(1234))
    }

    /// The same person's data in two runs: every value the coordinator receives differs (fresh
    /// scalars), yet the matched sets agree, which is what the sketch compares.
    @Test func blindedValuesOfTwoRunsShareNothing() throws {
        let room = try Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let r1 = try room.prepare()
        let r2 = try room.prepare()
        for kind in [MessageKind.consumerReblinded, .providerReblinded, .providerBlinded, .consumerBlinded] {
            let a = try Data(contentsOf: URL(fileURLWithPath: room.exchange.path(room.agreement, run: r1, kind)))
            let b = try Data(contentsOf: URL(fileURLWithPath: room.exchange.path(room.agreement, run: r2, kind)))
            // Compare 32-byte windows at record starts: the element of each record.
            let recordsA = Self.elements(a)
            let recordsB = Self.elements(b)
            #expect(!recordsA.isEmpty && recordsA.isDisjoint(with: recordsB), "\(kind)")
        }
    }

    /// The element of every record of a message file (after the header, before the signature).
    static func elements(_ file: Data) -> Set<Data> {
        let bytes = [UInt8](file)
        func be(_ at: Int, _ n: Int) -> Int { bytes[at..<at + n].reduce(0) { $0 << 8 | Int($1) } }
        let count = be(72, 8)
        let size = be(80, 4)
        let metaLength = be(180, 4)
        let body = 184 + metaLength
        return Set((0..<count).map { Data(bytes[(body + $0 * size)..<(body + $0 * size + 32)]) })
    }
}

/// The agreement flags of the guards through the built binary.
@Suite("Privacy guard flags in the CLI", .serialized)
struct PrivacyGuardFlagTests {
    @Test func inviteWritesTheGuardTermsAndShowPrintsThem() throws {
        let c = try EndToEndCLITests.Collaboration(extraInvite: [
            "--max-run-similarity", "80", "--dp-epsilon", "0.5", "--dp-budget", "4.25",
        ])
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: c.agreement)))
            as! [String: Any]
        let privacy = (json["terms"] as! [String: Any])["privacy"] as! [String: Any]
        #expect(privacy["maxRunSimilarityPercent"] as? Int == 80)
        let noise = try #require(privacy["noise"] as? [String: Any])
        #expect(noise["mechanism"] as? String == "two-sided-geometric")
        #expect(
            noise["epsilonMillis"] as? Int == 500 && noise["budgetMillis"] as? Int == 4250
                && noise["sensitivity"] as? Int == 1)
        let show = try CLI.expectSuccess(["collaboration", "show", "--agreement", c.agreement])
        #expect(show.stdout.contains("refuse runs ≥ 80 % similar"))
        #expect(show.stdout.contains("two-sided-geometric, ε 0.500 per run, budget 4.250"))
        try CLI.expectSuccess(["collaboration", "verify", "--agreement", c.agreement])
    }

    @Test(arguments: [
        ["--dp-epsilon", "abc", "--dp-budget", "1"], ["--dp-epsilon", "0.5"], ["--dp-budget", "1"],
        ["--dp-epsilon", "0.0001", "--dp-budget", "1"], ["--max-run-similarity", "101"],
        ["--expires-days", "0"], ["--expires-days", "3651"], ["--expires-days", "100000000"],
    ])
    func badGuardFlagsAreUsageErrors(flags: [String]) throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-flags-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try CLI.expectSuccess(["keygen", "--role", "consumer", "--name", "C", "--out", "\(root)/c"])
        try CLI.expectSuccess(["keygen", "--role", "coordinator", "--name", "K", "--out", "\(root)/k"])
        let r = try CLI.run(
            [
                "collaboration", "invite", "--identity", "\(root)/c/identity.key", "--coordinator",
                "\(root)/k/identity.pub.json",
                "--out", "\(root)/agreement.json",
            ] + flags)
        #expect(r.status == 64, "\(flags): \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(root)/agreement.json"))
    }
}

/// The coordinator's crash windows, made deterministic: a ledger that dies on the `delivered`
/// append stands for a coordinator killed between committing a delivery and recording it (the
/// kill -9 tests in `FaultTests` hit this window only when the timing falls there).
@Suite("Crash recovery at each step", .serialized)
struct CoordinatorRecoveryTests {
    /// Forwards to the real audit ledger, but "dies" (throws) instead of recording a delivery.
    struct DiesBeforeRecordingDelivery: RunLedger {
        let real: AuditLedger
        struct Died: Error {}
        func history(collaborationID: String, windowSeconds: Int, now: Date) throws -> RunHistory {
            try real.history(collaborationID: collaborationID, windowSeconds: windowSeconds, now: now)
        }
        func record(_ event: RunEvent) throws {
            if event.kind == .delivered { throw Died() }
            try real.record(event)
        }
    }

    @Test func retryAdoptsACommittedDeliveryAndRemovesStaleStaging() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        let ledger = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
        #expect(throws: DiesBeforeRecordingDelivery.Died.self) {
            try Steps.coordinatorMatch(
                agreement: room.agreement, identity: room.coordinator, runID: run, exchange: room.exchange,
                destination: try Steps.destination(for: room.agreement),
                ledger: DiesBeforeRecordingDelivery(real: ledger), store: room.store)
        }
        #expect(room.delivered(run), "the crash came after the commit")
        #expect(try room.entry(run) == nil, "and before the audit entry")
        // A crash of another attempt may also have left staging behind.
        let stale = "\(room.bucket)/\(room.collaboration)/.staging-\(run)-deadbeef"
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)

        let retry = try room.match(run)
        #expect(retry.kind == .delivered)
        #expect(!FileManager.default.fileExists(atPath: stale), "stale staging is removed under the lock")
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .delivered)
        let manifest = try Data(
            contentsOf: URL(fileURLWithPath: "\(room.bucket)/\(room.collaboration)/\(run)/manifest.json"))
        #expect(
            e.event.deliveryManifestSHA256?.bytes == SHA256.hash(Array(manifest)),
            "the entry names the delivery actually committed")
        #expect(try room.verifies() == 1)
        let opened = try Steps.providerOpen(
            agreement: room.agreement, identity: room.provider, runID: run,
            source: try Steps.destination(for: room.agreement), output: "\(room.root)/matched.csv")
        #expect(opened == room.data.expectedAudienceKeys.count)
        // A third attempt is refused: the run has its entry now.
        #expect(try room.refusal(run) == .runAlreadyUsed)
    }

    /// A prepare step killed after saving its state but before publishing its round (the message
    /// the other party receives): the retry shreds the old state, drops the coordinator-only
    /// payload, and the same run completes. Once the round is published, a retry is refused.
    @Test func prepareKilledBeforePublishingCanBeRetried() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = AgreementTerms.newID()
        try room.providerPrepare(run)
        try room.consumerPrepare(run)
        let m1 = room.exchange.path(room.agreement, run: run, .providerBlinded)
        let m2 = room.exchange.path(room.agreement, run: run, .providerPayload)
        let m3 = room.exchange.path(room.agreement, run: run, .consumerBlinded)
        let oldPayload = try Data(contentsOf: URL(fileURLWithPath: m2))
        // As if both had been killed just before their last write.
        try FileManager.default.removeItem(atPath: m1)
        try FileManager.default.removeItem(atPath: m3)
        try room.providerPrepare(run)
        try room.consumerPrepare(run)
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: m2)) != oldPayload,
            "the payload was made again with the new scalar")
        // Published rounds are not redone.
        #expect(throws: WorkflowError(.alreadyExists, "")) { try room.providerPrepare(run) }
        #expect(throws: WorkflowError(.alreadyExists, "")) { try room.consumerPrepare(run) }
        try room.respond(run)
        #expect(try room.match(run).kind == .delivered)
        let leftovers = (FileManager.default.enumerator(atPath: room.root)?.allObjects as? [String] ?? []).filter {
            $0.hasSuffix(".state")
        }
        #expect(leftovers.isEmpty, "every run scalar is shredded: \(leftovers)")
    }

    /// A respond step killed after publishing its answer but before shredding its state: the
    /// retry is refused (the answer is out) and shreds the scalar that has no further use.
    @Test func respondKilledAfterPublishingShredsItsStateOnRetry() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = AgreementTerms.newID()
        try room.providerPrepare(run)
        try room.consumerPrepare(run)
        let statePath = "\(room.root)/provider-state/\(room.collaboration)/\(run).provider.state"
        let saved = try Data(contentsOf: URL(fileURLWithPath: statePath))
        _ = try Steps.providerRespond(
            agreement: room.agreement, identity: room.provider, runID: run, exchange: room.exchange,
            state: StateStore(root: "\(room.root)/provider-state"))
        #expect(!FileManager.default.fileExists(atPath: statePath))
        try saved.write(to: URL(fileURLWithPath: statePath))  // the state as a kill before the shred leaves it
        #expect(throws: WorkflowError(.alreadyExists, "")) {
            try Steps.providerRespond(
                agreement: room.agreement, identity: room.provider, runID: run, exchange: room.exchange,
                state: StateStore(root: "\(room.root)/provider-state"))
        }
        #expect(!FileManager.default.fileExists(atPath: statePath), "the scalar is shredded once its answer is out")
        _ = try Steps.consumerRespond(
            agreement: room.agreement, signingKey: room.consumer.signingKey, runID: run, exchange: room.exchange,
            state: StateStore(root: "\(room.root)/consumer-state"))
        #expect(try room.match(run).kind == .delivered)
    }

    /// A committed delivery of this run that this coordinator did not sign is never adopted.
    @Test func foreignDeliveryIsNotAdopted() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        let dir = "\(room.bucket)/\(room.collaboration)/\(run)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("{\"manifest\":{},\"signature\":\"00\"}".utf8).write(to: URL(fileURLWithPath: "\(dir)/manifest.json"))
        #expect(throws: WorkflowError(.alreadyExists, "")) { try room.match(run) }
        let e = try #require(try room.entry(run))
        #expect(e.event.kind == .failed && e.event.reasonCode == "workflow.already_exists")
    }
}
