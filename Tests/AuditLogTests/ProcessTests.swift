import AuditLog
import Foundation
import RistrettoPSI
import TestSupport
import Testing

/// Tests that drive the built `cleanroom` binary: several real processes and a real SIGKILL.
@Suite("Audit log: processes and CLI")
struct ProcessTests {
    /// A fresh log and coordinator key file in a scratch directory.
    func setUp() throws -> (Scratch, db: String, keyFile: String, key: SigningKey) {
        let scratch = try Scratch()
        let keyFile = scratch.path("coordinator.key")
        let key = SigningKey.generate()
        try CoordinatorKeyFile.write(key, to: keyFile)
        let db = scratch.path("audit.db")
        _ = try AuditLog.create(at: db, coordinatorKey: key.verifyingKey)
        return (scratch, db, keyFile, key)
    }

    @Test("two processes appending at once keep one intact chain with every entry")
    func concurrentAppends() throws {
        let (scratch, db, keyFile, key) = try setUp()
        defer { scratch.expectNoMarkers() }
        let perProcess = 150
        var writers: [(Process, stdin: Pipe, stdout: Pipe, stderr: Pipe)] = []
        for collaboration in ["collab-a", "collab-b"] {
            let p = try CLI.process([
                "debug", "audit-append", "--db", db, "--key-file", keyFile, "--count", String(perProcess),
                "--collaboration", collaboration, "--quiet", "--barrier",
            ])
            let (i, o, e) = (Pipe(), Pipe(), Pipe())
            p.standardInput = i
            p.standardOutput = o
            p.standardError = e
            try p.run()
            writers.append((p, i, o, e))
        }
        // Barrier: both have opened the log; release them together.
        let ready = writers.map {
            String(decoding: $0.stdout.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready")
        }
        guard ready.allSatisfy({ $0 }) else {
            Issue.record("a writer did not reach the barrier")
            for w in writers where w.0.isRunning { kill(w.0.processIdentifier, SIGKILL) }
            return
        }
        signal(SIGPIPE, SIG_IGN)  // a writer that died must fail the test, not kill the runner
        for w in writers { w.stdin.fileHandleForWriting.write(Data("go\n".utf8)) }
        var lockWaits = 0
        for w in writers {
            let err = String(decoding: w.stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            w.0.waitUntilExit()
            #expect(w.0.terminationReason == .exit)
            #expect(w.0.terminationStatus == 0, "stderr: \(err)")
            if let n = err.split(separator: "\n").last(where: { $0.hasPrefix("lock waits: ") }).flatMap({
                Int($0.dropFirst(12))
            }) {
                lockWaits += n
            }
        }
        let log = try AuditLog.openReadOnly(at: db)
        let v = try log.verify(pinnedKey: key.verifyingKey)
        #expect(v.entryCount == 2 * perProcess)
        let epoch = Date(timeIntervalSince1970: 0)
        for c in ["collab-a", "collab-b"] {
            #expect(try log.eventCounts(collaborationID: c, since: epoch).values.reduce(0, +) == perProcess)
        }
        #expect(Set(try log.entries().map(\.entryID)).count == 2 * perProcess)
        // Not asserted (it depends on scheduling), but recorded in the test output for a reader:
        // how often the writers actually waited for each other's lock.
        print("concurrentAppends: \(lockWaits) lock waits across the two writers")
    }

    /// SQLite refuses the switch to WAL with `SQLITE_BUSY` without calling the busy handler when
    /// another process holds a shared lock on the new file; every creator must wait, not fail.
    @Test("six processes creating the same new log at once all append, and the chain verifies")
    func concurrentCreation() throws {
        let scratch = try Scratch()
        defer { scratch.expectNoMarkers() }
        let keyFile = scratch.path("coordinator.key")
        let key = SigningKey.generate()
        try CoordinatorKeyFile.write(key, to: keyFile)
        let writers = 6
        let perProcess = 3
        for round in 0..<4 {
            let db = scratch.path("audit-\(round).db")
            var processes: [(Process, Pipe)] = []
            for w in 0..<writers {
                let p = try CLI.process([
                    "debug", "audit-append", "--db", db, "--key-file", keyFile, "--count", String(perProcess),
                    "--collaboration", "collab-\(w)", "--quiet",
                ])
                let e = Pipe()
                p.standardError = e
                p.standardOutput = FileHandle.nullDevice
                processes.append((p, e))
            }
            for (p, _) in processes { try p.run() }
            for (p, e) in processes {
                let err = String(decoding: e.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                p.waitUntilExit()
                #expect(p.terminationStatus == 0, "round \(round): \(err)")
            }
            let v = try AuditLog.openReadOnly(at: db).verify(pinnedKey: key.verifyingKey)
            #expect(v.entryCount == writers * perProcess)
        }
    }

    @Test("kill -9 during appends leaves a log that verifies and can be extended")
    func killedMidAppend() throws {
        let (scratch, db, keyFile, key) = try setUp()
        defer { scratch.expectNoMarkers() }
        let p = try CLI.process([
            "debug", "audit-append", "--db", db, "--key-file", keyFile, "--count", "1000000",
            "--collaboration", "collab-kill",
        ])
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        // Wait (by output, not by time) until the child has committed 25 entries and is appending more.
        var seen = 0
        var buffer = Data()
        while seen < 25 {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }  // EOF: the child ended early
            buffer.append(chunk)
            seen =
                String(decoding: buffer, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("appended ") }
                .count
        }
        #expect(p.isRunning, "the appender ended before it could be killed")
        #expect(kill(p.processIdentifier, SIGKILL) == 0)
        p.waitUntilExit()
        #expect(p.terminationReason == .uncaughtSignal)
        #expect(p.terminationStatus == SIGKILL)

        let v = try AuditLog.openReadOnly(at: db).verify(pinnedKey: key.verifyingKey)
        #expect(v.entryCount >= 25)
        let log = try AuditLog.openForAppend(at: db)
        let next = try log.append(Fixture.event(collaboration: "collab-kill", run: "run-after-kill"), signedBy: key)
        #expect(next.sequence == Int64(v.entryCount) + 1)
        #expect(try AuditLog.openReadOnly(at: db).verify(pinnedKey: key.verifyingKey).entryCount == v.entryCount + 1)
    }

    @Test("CLI: verify, checkpoint, show and export on a good log; verify with a pinned key and checkpoint")
    func cliRoundTrip() throws {
        let (scratch, db, keyFile, key) = try setUp()
        defer { scratch.expectNoMarkers() }
        let append = try CLI.run([
            "debug", "audit-append", "--db", db, "--key-file", keyFile, "--count", "6", "--collaboration", "collab-cli",
        ])
        #expect(append.status == 0)
        #expect(append.stdout.contains("appended 6"))

        let plain = try CLI.run(["audit", "verify", "--db", db])
        #expect(plain.status == 0)
        #expect(plain.stdout.contains("ok: 6 entries"))
        #expect(plain.stderr.contains("warning: verified only against the coordinator key stored in the database"))

        let pinned = try CLI.run(["audit", "verify", "--db", db, "--coordinator-key", key.verifyingKey.hex])
        #expect(pinned.status == 0)
        #expect(!pinned.stderr.contains("warning"))
        let wrongKey = try CLI.run([
            "audit", "verify", "--db", db, "--coordinator-key", SigningKey.generate().verifyingKey.hex,
        ])
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stderr.contains("audit.key_mismatch"))

        let cp = scratch.path("checkpoint.json")
        #expect(try CLI.run(["audit", "checkpoint", "--db", db, "--out", cp]).status == 0)
        #expect(try AuditCheckpoint.read(from: cp).sequence == 6)
        let withCheckpoint = try CLI.run(["audit", "verify", "--db", db, "--checkpoint", cp, "--json"])
        #expect(withCheckpoint.status == 0)
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(withCheckpoint.stdout.utf8)) as? [String: Any])
        #expect(json["ok"] as? Bool == true)
        #expect(json["key_source"] as? String == "checkpoint")
        #expect(json["entries"] as? Int == 6)

