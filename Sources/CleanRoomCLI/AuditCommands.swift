import AuditLog
import Foundation
import RistrettoPSI

/// `cleanroom audit …`: the consumer's view of the Clean_Room_Audit_Log. Thin: every command opens
/// the log read-only and calls the `AuditLog` module. - SeeAlso: `Protocol/AUDIT_LOG.md`.
enum AuditCommands {
    static let usage = """
        OVERVIEW: Read and check the Clean_Room_Audit_Log (counts and statuses of every run,
        hash-chained and signed by the coordinator). Every subcommand opens the log read-only.

        USAGE: cleanroom audit <subcommand> [<options>]

        SUBCOMMANDS:
          show         counts and statuses of one collaboration's runs
          verify       check the hash chain, signatures and (optionally) a checkpoint
          checkpoint   verify, then save the head (sequence, hash, coordinator key) as JSON
          export       write every entry as CSV or JSON Lines for a data platform

        Run 'cleanroom audit <subcommand> --help' for its options.
        Exit codes: 0 success, 1 failure (bad input, verification failed), 64 usage error.
        """

    static let showUsage = """
        OVERVIEW: Print the counts and statuses of one collaboration's runs (no hashes, no data).
        The whole log is verified first (against the key stored in it); a log that fails is not shown.

        USAGE: cleanroom audit show --db <file> --collaboration <id> [--json]

        OPTIONS:
          --db <file>              the audit log (opened read-only)
          --collaboration <id>     the collaboration ID
          --json                   print a JSON object instead of a table
          --help                   show this help
        """

    static let verifyUsage = """
        OVERVIEW: Verify the audit log: page integrity, field rules, sequence, hash chain, signatures,
        and with --checkpoint that the checkpointed head is still there (detects a removed tail).

        USAGE: cleanroom audit verify --db <file> [--checkpoint <file>] [--coordinator-key <hex>] [--json]

        OPTIONS:
          --db <file>                 the audit log (opened read-only)
          --checkpoint <file>         a checkpoint saved earlier by 'cleanroom audit checkpoint'
          --coordinator-key <hex>     the coordinator's Ed25519 public key, pinned out of band
          --json                      print the result as JSON
          --help                      show this help

        Without --checkpoint or --coordinator-key the signatures are checked against the key stored in
        the database only, which an attacker who rewrites the whole file could replace; a warning says so.
        Exit 0 when the log verifies, 1 with the failing check and entry otherwise.
        """

    static let checkpointUsage = """
        OVERVIEW: Verify the log, then write its head (sequence, head hash, coordinator key) to a JSON
        checkpoint that a later 'verify --checkpoint' compares against. Keep it outside the coordinator.

        USAGE: cleanroom audit checkpoint --db <file> --out <file> [--coordinator-key <hex>]

        OPTIONS:
          --db <file>                 the audit log (opened read-only)
          --out <file>                where to write the checkpoint JSON
          --coordinator-key <hex>     verify under this pinned key instead of the stored one
          --help                      show this help
        """

