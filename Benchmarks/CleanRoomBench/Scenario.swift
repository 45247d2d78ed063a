import Activation
import Foundation
import RistrettoPSI
import Workflow

/// One set size's collaboration on disk: the two lists, three identities, a signed agreement.
///
/// The lists hold exactly `size` rows with one email each (so `size` elements per side, the
/// unit that PSI peers such as openmined-psi are measured in); people `size/2 ..< size` are in
/// both. The consumer's emails differ in case and surrounding spaces, so matching goes through
/// normalization as in production.
struct Scenario {
    let size: Int
    let dir: String
    let providerCSV: String
    let consumerCSV: String
    let agreementPath: String
    let agreement: VerifiedAgreement
    let consumer: PartyIdentity
    let provider: PartyIdentity
    let coordinator: PartyIdentity
    var overlap: Int { size - size / 2 }

    func keyPath(_ role: String) -> String { "\(dir)/keys-\(role)/identity.key" }

    init(size: Int, root: String) throws {
        self.size = size
        dir = "\(root)/\(Options.label(size))"
        try? FileManager.default.removeItem(atPath: dir)
        try Files.makeDirectory(dir)
        providerCSV = "\(dir)/audience.csv"
        consumerCSV = "\(dir)/customers.csv"
        try Scenario.writeCSV(providerCSV, header: "audience_id,email\n", count: size) { i in
            "aud-\(i),user\(i)@example.com\n"
        }
        let start = size / 2
        try Scenario.writeCSV(consumerCSV, header: "member_id,email,ads_consent\n", count: size) { n in
            let i = start + n
            return "m-\(i), User\(i)@Example.COM ,yes\n"
        }
        // The production defaults: sealed payloads, doubly sealed member IDs delivered.
        let parties = try BenchParties(
            dir: dir, label: "Bench", output: .init(deliverMemberID: true, sealed: true), days: 7)
        consumer = parties.consumer
        provider = parties.provider
        coordinator = parties.coordinator
        agreementPath = parties.agreementPath
        agreement = parties.agreement
    }

