import Activation
import Foundation
import Identifiers
import RistrettoPSI
import S3Delivery
import Workflow

/// Shared flag handling for the role steps.
enum RoleFlags {
    static let identifierOptions = [
        "email-column", "phone-column", "maid-column", "custom-column", "default-country-code",
    ]

    /// `--exchange`; an S3 exchange's messages are staged in `<private>/scratch` (the party's
    /// state directory, the coordinator's private store) so they stream (SPEC §12.7).
    static func exchange(_ args: Arguments, privateDirectory: String) throws -> Exchange {
        try Exchange(
            location: try args.required("exchange"), environment: AWSEnvironment(),
            scratchDirectory: privateDirectory + "/scratch")
    }

    static func columns(_ args: Arguments) -> ColumnSpec {
        var out: [(IdentifierType, String)] = []
        for c in args.values("email-column") { out.append((.email, c)) }
        for c in args.values("phone-column") { out.append((.phone, c)) }
        for c in args.values("maid-column") { out.append((.mobileAdID, c)) }
        for c in args.values("custom-column") { out.append((.custom, c)) }
        return ColumnSpec(out)
    }

    /// Progress lines on stderr with elapsed time, unless `--quiet`.
    static func progress(_ args: Arguments, _ role: String) -> ProgressReporter? {
        if args.has("quiet") { return nil }
        let start = Date()
        return { line in Console.err("[\(role) \(String(format: "%7.2f", Date().timeIntervalSince(start)))s] \(line)") }
    }

    static func runID(_ args: Arguments) throws -> String {
        let r = try args.required("run-id")
        guard UUIDBytes.parse(r) != nil else { throw CLIError.usage("--run-id must be a lowercase UUID") }
        return r
    }

    static func report(_ r: Steps.PrepareResult, json: Bool, role: String) {
        let s = r.summary
        if json {
            Console.json([
                "role": role, "runID": r.runID, "rowsRead": s.rowsRead, "rowsSelected": s.rowsSelected,
                "rowsFilteredOut": s.rowsFilteredOut, "rowsWithoutIdentifier": s.rowsWithoutIdentifier,
                "identifiers": s.identifiers, "duplicateIdentifiers": s.duplicateIdentifiers,
                "skippedValues": s.skippedValues, "skippedReport": r.skippedReport.map { $0 as Any } ?? NSNull(),
                "elements": s.elements, "written": r.written,
            ])
        } else {
            Console.out(
                "run \(r.runID): \(s.rowsRead) rows read, \(s.rowsSelected) selected, \(s.identifiers) identifiers, \(s.elements) distinct elements blinded"
            )
            if s.duplicateIdentifiers > 0 {
                Console.out("  \(s.duplicateIdentifiers) duplicate identifiers counted once")
            }
            if s.rowsWithoutIdentifier > 0 {
                Console.out("  \(s.rowsWithoutIdentifier) selected rows without any identifier")
            }
            for w in r.written { Console.out("  wrote \(w)") }
        }
        if s.skippedValues > 0 {
            Console.err(
                "\(s.skippedValues) invalid values were left out (--skip-invalid), each listed by row, column and rule in \(r.skippedReport ?? "?"):"
            )
            for v in r.skipped.prefix(50) { Console.err("  \(v)") }
            if s.skippedValues > 50 { Console.err("  … and \(s.skippedValues - 50) more (see the report)") }
        }
    }
}

