import Activation
import Foundation
import RistrettoPSI
import S3Delivery
import Tabular
import Workflow

/// `cleanroom demo`: the main job end to end on embedded defaults.
///
/// Generates a synthetic consumer list and provider audience with a known overlap, runs each role
/// as a separate step that talks to the others only through files (exchange directory, private
/// state directories), delivers to a local directory standing in for the provider's bucket,
/// appends to a local SQLite audit log, and checks the delivery against the known overlap.
enum DemoCommand {
    static let usage = """
        usage: cleanroom demo [--work-dir <dir>] [--provider-rows N] [--consumer-rows N] [--overlap N] [--json]
                              [--destination-s3 s3://<bucket>/<prefix> --region <region> --role-arn <arn>
                               --collaboration-id <uuid> --external-id <uuid>
                               [--coordinator-profile <name>] [--provider-profile <name>]]

        Defaults: --work-dir demo-output, 5000 provider rows, 3000 consumer rows, 1500 people in both.
        The work directory is recreated if a previous demo made it, and refused otherwise.

        With --destination-s3 the delivery goes to the provider's S3 path through its role, assumed
        with the External ID (`make demo-s3` runs this against a local S3 server). The role must
        already trust the coordinator for this collaboration, so the collaboration and External IDs
        are given rather than generated. AWS settings come from the environment (AWS_ENDPOINT_URL,
        AWS_SHARED_CREDENTIALS_FILE, ...); the coordinator uses profile --coordinator-profile
        (default coordinator), the provider reads back with --provider-profile (default provider).
        """
    static let marker = ".cleanroom-demo"

    static func run(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json"],
            options: [
                "work-dir", "provider-rows", "consumer-rows", "overlap", "destination-s3",
                "region", "role-arn", "collaboration-id", "external-id",
                "coordinator-profile", "provider-profile",
            ])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        func n(_ name: String, _ d: Int) throws -> Int {
            guard let v = try args.value(name) else { return d }
            guard let x = Int(v), x >= 0 else { throw CLIError.usage("--\(name) must be a non-negative integer") }
            return x
        }
        let providerRows = try n("provider-rows", 5000)
        let consumerRows = try n("consumer-rows", 3000)
        let overlap = try n("overlap", 1500)
        guard overlap <= providerRows, overlap <= consumerRows else {
            throw CLIError.usage("--overlap cannot exceed either list")
        }
        let s3 = try S3Mode(args)
        let work = (try args.value("work-dir") ?? "demo-output")
        let fm = FileManager.default
        if fm.fileExists(atPath: work) {
            guard fm.fileExists(atPath: "\(work)/\(marker)") else {
                throw CLIError.failure("\(work) exists and was not made by the demo; choose another --work-dir")
            }
            try fm.removeItem(atPath: work)
        }
        try Files.makeDirectory(work)
        try Files.writeAtomically(Array("made by cleanroom demo\n".utf8), to: "\(work)/\(marker)")
        let started = Date()
        func step(_ s: String) { Console.err("[\(String(format: "%6.2f", Date().timeIntervalSince(started)))s] \(s)") }

        // 0. Synthetic lists with a known overlap.
        step("generating \(providerRows) provider rows and \(consumerRows) consumer rows (\(overlap) people in both)")
        let data = SyntheticData(providerRows: providerRows, consumerRows: consumerRows, overlap: overlap)
        let consumerDir = "\(work)/consumer"
        let providerDir = "\(work)/provider"
        let coordinatorDir = "\(work)/coordinator"
        try Files.writeAtomically(data.consumerCSV, to: "\(consumerDir)/customers.csv", mode: 0o600)
        try Files.writeAtomically(data.providerCSV, to: "\(providerDir)/audience.csv", mode: 0o600)