    static let exportUsage = """
        OVERVIEW: Export every entry (sequence order) as CSV with a header or as JSON Lines.
        Export checks SQLite page integrity but not the chain, so a tampered log can still be
        exported for investigation: run 'cleanroom audit verify' first.

        USAGE: cleanroom audit export --db <file> --format csv|jsonl [--out <file>]

        OPTIONS:
          --db <file>          the audit log (opened read-only)
          --format <format>    csv or jsonl
          --out <file>         write here instead of stdout (must not exist)
          --help               show this help
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "audit", usage: usage,
            [
                "show": show,
                "verify": verify,
                "checkpoint": checkpoint,
                "export": export,
            ])
    }

    static func pinnedKey(_ args: Arguments) throws -> VerifyingKey? {
        guard let hex = try args.value("coordinator-key") else { return nil }
        do { return try VerifyingKey(hex: hex) } catch {
            throw CLIError.usage("--coordinator-key is not a valid Ed25519 public key in hex")
        }
    }

    static func show(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "json"], options: ["db", "collaboration"])
        if args.has("help") {
            Console.out(showUsage)
            return
        }
        try args.expectPositionals(0)
        let db = try args.required("db")
        let collaboration = try args.required("collaboration")
        let log = try AuditLog.openReadOnly(at: db)
        let verification: AuditVerification
        do { verification = try log.verify() } catch {
            throw CLIError.failure(
                "the log does not verify, so it is not shown (run 'cleanroom audit verify'): \(error)")
        }
        let entries = try log.entries(collaborationID: collaboration)
        var totals: [String: Int] = Dictionary(uniqueKeysWithValues: AuditEventKind.allCases.map { ($0.rawValue, 0) })
        for e in entries { totals[e.event.kind.rawValue, default: 0] += 1 }
        if args.has("json") {
            Console.json([
                "collaboration_id": collaboration,
                "log_verified_entries": verification.entryCount,
                "counts_by_status": totals,
                "runs": entries.map { e -> [String: Any] in
                    [
                        "sequence": e.sequence, "recorded_at": e.recordedAtISO8601, "run_id": e.event.runID,
                        "status": e.event.kind.rawValue,
                        "consumer_rows_processed": e.event.consumerRowsProcessed,
                        "consumer_identifiers_processed": e.event.consumerIdentifiersProcessed,
                        "matched_rows_delivered": e.event.matchedRowsDelivered,
                        "delivered_object_count": e.event.deliveredObjectCount,
                        "reason_code": e.event.reasonCode ?? NSNull(),
                        "privacy_epsilon_millis": e.event.privacyEpsilonMillis ?? NSNull(),
                    ]
                },
            ])
            return
        }
        Console.out(
            "log verified: \(verification.entryCount) entries, signatures checked against the coordinator key stored in the log (pin it with 'cleanroom audit verify --coordinator-key')"
        )
        Console.out("collaboration \(collaboration): \(entries.count) run event(s)")
        Console.out(
            "  " + AuditEventKind.allCases.map { "\($0.rawValue) \(totals[$0.rawValue] ?? 0)" }.joined(separator: ", "))
        let spent = entries.compactMap(\.event.privacyEpsilonMillis).reduce(0, +)
        if spent > 0 {
            Console.out(
                "  differential privacy: ε \(spent / 1000).\(String(format: "%03d", spent % 1000)) spent; 'delivered' counts of runs that spent ε are noisy"
            )
        }
        guard !entries.isEmpty else { return }
        let header = [
            "seq", "recorded_at (UTC)", "run_id", "status", "rows", "identifiers", "delivered", "objects", "reason",
        ]
        let rows = entries.map { e in
            [
                String(e.sequence), e.recordedAtISO8601, e.event.runID, e.event.kind.rawValue,
                String(e.event.consumerRowsProcessed),
                String(e.event.consumerIdentifiersProcessed), String(e.event.matchedRowsDelivered),
                String(e.event.deliveredObjectCount), e.event.reasonCode ?? "-",
            ]
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        Console.out(line(header))
        for r in rows { Console.out(line(r)) }
    }

    static func verify(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "json"], options: ["db", "checkpoint", "coordinator-key"])
        if args.has("help") {
            Console.out(verifyUsage)
            return
        }
        try args.expectPositionals(0)
        let db = try args.required("db")
        let pinned = try pinnedKey(args)
        let json = args.has("json")
        let checkpointPath = try args.value("checkpoint")
        do throws(AuditLogError) {
            let checkpoint = try checkpointPath.map { (path: String) throws(AuditLogError) in
                try AuditCheckpoint.read(from: path)
            }
            let log = try AuditLog.openReadOnly(at: db)
            let v = try log.verify(pinnedKey: pinned, checkpoint: checkpoint)
            if json {
                var object: [String: Any] = [
                    "ok": true, "entries": v.entryCount, "head_sequence": v.headSequence, "head_hash": v.headHash.hex,
                    "coordinator_public_key": v.coordinatorKey.hex, "key_source": v.keySource.rawValue,
                    "relied_on_database_key_only": v.reliedOnDatabaseKeyOnly,
                ]
                if let s = v.checkpointSequence { object["checkpoint_sequence"] = s }
                Console.json(object)
            } else {
                Console.out(
                    "ok: \(v.entryCount) entries verified; head sequence \(v.headSequence), head hash \(v.headHash.hex)"
                )
                let source =
                    switch v.keySource {
                    case .pinned: "pinned with --coordinator-key"
                    case .checkpoint: "pinned by the checkpoint"
                    case .database: "as stored in the database only"
                    }
                Console.out("coordinator key \(v.coordinatorKey.hex) (\(source))")
                if let s = v.checkpointSequence { Console.out("checkpoint at sequence \(s) matches") }
            }
            if v.reliedOnDatabaseKeyOnly {
                Console.err(
                    "warning: verified only against the coordinator key stored in the database, which whoever rewrites the file can replace; pin it with --coordinator-key <hex> or --checkpoint <file>"
                )
            }
        } catch {
            if json {
                var object: [String: Any] = ["ok": false, "code": error.code.rawValue, "reason": error.reason]
                if let s = error.sequence { object["sequence"] = s }
                Console.json(object)
            }
            throw CLIError.failure("verification FAILED: \(error)")
        }
    }

    static func checkpoint(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["db", "out", "coordinator-key"])
        if args.has("help") {
            Console.out(checkpointUsage)
            return
        }
        try args.expectPositionals(0)
        let db = try args.required("db")
        let out = try args.required("out")
        let pinned = try pinnedKey(args)
        let log = try AuditLog.openReadOnly(at: db)
        let cp = try log.checkpoint(pinnedKey: pinned)
        try cp.write(to: out)
        Console.out(
            "checkpoint written to \(out): sequence \(cp.sequence), head hash \(cp.headHash.hex), coordinator key \(cp.coordinatorKey.hex)"
        )
        if pinned == nil {
            Console.err(
                "warning: the checkpoint records the coordinator key stored in the database; compare it with the key the coordinator published"
            )
        }
    }

    static func export(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["db", "format", "out"])
        if args.has("help") {
            Console.out(exportUsage)
            return
        }
        try args.expectPositionals(0)
        let db = try args.required("db")
        guard let format = AuditExportFormat(rawValue: try args.required("format")) else {
            throw CLIError.usage("--format must be csv or jsonl")
        }
        let log = try AuditLog.openReadOnly(at: db)
        try log.checkIntegrity()
        let handle: FileHandle
        if let out = try args.value("out") {
            guard !FileManager.default.fileExists(atPath: out) else {
                throw CLIError.failure("'\(out)' already exists; refusing to overwrite it")
            }
            guard FileManager.default.createFile(atPath: out, contents: nil, attributes: [.posixPermissions: 0o644]),
                let h = FileHandle(forWritingAtPath: out)
            else {
                throw CLIError.failure("cannot create '\(out)'")
            }
            handle = h
        } else {
            handle = FileHandle.standardOutput
        }
        try log.export(format: format) { line in handle.write(Data(line.utf8)) }
        if handle !== FileHandle.standardOutput { try handle.close() }
    }
}

/// `cleanroom debug audit-keygen` and `cleanroom debug audit-append`: coordinator-side helpers for
/// setting up a log and for the concurrency and crash tests. Not listed in the main help.
enum AuditDebugCommands {
    static let keygenUsage = """
        OVERVIEW: Generate a coordinator Ed25519 key; write its seed (hex) to a new file with mode 0600.
        Prints only the public key.