    /// Writes `size` rows produced by `row(i)` in 1 MiB chunks.
    static func writeCSV(_ path: String, header: String, count n: Int, row: (Int) -> String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let h = FileHandle(forWritingAtPath: path)
        else { throw BenchError("cannot create \(path)") }
        defer { try? h.close() }
        var buffer = Array(header.utf8)
        for i in 0..<n {
            buffer += Array(row(i).utf8)
            if buffer.count >= 1 << 20 {
                try h.write(contentsOf: buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        try h.write(contentsOf: buffer)
    }

    /// A fresh run directory: exchange, private state directories, audit log.
    struct Run {
        let dir: String
        var exchange: Exchange { Exchange(root: "\(dir)/exchange") }
        var consumerState: StateStore { StateStore(root: "\(dir)/consumer-state") }
        var providerState: StateStore { StateStore(root: "\(dir)/provider-state") }
        var auditPath: String { "\(dir)/audit.sqlite" }
        var matchedPath: String { "\(dir)/matched.csv" }
    }

    func newRun(_ label: String) throws -> Run {
        let d = "\(dir)/run-\(label)"
        try? FileManager.default.removeItem(atPath: d)
        try Files.makeDirectory(d)
        return Run(dir: d)
    }

    /// Every round in this process through the same `Workflow.Steps` the CLI calls, message
    /// files in between. Returns per-round seconds and the delivered record count.
    func endToEnd(_ run: Run) throws -> (rounds: [Result.Round], delivered: Int, runID: String) {
        var rounds: [Result.Round] = []
        func timed<T>(_ name: String, _ elements: Int, _ body: () throws -> T) rethrows -> T {
            let c0 = Clock.cpu()
            let t0 = Clock.now()
            let v = try body()
            rounds.append(
                Result.Round(name: name, elements: elements, seconds: Clock.now() - t0, cpuSeconds: Clock.cpu() - c0))
            return v
        }
        let c = try timed("2 consumer prepare", size) {
            try Steps.consumerPrepare(
                agreement: agreement, signingKey: consumer.signingKey, input: consumerCSV,
                columns: ColumnSpec([(.email, "email")]), filters: [], consent: ["ads_consent"],
                memberIDColumn: "member_id", segmentID: "bench", segmentName: "Bench", runID: AgreementTerms.newID(),
                exchange: run.exchange, state: run.consumerState, policy: .reject)
        }
        let runID = c.runID
        _ = try timed("1 provider prepare", size) {
            try Steps.providerPrepare(
                agreement: agreement, identity: provider, input: providerCSV, columns: ColumnSpec([(.email, "email")]),
                audienceKeyColumn: "audience_id", runID: runID, exchange: run.exchange, state: run.providerState,
                policy: .reject)
        }
        _ = try timed("3 provider respond", size) {
            try Steps.providerRespond(
                agreement: agreement, identity: provider, runID: runID, exchange: run.exchange, state: run.providerState
            )
        }
        _ = try timed("4 consumer respond", size) {
            try Steps.consumerRespond(
                agreement: agreement, signingKey: consumer.signingKey, runID: runID, exchange: run.exchange,
                state: run.consumerState)
        }
        let m = try timed("5 coordinator match", 2 * size) {
            let ledger = try AuditLedger(path: run.auditPath, signingKey: coordinator.signingKey, agreement: agreement)
            return try Steps.coordinatorMatch(
                agreement: agreement, identity: coordinator, runID: runID, exchange: run.exchange,
                destination: try Steps.destination(for: agreement), ledger: ledger)
        }
        let delivered = try timed("6 provider open", m.counts.matchedRows) {
            try Steps.providerOpen(
                agreement: agreement, identity: provider, runID: runID,
                source: try Steps.destination(for: agreement), output: run.matchedPath)
        }
        guard delivered == overlap else {
            throw BenchError("end to end delivered \(delivered) records, expected \(overlap)")
        }
        return (rounds, delivered, runID)
    }

    /// The same rounds, each as a child `cleanroom` process (the built CLI), with its peak RSS.
    ///
    /// `concurrent`: rounds 1 and 2, then rounds 3 and 4, run at the same time, as the two parties
    /// run them on their own machines (neither round of a pair reads the other's output: SPEC §6);
    /// the two share this machine's cores, so one party's sequential stretches (CSV, sealing,
    /// writing) fill the core the other leaves idle. Each round's seconds are then its own wall
    /// time inside the overlapped stage, not a share of the total.
    ///
    /// `wall`: the sum over stages of each stage's span, from its first child's start to its last
    /// child's exit (``Child/Outcome/started``): the processes' own time, without the ~10-30 ms
    /// each rusage helper takes to start before its child and to exit after it (a measuring
    /// device: the parties run their rounds without it).
    func endToEndProcesses(_ run: Run, cleanroom: String, concurrent: Bool = false) throws -> (
        rounds: [Result.Round], runID: String, wall: Double
    ) {
        let runID = AgreementTerms.newID()
        let log = "\(run.dir)/processes.log"
        let a = ["--agreement", agreementPath]
        let steps: [(String, Int, [String])] = [
            (
                "2 consumer prepare", size,
                ["consumer", "prepare"] + a + [
                    "--identity", keyPath("consumer"), "--state-dir", "\(run.dir)/consumer-state",
                    "--exchange", "\(run.dir)/exchange", "--input", consumerCSV, "--email-column", "email",
                    "--consent-column", "ads_consent",
                    "--member-id-column", "member_id", "--segment-id", "bench", "--segment-name", "Bench", "--run-id",
                    runID, "--quiet",
                ]
            ),
            (
                "1 provider prepare", size,
                ["provider", "prepare"] + a + [
                    "--identity", keyPath("provider"), "--state-dir", "\(run.dir)/provider-state",
                    "--exchange", "\(run.dir)/exchange", "--run-id", runID, "--input", providerCSV,
                    "--audience-key-column", "audience_id",
                    "--email-column", "email", "--quiet",
                ]
            ),
            (
                "3 provider respond", size,
                ["provider", "respond"] + a + [
                    "--identity", keyPath("provider"), "--state-dir", "\(run.dir)/provider-state",
                    "--exchange", "\(run.dir)/exchange", "--run-id", runID, "--quiet",
                ]
            ),
            (
                "4 consumer respond", size,
                ["consumer", "respond"] + a + [
                    "--identity", keyPath("consumer"), "--state-dir", "\(run.dir)/consumer-state",
                    "--exchange", "\(run.dir)/exchange", "--run-id", runID, "--quiet",
                ]
            ),
            (
                "5 coordinator match", 2 * size,
                ["coordinator", "match"] + a + [
                    "--identity", keyPath("coordinator"), "--exchange", "\(run.dir)/exchange",
                    "--run-id", runID, "--audit-db", run.auditPath, "--quiet",
                ]
            ),
            (
                "6 provider open", overlap,
                ["provider", "open"] + a + [
                    "--identity", keyPath("provider"), "--run-id", runID, "--out", run.matchedPath,
                ]
            ),
        ]
        // Stages in protocol order; the rounds of one stage depend only on earlier stages.
        let stages: [[Int]] = concurrent ? [[0, 1], [2, 3], [4], [5]] : steps.indices.map { [$0] }
        var rounds = [Result.Round?](repeating: nil, count: steps.count)
        var wall = 0.0
        // Children of one stage write separate logs (the rusage helper's report sits beside each).
        func logOf(_ stage: [Int], _ i: Int) -> String { stage.count == 1 ? log : "\(log).\(i + 1)" }
        for stage in stages {
            // One dedicated thread per child (each blocks in wait4 while its child runs).
            let jobs = stage.map { i in
                let args = steps[i].2
                let childLog = logOf(stage, i)
                return Parallel.Job { try Child.measured(cleanroom, args, log: childLog) }
            }
            var span = (start: Double.infinity, end: -Double.infinity)
            for (k, i) in stage.enumerated() {
                let (name, elements, args) = steps[i]
                let o = try jobs[k].join()
                span = (min(span.start, o.started), max(span.end, o.ended))
                guard o.exitStatus == 0 else {
                    throw BenchError(
                        "`cleanroom \(args[0]) \(args[1])` exited with \(o.exitStatus); see \(logOf(stage, i))")
                }
                rounds[i] = Result.Round(
                    name: name, elements: elements, seconds: o.seconds, cpuSeconds: o.cpuSeconds,
                    peakRSSKiB: o.peakRSSKiB)
            }
            wall += span.end - span.start
        }
        return (rounds.map { $0! }, runID, wall)
    }
}