        RawSQL.tamper(db, "DELETE FROM clean_room_audit_log WHERE sequence = 6")
        let truncated = try CLI.run(["audit", "verify", "--db", db, "--checkpoint", cp])
        #expect(truncated.status == 1)
        #expect(truncated.stderr.contains("audit.truncated"))

        let show = try CLI.run(["audit", "show", "--db", db, "--collaboration", "collab-cli"])
        #expect(show.status == 0)
        #expect(show.stdout.contains("5 run event(s)"))
        #expect(show.stdout.contains("delivered 2, rejected 1, below_threshold 1, failed 1"))
        #expect(!show.stdout.contains(key.verifyingKey.hex))  // counts and statuses only
        let showJSON = try CLI.run(["audit", "show", "--db", db, "--collaboration", "collab-cli", "--json"])
        let shown = try #require(try JSONSerialization.jsonObject(with: Data(showJSON.stdout.utf8)) as? [String: Any])
        #expect((shown["runs"] as? [Any])?.count == 5)

        let csv = try CLI.run(["audit", "export", "--db", db, "--format", "csv"])
        #expect(csv.status == 0)
        let lines = csv.stdout.split(separator: "\r\n")
        #expect(lines.count == 6)
        #expect(lines.first?.hasPrefix("sequence,entry_id,collaboration_id") == true)
        let out = scratch.path("export.jsonl")
        #expect(try CLI.run(["audit", "export", "--db", db, "--format", "jsonl", "--out", out]).status == 0)
        let jsonl = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(jsonl.count == 5)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(jsonl[0].utf8)) as? [String: Any])
        #expect(first["sequence"] as? Int == 1)
        #expect(first["reason_code"] is NSNull)
        // never overwrites
        #expect(try CLI.run(["audit", "export", "--db", db, "--format", "jsonl", "--out", out]).status == 1)
    }

    @Test("CLI: every audit command has --help, usage errors exit 64, and personal data in IDs is refused")
    func cliHelpAndUsage() throws {
        for args in [
            ["audit", "--help"], ["audit", "show", "--help"], ["audit", "verify", "--help"],
            ["audit", "checkpoint", "--help"], ["audit", "export", "--help"],
            ["debug", "audit-append", "--help"], ["debug", "audit-keygen", "--help"],
        ] {
            let r = try CLI.run(args)
            #expect(r.status == 0, "\(args)")
            #expect(r.stdout.contains("USAGE") || r.stdout.contains("usage"), "\(args)")
        }
        let main = try CLI.run(["--help"])
        #expect(main.stdout.contains("audit"))
        #expect(!main.stdout.contains("audit-append"))
        #expect(try CLI.run(["audit"]).status == 64)
        #expect(try CLI.run(["audit", "verify"]).status == 64)
        #expect(try CLI.run(["audit", "export", "--db", "x.db", "--format", "xml"]).status == 64)
        #expect(try CLI.run(["audit", "verify", "--db", "x.db", "--coordinator-key", "zz"]).status == 64)

        let (scratch, db, keyFile, _) = try setUp()
        defer { scratch.expectNoMarkers() }
        let r = try CLI.run([
            "debug", "audit-append", "--db", db, "--key-file", keyFile, "--count", "1", "--collaboration", Marker.email,
        ])
        #expect(r.status == 1)
        #expect(r.stderr.contains("audit.invalid_field"))
        #expect(!r.stderr.contains(Marker.email))
        #expect(try AuditLog.openReadOnly(at: db).count() == 0)
    }

    @Test("CLI: audit-keygen writes a 0600 seed file and prints only the public key")
    func keygen() throws {
        let scratch = try Scratch()
        let out = scratch.path("coordinator.key")
        let r = try CLI.run(["debug", "audit-keygen", "--out", out])
        #expect(r.status == 0)
        let key = try CoordinatorKeyFile.read(from: out)
        let seedHex = key.withSeed { Hex.encode($0) }
        #expect(r.stdout.contains(key.verifyingKey.hex))
        #expect(!r.stdout.contains(seedHex) && !r.stderr.contains(seedHex))
        #expect((try FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int) == 0o600)
        #expect(try CLI.run(["debug", "audit-keygen", "--out", out]).status == 1)  // never overwrites a key
    }
}