        // 1. Identities and the agreement: invite → accept → countersign.
        step("each party generates its identity")
        _ = try KeyFiles.generate(role: .consumer, name: "Retailer (consumer)", directory: "\(consumerDir)/keys")
        _ = try KeyFiles.generate(role: .provider, name: "Media Network (provider)", directory: "\(providerDir)/keys")
        _ = try KeyFiles.generate(role: .coordinator, name: "Coordinator", directory: "\(coordinatorDir)/keys")
        let agreementPath = "\(work)/agreement.json"
        step("consumer invites, provider accepts, consumer countersigns")
        try CollaborationCommands.invite(
            [
                "--identity", "\(consumerDir)/keys/identity.key", "--coordinator",
                "\(coordinatorDir)/keys/identity.pub.json",
                "--types", "email,phone,maid", "--default-country-code", "1", "--deliver-member-id",
                "--min-consumer-rows", "100", "--min-matched-rows", "50", "--out", agreementPath,
            ],
            ids: s3.map { ($0.collaborationID, $0.externalID) })
        try CollaborationCommands.accept(
            ["--agreement", agreementPath, "--identity", "\(providerDir)/keys/identity.key"]
                + (s3?.acceptArguments ?? ["--destination-dir", "\(work)/provider-bucket"]))
        try CollaborationCommands.countersign([
            "--agreement", agreementPath, "--identity", "\(consumerDir)/keys/identity.key",
        ])
        let agreement = try Steps.loadAgreement(agreementPath)
        let exchange = Exchange(root: "\(work)/exchange")

        // 2. The rounds, each party with its own key and private state directory.
        let (consumerID, _) = try KeyFiles.load("\(consumerDir)/keys/identity.key", role: .consumer)
        let (providerID, _) = try KeyFiles.load("\(providerDir)/keys/identity.key", role: .provider)
        let (coordinatorID, _) = try KeyFiles.load("\(coordinatorDir)/keys/identity.key", role: .coordinator)
        step("consumer runs the activation query (round 2)")
        let c = try Steps.consumerPrepare(
            agreement: agreement, signingKey: consumerID.signingKey, input: "\(consumerDir)/customers.csv",
            columns: ColumnSpec([(.email, "email"), (.phone, "phone")]), filters: [],
            consent: ["ads_consent"], memberIDColumn: "member_id", segmentID: "loyalty-all",
            segmentName: "Loyalty members", runID: AgreementTerms.newID(), exchange: exchange,
            state: StateStore(root: "\(consumerDir)/state"), policy: .skipAndReport)
        let runID = c.runID
        for skipped in c.skipped {
            Console.err("          left out (reported, --skip-invalid): customers.csv \(skipped)")
        }
        if c.summary.skippedValues > c.skipped.count, let report = c.skippedReport {
            Console.err(
                "          … and \(c.summary.skippedValues - c.skipped.count) more, every one listed in \(report)")
        }
        step("provider blinds its audience (round 1)")
        let p = try Steps.providerPrepare(
            agreement: agreement, identity: providerID, input: "\(providerDir)/audience.csv",
            columns: ColumnSpec([(.email, "email"), (.phone, "phone"), (.mobileAdID, "mobile_ad_id")]),
            audienceKeyColumn: "audience_id", runID: runID, exchange: exchange,
            state: StateStore(root: "\(providerDir)/state"), policy: .reject)
        step("provider re-blinds the consumer's set (round 3)")
        _ = try Steps.providerRespond(
            agreement: agreement, identity: providerID, runID: runID, exchange: exchange,
            state: StateStore(root: "\(providerDir)/state"))
        step("consumer re-blinds the provider's set (round 4)")
        _ = try Steps.consumerRespond(
            agreement: agreement, signingKey: consumerID.signingKey, runID: runID, exchange: exchange,
            state: StateStore(root: "\(consumerDir)/state"))
        step("coordinator matches, delivers and records the run (round 5)")
        let auditPath = "\(coordinatorDir)/audit.sqlite"
        let ledger = try AuditLedger(path: auditPath, signingKey: coordinatorID.signingKey, agreement: agreement)
        let m = try Steps.coordinatorMatch(
            agreement: agreement, identity: coordinatorID, runID: runID, exchange: exchange,
            destination: try Steps.destination(for: agreement, environment: s3?.coordinator ?? AWSEnvironment()),
            ledger: ledger,
            store: CoordinatorStore.beside(auditDB: auditPath))
        step("provider opens its delivery (round 6)")
        let matchedPath = "\(providerDir)/matched-audience.csv"
        let delivered = try Steps.providerOpen(
            agreement: agreement, identity: providerID, runID: runID,
            source: try Steps.destination(
                for: agreement, access: .provider, environment: s3?.provider ?? AWSEnvironment()),
            output: matchedPath)