/// `cleanroom provider …`
enum ProviderCommands {
    static let usage = """
        usage: cleanroom provider <subcommand>
        (every step prints progress on stderr; --quiet silences it; --exchange takes a directory or
        s3://<bucket>/<prefix>, read and written with your own AWS credentials)

          prepare   round 1: blind the audience with a fresh per-run scalar
                    --agreement <file> --identity <provider identity.key> --state-dir <private dir>
                    --exchange <dir> --run-id <uuid> --input <audience.csv> --audience-key-column <name>
                    [--email-column <name>]… [--phone-column <name>]… [--maid-column <name>]… [--custom-column <name>]…
                    [--default-country-code <digits>] [--skip-invalid] [--json] [--quiet]
                    (--default-country-code: the country of your own national-format phone numbers, e.g. 44,
                    instead of the agreement's; --skip-invalid: leave invalid identifiers out instead of
                    refusing the file; each is listed by row, column and rule in
                    <state-dir>/<collaboration>/<run>.provider.skipped.csv)
          respond   round 3: re-blind the consumer's set, shuffle it; shreds the run's scalar
                    --agreement <file> --identity <file> --state-dir <dir> --exchange <dir> --run-id <uuid> [--json] [--quiet]
          open      round 6: verify the delivery and write a plain CSV for the DSP upload
                    --agreement <file> --identity <file> --run-id <uuid> --out <matched.csv> [--json] [--quiet]
                    (an s3 destination is read with the provider's own AWS credentials)
          aws-setup print the delivery role's trust and permission policies for an s3 destination
                    --agreement <file> [--destination-s3 s3://<bucket>/<prefix>] [--coordinator-principal <arn>]
                    [--oidc-issuer <host> --oidc-subject <sub> --account-id <id>] [--json]
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "provider", usage: usage,
            [
                "prepare": prepare,
                "respond": respond,
                "open": open,
                "aws-setup": AWSCommands.setup,
            ])
    }

    static func prepare(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "skip-invalid", "json", "quiet"],
            options: Set(
                ["agreement", "identity", "state-dir", "exchange", "run-id", "input", "audience-key-column"]
                    + RoleFlags.identifierOptions))
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .provider)
        let r = try Steps.providerPrepare(
            agreement: a, identity: id, input: try args.required("input"), columns: RoleFlags.columns(args),
            audienceKeyColumn: try args.required("audience-key-column"), runID: try RoleFlags.runID(args),
            exchange: try RoleFlags.exchange(args, privateDirectory: try args.required("state-dir")),
            state: StateStore(root: try args.required("state-dir")),
            policy: args.has("skip-invalid") ? .skipAndReport : .reject,
            defaultCountryCallingCode: try args.value("default-country-code"),
            progress: RoleFlags.progress(args, "provider"))
        RoleFlags.report(r, json: args.has("json"), role: "provider")
    }

    static func respond(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json", "quiet"],
            options: ["agreement", "identity", "state-dir", "exchange", "run-id"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .provider)
        let r = try Steps.providerRespond(
            agreement: a, identity: id, runID: try RoleFlags.runID(args),
            exchange: try RoleFlags.exchange(args, privateDirectory: try args.required("state-dir")),
            state: StateStore(root: try args.required("state-dir")),
            progress: RoleFlags.progress(args, "provider"))
        if args.has("json") {
            Console.json(["role": "provider", "elements": r.elements, "written": r.written])
        } else {
            Console.out("re-blinded and shuffled \(r.elements) consumer elements; wrote \(r.written)")
        }
    }

    static func open(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json", "quiet"], options: ["agreement", "identity", "run-id", "out"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .provider)
        let out = try args.required("out")
        let n = try Steps.providerOpen(
            agreement: a, identity: id, runID: try RoleFlags.runID(args),
            source: try Steps.destination(for: a, access: .provider),
            output: out, progress: RoleFlags.progress(args, "provider"))
        if args.has("json") {
            Console.json(["role": "provider", "records": n, "written": out])
        } else {
            Console.out("delivery verified: \(n) matched audience records written to \(out)")
        }
    }
}

/// `cleanroom consumer …`
enum ConsumerCommands {
    static let usage = """
        usage: cleanroom consumer <subcommand>
        (every step prints progress on stderr; --quiet silences it; --exchange takes a directory or
        s3://<bucket>/<prefix>, read and written with your own AWS credentials)

          prepare   round 2, the activation query: select rows, blind with a fresh per-run scalar
                    --agreement <file> --identity <consumer identity.key> --state-dir <private dir>
                    --exchange <dir> --input <customers.csv> --segment-id <id> --segment-name <name>
                    [--run-id <uuid>] (a new one is made and printed if omitted)
                    [--email-column <name>]… [--phone-column <name>]… [--maid-column <name>]… [--custom-column <name>]…
                    [--where <column>=<value>[,<value>…]]… [--consent-column <name>]…
                    [--member-id-column <name>] [--default-country-code <digits>] [--skip-invalid] [--json] [--quiet]
                    (--default-country-code: the country of your own national-format phone numbers, e.g. 1,
                    instead of the agreement's; --skip-invalid: leave invalid identifiers out instead of
                    refusing the file; each is listed by row, column and rule in
                    <state-dir>/<collaboration>/<run>.consumer.skipped.csv)
          respond   round 4: re-blind the provider's set; shreds the run's scalar
                    --agreement <file> --identity <file> --state-dir <dir> --exchange <dir> --run-id <uuid> [--json] [--quiet]
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "consumer", usage: usage,
            [
                "prepare": prepare,
                "respond": respond,
            ])
    }

    static func prepare(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "skip-invalid", "json", "quiet"],
            options: Set(
                [
                    "agreement", "identity", "state-dir", "exchange", "run-id", "input", "segment-id", "segment-name",
                    "where", "consent-column", "member-id-column",
                ] + RoleFlags.identifierOptions))
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .consumer)
        var filters: [(column: String, values: [String])] = []
        for w in args.values("where") {
            guard let eq = w.firstIndex(of: "="), eq != w.startIndex else {
                throw CLIError.usage("--where takes <column>=<value>[,<value>…]")
            }
            filters.append((String(w[..<eq]), w[w.index(after: eq)...].split(separator: ",").map(String.init)))
        }
        let runID = try args.value("run-id") != nil ? try RoleFlags.runID(args) : AgreementTerms.newID()
        let r = try Steps.consumerPrepare(
            agreement: a, signingKey: id.signingKey, input: try args.required("input"),
            columns: RoleFlags.columns(args),
            filters: filters, consent: args.values("consent-column"),
            memberIDColumn: try args.value("member-id-column"),
            segmentID: try args.required("segment-id"), segmentName: try args.required("segment-name"),
            runID: runID, exchange: try RoleFlags.exchange(args, privateDirectory: try args.required("state-dir")),
            state: StateStore(root: try args.required("state-dir")),
            policy: args.has("skip-invalid") ? .skipAndReport : .reject,
            defaultCountryCallingCode: try args.value("default-country-code"),
            progress: RoleFlags.progress(args, "consumer"))
        RoleFlags.report(r, json: args.has("json"), role: "consumer")
    }

    static func respond(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json", "quiet"],
            options: ["agreement", "identity", "state-dir", "exchange", "run-id"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .consumer)
        let r = try Steps.consumerRespond(
            agreement: a, signingKey: id.signingKey, runID: try RoleFlags.runID(args),
            exchange: try RoleFlags.exchange(args, privateDirectory: try args.required("state-dir")),
            state: StateStore(root: try args.required("state-dir")),
            progress: RoleFlags.progress(args, "consumer"))
        if args.has("json") {
            Console.json(["role": "consumer", "elements": r.elements, "written": r.written])
        } else {
            Console.out("re-blinded \(r.elements) provider elements; wrote \(r.written)")
        }
    }
}

