import Foundation
import TestSupport
import Testing

/// Issue 7's bad input against every role, through the built `cleanroom` binary as a party would
/// meet it: each case exits 1, names the file (and row, column, rule where there is one) and the
/// stable code, never repeats the value, and leaves no message and no state file behind.
/// The table of cases is Protocol/BAD_INPUT.md.
@Suite("Bad input through the CLI", .serialized)
struct BadInputCLITests {
    typealias Collaboration = EndToEndCLITests.Collaboration
    /// One signed collaboration shared by the cases (keygen and the agreement take a few processes).
    static let shared = try! Collaboration()
    static let consumerHeader = "member_id,email,phone,ads_consent\n"
    /// A value that must never appear in any error output.
    static let secret = "never.echo.this.person"

    /// Writes `bytes` as `customers.csv` in a fresh directory and runs `consumer prepare` on it.
    static func consumerPrepare(_ bytes: [UInt8], extra: [String] = []) throws -> (result: CLI.Result, run: String) {
        let c = shared
        let run = EndToEndCLITests.newRun()
        let dir = "\(c.root)/consumer/inputs/\(run)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/customers.csv"))
        return (try c.consumerPrepare(run, input: "\(dir)/customers.csv", extra: extra), run)
    }

    /// The refusal contract: exit 1, the code and each of `mentions` in stderr, no secret, no output.
    static func expectRefused(
        _ r: CLI.Result, run: String, code: String, mentions: [String] = ["customers.csv"],
        role: String = "consumer", sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(r.status == 1, "exit status", sourceLocation: sourceLocation)
        #expect(r.stderr.contains(code), "stderr names \(code): \(r.stderr)", sourceLocation: sourceLocation)
        for m in mentions {
            #expect(r.stderr.contains(m), "stderr names \(m): \(r.stderr)", sourceLocation: sourceLocation)
        }
        #expect(
            !r.stderr.contains(secret) && !r.stdout.contains(secret), "the value is never echoed",
            sourceLocation: sourceLocation)
        let collab = try EndToEndCLITests.collaborationID(shared)
        #expect(
            !FileManager.default.fileExists(atPath: "\(shared.exchange)/\(collab)/\(run)"), "no message written",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: "\(shared.state(role))/\(collab)/\(run).\(role).state"),
            "no state written",
            sourceLocation: sourceLocation)
        #expect(
            !FileManager.default.fileExists(atPath: "\(shared.state(role))/\(collab)/\(run).\(role).skipped.csv"),
            "no skip report",
            sourceLocation: sourceLocation)
    }

    // MARK: CSV

    struct CSVCase: CustomTestStringConvertible, Sendable {
        let name: String, bytes: [UInt8], code: String, mentions: [String]
        var testDescription: String { "\(name) → \(code)" }
    }
    static let csvCases: [CSVCase] = [
        CSVCase(name: "empty file", bytes: [], code: "csv.empty_file", mentions: ["customers.csv"]),
        CSVCase(
            name: "header only", bytes: Array(consumerHeader.utf8), code: "activation.invalid_input",
            mentions: ["customers.csv", "no identifiers"]),
        CSVCase(
            name: "missing column", bytes: Array("member_id,email,ads_consent\nM1,\(secret)@example.com,yes\n".utf8),
            code: "csv.missing_column", mentions: ["customers.csv", "phone"]),
        CSVCase(
            name: "extra field", bytes: Array((consumerHeader + "M1,\(secret)@example.com,,yes,extra\n").utf8),
            code: "csv.field_count", mentions: ["customers.csv", "row 1"]),
        CSVCase(
            name: "missing field", bytes: Array((consumerHeader + "M1,\(secret)@example.com,\n").utf8),
            code: "csv.field_count", mentions: ["customers.csv", "row 1"]),
        CSVCase(
            name: "non-UTF-8 identifier",
            bytes: Array((consumerHeader + "M1,").utf8) + [0xFF, 0xFE] + Array("\(secret)@example.com,,yes\n".utf8),
            code: "identifier.not_utf8", mentions: ["customers.csv row 1", "'email'"]),
        CSVCase(
            name: "non-UTF-8 header",
            bytes: Array("member_id,em".utf8) + [0xFF] + Array("ail,phone,ads_consent\nM1,a@example.com,,yes\n".utf8),
            code: "csv.header_not_utf8", mentions: ["customers.csv"]),
        CSVCase(
            name: "unterminated quote", bytes: Array((consumerHeader + "M1,\"\(secret)@example.com,,yes\n").utf8),
            code: "csv.unterminated_quote", mentions: ["customers.csv"]),
        CSVCase(
            name: "every identifier invalid",
            bytes: Array((consumerHeader + "M1,\(secret)-at-example.com,12,yes\nM2,\(secret)@@x,+,yes\n").utf8),
            code: "activation.invalid_input", mentions: ["customers.csv row 1", "'email'"]),
    ]

    @Test("a consumer CSV that must be refused", arguments: csvCases)
    func consumerCSVRefused(_ c: CSVCase) throws {
        let (r, run) = try Self.consumerPrepare(c.bytes)
        try Self.expectRefused(r, run: run, code: c.code, mentions: c.mentions)
    }

    /// With `--json` the same refusal is also one JSON object on stdout, with the stable code, the
    /// stderr line's message and the exit code (README "Exit codes"), and still never the value.
    @Test("a consumer CSV that must be refused, with --json", arguments: csvCases)
    func consumerCSVRefusedAsJSON(_ c: CSVCase) throws {
        let (r, run) = try Self.consumerPrepare(c.bytes, extra: ["--json"])
        try Self.expectRefused(r, run: run, code: c.code, mentions: c.mentions)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "stdout: \(r.stdout)")
        let error = try #require(object["error"] as? [String: Any])
        let message = try #require(error["message"] as? String)
        // The thrown error's own code, as its message states it (after the file and row, for
        // a CSV error); a wrapped cause (the rule of a non-UTF-8 value inside
        // `activation.invalid_input`) is named in the message.
        let code = try #require(error["code"] as? String)
        #expect(message.contains(code + ": "), "\(code) is not in \(message)")
        for m in c.mentions + [c.code] { #expect(message.contains(m), "\(m) missing from \(message)") }
        #expect(r.stderr.contains(message), "the message is the stderr line's")
        #expect(object["exitCode"] as? Int == 1)
    }

    @Test("every identifier invalid with --skip-invalid: refused as empty, naming the count and the first skip")
    func everyIdentifierInvalidSkipped() throws {
        let csv = Self.consumerHeader + "M1,\(Self.secret)-at-example.com,,yes\nM2,\(Self.secret)@@x,,yes\n"
        let (r, run) = try Self.consumerPrepare(Array(csv.utf8), extra: ["--skip-invalid"])
        try Self.expectRefused(
            r, run: run, code: "activation.invalid_input",
            mentions: ["customers.csv", "no identifiers", "2 values skipped", "first skipped: row 1, column 'email'"])
    }

    @Test(
        "--skip-invalid with more skips than a summary holds: every one listed by row, column and rule in a private report, no value"
    )
    func everySkipIsInTheReport() throws {
        // 150 invalid emails (rows 2, 4, …, 300) among 170 valid rows: more than the 100 kept in
        // memory, so the report is assembled from memory and from the prepare's scratch file.
        var csv = Self.consumerHeader
        var expected: [String] = []
        for i in 1...320 {
            if i % 2 == 0 && expected.count < 150 {
                csv += "M\(i),\(Self.secret)\(i)-at-example.com,,yes\n"
                expected.append("\(i),email,identifier.email.malformed")
            } else {
                csv += "M\(i),person\(i)@example.com,,yes\n"
            }
        }
        let (r, run) = try Self.consumerPrepare(Array(csv.utf8), extra: ["--skip-invalid"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let collab = try EndToEndCLITests.collaborationID(Self.shared)
        let path = "\(Self.shared.state("consumer"))/\(collab)/\(run).consumer.skipped.csv"
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(summary["skippedValues"] as? Int == 150)
        #expect(summary["skippedReport"] as? String == path)
        #expect(r.stderr.contains("150 invalid values were left out") && r.stderr.contains(path), "stderr: \(r.stderr)")
        #expect(r.stderr.contains("… and 100 more"))
        let report = try String(contentsOfFile: path, encoding: .utf8)
        let lines = report.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "row,column,rule")
        #expect(lines.dropFirst().dropLast().map(String.init) == expected)
        #expect(lines.last == "", "the report ends with a line break")
        #expect(
            !report.contains(Self.secret) && !r.stderr.contains(Self.secret) && !r.stdout.contains(Self.secret),
            "no value anywhere")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode & 0o077 == 0, "the report is private to its owner")
    }

    @Test("prepare again for a published run: refused as already published, its skip report untouched")
    func republishLeavesTheReport() throws {
        let csv = Self.consumerHeader + "M1,\(Self.secret)-at-example.com,,yes\nM2,person2@example.com,,yes\n"
        let (first, run) = try Self.consumerPrepare(Array(csv.utf8), extra: ["--skip-invalid"])
        #expect(first.status == 0, "stderr: \(first.stderr)")
        let collab = try EndToEndCLITests.collaborationID(Self.shared)
        let report = "\(Self.shared.state("consumer"))/\(collab)/\(run).consumer.skipped.csv"
        let before = try Data(contentsOf: URL(fileURLWithPath: report))
        // The same run again: with other skips, and with none.
        for again in [
            Self.consumerHeader + "M1,x@@y,,yes\nM3,z@@w,,yes\nM2,person2@example.com,,yes\n",
            Self.consumerHeader + "M2,person2@example.com,,yes\n",
        ] {
            let input = "\(Self.shared.root)/consumer/inputs/\(run)/again.csv"
            try Data(again.utf8).write(to: URL(fileURLWithPath: input))
            let r = try Self.shared.consumerPrepare(run, input: input, extra: ["--skip-invalid"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("workflow.already_exists"), "stderr: \(r.stderr)")
            #expect(
                try Data(contentsOf: URL(fileURLWithPath: report)) == before, "the published run's report is untouched")
        }
    }

    @Test(
        "10,000 skips under a column name with a comma and quotes: every one in the report, the name quoted as one CSV field"
    )
    func largeReportWithAQuotedColumnName() throws {
        let c = Self.shared
        let run = EndToEndCLITests.newRun()
        let dir = "\(c.root)/consumer/inputs/\(run)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var csv = "member_id,\"e,\"\"mail\"\"\",phone,ads_consent\n"
        var expected = ["row,column,rule"]
        for i in 1...10_050 {
            if i <= 10_000 {
                csv += "M\(i),\(Self.secret)\(i)-at-example.com,,yes\n"
                expected.append("\(i),\"e,\"\"mail\"\"\",identifier.email.malformed")
            } else {
                csv += "M\(i),person\(i)@example.com,,yes\n"
            }
        }
        try Data(csv.utf8).write(to: URL(fileURLWithPath: "\(dir)/customers.csv"))
        let r = try CLI.run([
            "consumer", "prepare", "--agreement", c.agreement, "--identity", c.key("consumer"), "--state-dir",
            c.state("consumer"),
            "--exchange", c.exchange, "--run-id", run, "--input", "\(dir)/customers.csv", "--email-column",
            "e,\"mail\"",
            "--consent-column", "ads_consent", "--member-id-column", "member_id",
            "--segment-id", "loyalty", "--segment-name", "Loyalty members", "--skip-invalid",
        ])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let collab = try EndToEndCLITests.collaborationID(c)
        let report = try String(
            contentsOfFile: "\(c.state("consumer"))/\(collab)/\(run).consumer.skipped.csv", encoding: .utf8)
        #expect(report.split(separator: "\n").map(String.init) == expected)
        #expect(!report.contains(Self.secret))
    }

    @Test("a 10 MB line is refused by row (the reader stops at its 1 MiB record limit)")
    func tenMegabyteLine() throws {
        let csv =
            Array((Self.consumerHeader + "M1,").utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 10 << 20)
            + Array("@example.com,,yes\n".utf8)
        let (r, run) = try Self.consumerPrepare(csv)
        try Self.expectRefused(r, run: run, code: "csv.record_too_long", mentions: ["customers.csv", "row 1"])
    }

    @Test("BOM, CRLF, quoted commas and newlines, duplicate rows: accepted, duplicates counted once")
    func awkwardButValidCSVIsAccepted() throws {
        var csv: [UInt8] = [0xEF, 0xBB, 0xBF]
        csv += Array("member_id,email,phone,ads_consent\r\n".utf8)
        for i in 0..<12 { csv += Array("\"M\(i), \"\"x\"\"\r\nline two\",person\(i)@example.com,,yes\r\n".utf8) }
        csv += Array("\"M0, \"\"x\"\"\r\nline two\",person0@example.com,,yes\r\n".utf8)  // a duplicate row
        // Member IDs here are longer than nothing but well under the 64-byte limit.
        let (r, run) = try Self.consumerPrepare(csv)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        #expect(summary?["rowsRead"] as? Int == 13)
        #expect(summary?["elements"] as? Int == 12)
        #expect(summary?["duplicateIdentifiers"] as? Int == 1)
        _ = run
    }

    @Test("--default-country-code reads this party's national numbers with its own country; an invalid one is refused")
    func partyCountryCode() throws {
        // The agreement's code is 1; a UK customer file in national format needs 44. Both runs
        // must accept the file (the numbers are well formed either way) and blind 12 elements:
        // the override changes which numbers they are, which CountryCodeTests shows by matching.
        var csv = Self.consumerHeader
        for i in 0..<12 { csv += "M\(i),,020 7946 \(String(format: "%04d", i)),yes\n" }
        for extra in [[], ["--default-country-code", "44"], ["--default-country-code", "+44"]] {
            let (r, _) = try Self.consumerPrepare(Array(csv.utf8), extra: extra)
            #expect(r.status == 0, "stderr: \(r.stderr)")
            let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            #expect(summary?["elements"] as? Int == 12)
        }
        for bad in ["0", "4a", "1234"] {
            let (r, run) = try Self.consumerPrepare(Array(csv.utf8), extra: ["--default-country-code", bad])
            try Self.expectRefused(r, run: run, code: "identifier.rules.invalid_country_code")
        }
        let usage = try CLI.run(["consumer", "--help"])
        #expect(usage.stdout.contains("--default-country-code"))
        #expect(try CLI.run(["provider", "--help"]).stdout.contains("--default-country-code"))
    }

    @Test("a provider CSV without its audience key column, or empty, is refused")
    func providerCSVRefused() throws {
        let c = Self.shared
        for (bytes, code) in [
            (Array("email,phone,mobile_ad_id\na@example.com,,\n".utf8), "csv.missing_column"),
            ([UInt8](), "csv.empty_file"),
        ] {
            let run = EndToEndCLITests.newRun()
            let dir = "\(c.root)/provider/inputs/\(run)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(dir)/audience.csv"))
            let r = try c.providerPrepare(run, input: "\(dir)/audience.csv")
            try Self.expectRefused(r, run: run, code: code, mentions: ["audience.csv"], role: "provider")
        }
    }

    @Test("a set above the agreement's --max-set-size is refused before anything is written")
    func setAboveMaximum() throws {
        let c = try Collaboration(extraInvite: ["--max-set-size", "3"])
        let run = EndToEndCLITests.newRun()
        let input = "\(c.root)/consumer/customers.csv"
        try Data((Self.consumerHeader + (0..<5).map { "M\($0),p\($0)@example.com,,yes\n" }.joined()).utf8).write(
            to: URL(fileURLWithPath: input))
        let r = try c.consumerPrepare(run, input: input, extra: [])
        #expect(r.status == 1)
        #expect(r.stderr.contains("activation.invalid_input") && r.stderr.contains("matching.maxSetSize"))
        #expect(!FileManager.default.fileExists(atPath: c.exchange))
    }

    // MARK: Messages and state, at the step that reads them

    /// A run with both prepares done, so each respond step has its input.
    static func preparedRun() throws -> (run: String, collab: String) {
        let c = shared
        let run = EndToEndCLITests.newRun()
        let dir = "\(c.root)/inputs/\(run)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var audience = "audience_id,email,phone,mobile_ad_id\n"
        var customers = consumerHeader
        for i in 0..<30 {
            audience += "aud-\(i),p\(i)@example.com,,\n"
            customers += "M\(i),p\(i + 10)@example.com,,yes\n"
        }
        try Data(audience.utf8).write(to: URL(fileURLWithPath: "\(dir)/audience.csv"))
        try Data(customers.utf8).write(to: URL(fileURLWithPath: "\(dir)/customers.csv"))
        #expect(try c.providerPrepare(run, input: "\(dir)/audience.csv").status == 0)
        #expect(try c.consumerPrepare(run, input: "\(dir)/customers.csv").status == 0)
        return (run, try EndToEndCLITests.collaborationID(c))
    }

    static func providerRespond(_ run: String) throws -> CLI.Result {
        let c = shared
        return try CLI.run([
            "provider", "respond", "--agreement", c.agreement, "--identity", c.key("provider"), "--state-dir",
            c.state("provider"),
            "--exchange", c.exchange, "--run-id", run,
        ])
    }

    struct MessageCase: CustomTestStringConvertible, Sendable {
        let name: String, code: String
        let tamper: @Sendable (inout [UInt8]) -> Void
        var testDescription: String { "\(name) → \(code)" }
    }
    static let messageCases: [MessageCase] = [
        MessageCase(name: "truncated to 100 bytes", code: "activation.message.malformed") {
            $0 = Array($0.prefix(100))
        },
        MessageCase(name: "last byte cut", code: "activation.message.count_mismatch") { $0.removeLast() },
        MessageCase(name: "header bit flipped (reference)", code: "activation.message.signature_invalid") {
            $0[120] ^= 0x01
        },
        MessageCase(name: "body bit flipped", code: "activation.message.checksum_mismatch") {
            $0[$0.count - 100] ^= 0x01
        },
        MessageCase(name: "signature bit flipped", code: "activation.message.signature_invalid") {
            $0[$0.count - 1] ^= 0x01
        },
        MessageCase(name: "wrong version", code: "activation.message.wrong_version") { $0[5] = 2 },
        MessageCase(name: "wrong kind", code: "activation.message.wrong_kind") { $0[6] = 1 },
        MessageCase(name: "empty file", code: "activation.message.malformed") { $0 = [] },
    ]

    @Test("a tampered consumer-blinded.crm at provider respond", arguments: messageCases)
    func tamperedMessage(_ m: MessageCase) throws {
        let (run, collab) = try Self.preparedRun()
        let path = "\(Self.shared.exchange)/\(collab)/\(run)/consumer-blinded.crm"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        m.tamper(&bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try Self.providerRespond(run)
        #expect(r.status == 1)
        #expect(r.stderr.contains(m.code), "stderr: \(r.stderr)")
        #expect(r.stderr.contains("consumer-blinded.crm"), "the error names the file")
        #expect(
            !FileManager.default.fileExists(atPath: "\(Self.shared.exchange)/\(collab)/\(run)/consumer-reblinded.crm"),
            "no answer written")
        // The state survives a refused message, so the run can still complete with the right file.
        #expect(
            FileManager.default.fileExists(atPath: "\(Self.shared.state("provider"))/\(collab)/\(run).provider.state"))
    }

    @Test("a tampered provider-blinded.crm at consumer respond")
    func tamperedMessageAtTheConsumer() throws {
        let c = Self.shared
        let (run, collab) = try Self.preparedRun()
        let path = "\(c.exchange)/\(collab)/\(run)/provider-blinded.crm"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 80] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try CLI.run([
            "consumer", "respond", "--agreement", c.agreement, "--identity", c.key("consumer"), "--state-dir",
            c.state("consumer"),
            "--exchange", c.exchange, "--run-id", run,
        ])
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("activation.message.checksum_mismatch") && r.stderr.contains("provider-blinded.crm"),
            "stderr: \(r.stderr)")
        #expect(
            !FileManager.default.fileExists(atPath: "\(c.exchange)/\(collab)/\(run)/provider-reblinded.crm"),
            "no answer written")
    }

    @Test(
        "a tampered message at coordinator match: refused, recorded as rejected with its code, nothing delivered",
        arguments: ["provider-payload.crm", "consumer-reblinded.crm", "provider-reblinded.crm"])
    func tamperedMessageAtTheCoordinator(_ file: String) throws {
        let c = Self.shared
        let (run, collab) = try Self.preparedRun()
        try c.respondBoth(run)
        let path = "\(c.exchange)/\(collab)/\(run)/\(file)"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 80] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let r = try c.match(run)
        #expect(r.status == 1)
        #expect(
            r.stderr.contains("activation.message.checksum_mismatch") && r.stderr.contains(file), "stderr: \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(c.bucket)/\(collab)/\(run)"), "nothing delivered")
        let log = try CLI.run(["audit", "show", "--db", c.audit, "--collaboration", collab])
        #expect(log.status == 0)
        #expect(
            log.stdout.contains(run) && log.stdout.contains("activation.message.checksum_mismatch"),
            "audit: \(log.stdout)")
    }

    @Test("a message replayed from another run is refused as wrong_run")
    func replayedFromAnotherRun() throws {
        let (runA, collab) = try Self.preparedRun()
        let (runB, _) = try Self.preparedRun()
        let ex = "\(Self.shared.exchange)/\(collab)"
        try FileManager.default.removeItem(atPath: "\(ex)/\(runB)/consumer-blinded.crm")
        try FileManager.default.copyItem(
            atPath: "\(ex)/\(runA)/consumer-blinded.crm", toPath: "\(ex)/\(runB)/consumer-blinded.crm")
        let r = try Self.providerRespond(runB)
        #expect(r.status == 1)
        #expect(r.stderr.contains("activation.message.wrong_run"), "stderr: \(r.stderr)")
    }

    @Test("state file missing, corrupted, or from another run")
    func stateFiles() throws {
        let c = Self.shared
        let (runA, collab) = try Self.preparedRun()
        let (runB, _) = try Self.preparedRun()
        let state = { (run: String) in "\(c.state("provider"))/\(collab)/\(run).provider.state" }
        // From another run: run A's state under run B's name.
        try FileManager.default.removeItem(atPath: state(runB))
        try FileManager.default.copyItem(atPath: state(runA), toPath: state(runB))
        let foreign = try Self.providerRespond(runB)
        #expect(foreign.status == 1)
        #expect(
            foreign.stderr.contains("activation.state.invalid") && foreign.stderr.contains("belongs to run"),
            "stderr: \(foreign.stderr)")
        // Corrupted.
        try Data([UInt8](repeating: 7, count: 135)).write(to: URL(fileURLWithPath: state(runB)))
        let corrupted = try Self.providerRespond(runB)
        #expect(corrupted.status == 1)
        #expect(corrupted.stderr.contains("activation.state.invalid"), "stderr: \(corrupted.stderr)")
        #expect(corrupted.stderr.contains(".provider.state"), "the error names the file")
        // Missing.
        try FileManager.default.removeItem(atPath: state(runB))
        let missing = try Self.providerRespond(runB)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("workflow.not_found"), "stderr: \(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(c.exchange)/\(collab)/\(runB)/consumer-reblinded.crm"))
    }
}