        // 3. What each party saw, and the check against the known overlap.
        var reader = try CSVReader(path: matchedPath)
        var keys = Set<String>()
        var sample: [String] = []
        while let r = try reader.next() {
            keys.insert(String(decoding: r[0], as: UTF8.self))
            if sample.count < 5 {
                sample.append(r.fields.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ","))
            }
        }
        let ok = keys == data.expectedAudienceKeys && delivered == keys.count
        let consumerView = try ledger.consumerView(collaborationID: agreement.terms.collaborationID)
        if args.has("json") {
            Console.json([
                "runID": runID, "outcome": m.kind.rawValue, "matchedRows": m.counts.matchedRows,
                "expectedRows": data.expectedAudienceKeys.count,
                "deliveredRows": delivered, "check": ok ? "passed" : "failed", "workDir": work,
            ])
        } else {
            Console.out(
                """

                CleanRoom demo: collaboration \(agreement.terms.collaborationID), run \(runID)

                Consumer (retailer) sees only counts, from the Clean_Room_Audit_Log:
                \(consumerView)
                  consumer query: \(c.summary.rowsRead) rows read, \(c.summary.rowsSelected) with ads consent, \(c.summary.identifiers) identifiers, \(c.summary.skippedValues) invalid values reported and left out

                Provider (media network) receives its matched audience, \(delivered) records\(s3.map { " delivered to \($0.location)/\(agreement.terms.collaborationID)/\(runID)/ through its role \($0.roleARN) (assumed by the coordinator with the External ID), read back with its own keys into" } ?? " in") \(matchedPath):
                \(sample.map { "  " + $0 }.joined(separator: "\n"))
                  …
                  audience blinded: \(p.summary.rowsRead) rows, \(p.summary.elements) distinct identifiers

                Coordinator saw only blinded values: \(m.counts.consumerIdentifiers) consumer and \(m.counts.providerElements) provider elements, \(m.counts.matchedRows) provider rows matched.

                Check: delivered audience keys \(ok ? "equal" : "DO NOT equal") the known overlap (\(data.expectedAudienceKeys.count) rows) \(ok ? "✔" : "✘")
                Everything is in \(work)/ (audit log: \(auditPath); verify it with `cleanroom audit verify --db \(auditPath)`).
                """)
        }
        if !ok { throw CLIError.failure("the delivery does not match the known overlap") }
    }
}

extension DemoCommand {
    /// The S3 options of the demo: the provider's path and role, the collaboration's IDs the role
    /// already trusts, and which AWS profile each party uses.
    struct S3Mode {
        let location: S3Location
        let region: String
        let roleARN: String
        let collaborationID: String
        let externalID: String
        let coordinator: AWSEnvironment
        let provider: AWSEnvironment

        init?(_ args: Arguments) throws {
            guard let uri = try args.value("destination-s3") else {
                for o in [
                    "region", "role-arn", "collaboration-id", "external-id", "coordinator-profile", "provider-profile",
                ] where try args.value(o) != nil {
                    throw CLIError.usage("--\(o) needs --destination-s3")
                }
                return nil
            }
            do { location = try S3Location(uri: uri) } catch { throw CLIError.usage("--destination-s3: \(error)") }
            region = try args.required("region")
            roleARN = try args.required("role-arn")
            collaborationID = try args.required("collaboration-id")
            externalID = try args.required("external-id")
            for id in [collaborationID, externalID] where UUIDBytes.parse(id) == nil {
                throw CLIError.usage("--collaboration-id and --external-id must be lowercase UUIDs")
            }
            // Each party's own identity: the same environment with its profile and no keys from variables.
            func env(_ profile: String) -> AWSEnvironment {
                var v = ProcessInfo.processInfo.environment
                v["AWS_PROFILE"] = profile
                for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] { v[k] = nil }
                return AWSEnvironment(v)
            }
            coordinator = env(try args.value("coordinator-profile") ?? "coordinator")
            provider = env(try args.value("provider-profile") ?? "provider")
        }

        var acceptArguments: [String] {
            ["--destination-s3", location.description, "--region", region, "--role-arn", roleARN]
        }
    }
}