/// `cleanroom coordinator …`
enum CoordinatorCommands {
    static let usage = """
        usage: cleanroom coordinator <subcommand>

          match     round 5: verify every message, intersect, deliver to the agreement's destination,
                    and append the run's entry to the audit log; keeps run locks and matched-set
                    sketches (differencing check) in <audit-db>.private/, never shared
                    --agreement <file> --identity <coordinator identity.key> --exchange <dir> --run-id <uuid>
                    --audit-db <file> [--json] [--quiet] (progress on stderr unless --quiet)
          verify-destination  assume the agreement's S3 role, write a canary, confirm reads and writes
                    outside the prefix are denied: "write-only confirmed" or what is wrong
                    --agreement <file> [--json]
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "coordinator", usage: usage,
            [
                "match": match,
                "verify-destination": AWSCommands.verify,
            ])
    }

    static func match(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "json", "quiet"],
            options: ["agreement", "identity", "exchange", "run-id", "audit-db"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        let (id, _) = try KeyFiles.load(try args.required("identity"), role: .coordinator)
        let ledger = try AuditLedger(path: try args.required("audit-db"), signingKey: id.signingKey, agreement: a)
        let r = try Steps.coordinatorMatch(
            agreement: a, identity: id, runID: try RoleFlags.runID(args),
            exchange: try RoleFlags.exchange(
                args, privateDirectory: CoordinatorStore.beside(auditDB: try args.required("audit-db")).root),
            destination: try Steps.destination(for: a), ledger: ledger,
            store: CoordinatorStore.beside(auditDB: try args.required("audit-db")),
            progress: RoleFlags.progress(args, "coordinator"))
        let c = r.counts
        if args.has("json") {
            Console.json([
                "outcome": r.kind.rawValue, "consumerRows": c.consumerRows,
                "consumerIdentifiers": c.consumerIdentifiers,
                "providerElements": c.providerElements, "matchedRows": c.matchedRows, "objects": r.objects,
                "consumerVisibleMatchedRows": c.consumerVisibleMatchedRows,
                "epsilonSpent": c.epsilonMillis.map { PrivacyGuards.epsilonText($0) } ?? "0",
            ])
        } else {
            Console.out(
                "run \(try RoleFlags.runID(args)): \(r.kind.rawValue); \(c.consumerIdentifiers) consumer identifiers, \(c.providerElements) provider elements, \(c.matchedRows) matched provider rows, \(r.objects) objects delivered"
            )
        }
        if r.kind == .belowThreshold {
            throw CLIError.failure("below the agreement's minimum of matched rows: nothing was delivered")
        }
    }
}