        USAGE: cleanroom debug audit-keygen --out <file>
        """

    static let appendUsage = """
        OVERVIEW: Append N synthetic entries to an audit log (created if missing), printing
        'appended <sequence>' after each commit. For testing concurrency and crash safety.

        USAGE: cleanroom debug audit-append --db <file> --key-file <file> --count <n> --collaboration <id>
                                            [--quiet] [--barrier]

        OPTIONS:
          --quiet      no 'appended' lines
          --barrier    after opening the log, print 'ready' and wait for a line on stdin before
                       appending (lets a test start several writers at the same moment)
        At the end, 'lock waits: <n>' on stderr: how often this process waited for another writer.
        """

    static func keygen(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["out"])
        if args.has("help") {
            Console.out(keygenUsage)
            return
        }
        try args.expectPositionals(0)
        let out = try args.required("out")
        let key = SigningKey.generate()
        try CoordinatorKeyFile.write(key, to: out)
        Console.out("coordinator public key: \(key.verifyingKey.hex)")
        Console.err("seed written to \(out) (mode 0600); keep it on the coordinator only")
    }

    static func append(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "quiet", "barrier"], options: ["db", "key-file", "count", "collaboration"])
        if args.has("help") {
            Console.out(appendUsage)
            return
        }
        try args.expectPositionals(0)
        let db = try args.required("db")
        let key = try CoordinatorKeyFile.read(from: try args.required("key-file"))
        guard let count = Int(try args.required("count")), count >= 0 else {
            throw CLIError.usage("--count must be a non-negative integer")
        }
        let collaboration = try args.required("collaboration")
        let log = try AuditLog.openOrCreate(at: db, coordinatorKey: key.verifyingKey)
        let agreement = AuditDigest.sha256(of: Array("synthetic agreement \(collaboration)".utf8))
        let pid = ProcessInfo.processInfo.processIdentifier
        if args.has("barrier") {
            Console.out("ready")
            _ = readLine()
        }
        defer { Console.err("lock waits: \(log.lockWaits)") }
        let kinds = AuditEventKind.allCases
        for i in 0..<count {
            let kind = kinds[i % kinds.count]
            let rows = 1000 + i
            let event = AuditEvent(
                collaborationID: collaboration, runID: "run-\(pid)-\(i)", kind: kind,
                consumerRowsProcessed: rows, consumerIdentifiersProcessed: rows * 2,
                matchedRowsDelivered: kind == .delivered ? rows / 3 : 0,
                deliveredObjectCount: kind == .delivered ? 1 : 0,
                deliveryManifestSHA256: kind == .delivered
                    ? AuditDigest.sha256(of: Array("manifest \(pid) \(i)".utf8)) : nil,
                agreementSHA256: agreement,
                protocolVersion: "\(DomainSeparation.protocolName)-\(DomainSeparation.protocolVersion)",
                normalizationRulesVersion: "norm-1",
                reasonCode: kind == .rejected
                    ? "run.synthetic_rejection" : kind == .failed ? "run.synthetic_failure" : nil)
            let entry = try log.append(event, signedBy: key)
            if !args.has("quiet") { Console.out("appended \(entry.sequence)") }
        }
    }
}
