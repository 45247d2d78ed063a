import Activation
import AuditLog
import Foundation
import Identifiers
import RistrettoPSI
import S3Delivery
import Tabular
import Workflow

/// `cleanroom`: the command-line face of CleanRoom. Thin by design: parse, wire, print.
/// All logic lives in the library modules, which the tests use directly.

let usage = """
    usage: cleanroom <command> [<args>]

    commands:
      demo           the main job end to end on embedded defaults (synthetic data, local files)
      keygen         a party's identity: Ed25519 signing key and X25519 sealing key
      collaboration  the agreement: invite (consumer), accept (provider), countersign, verify, show
      provider       prepare (round 1), respond (round 3), open (round 6)
      consumer       prepare (round 2, the activation query), respond (round 4)
      coordinator    match (round 5): verify, intersect, deliver, record in the audit log
      audit          the Clean_Room_Audit_Log: show, verify, checkpoint, export
      debug          reviewer diagnostics: reproduce the spec's vectors from the shell
      version        print the protocol and libsodium versions

    Run 'cleanroom <command> --help' for the subcommands of a command.
    Exit codes: 0 success, 1 failure (bad input, refused, check failed), 64 usage error.
    """

/// Subcommand groups; each returns normally on success or throws `CLIError`.
let commands: [String: @Sendable ([String]) throws -> Void] = [
    "audit": AuditCommands.run,
    "debug": DebugCommands.run,
    "demo": DemoCommand.run,
    "keygen": KeygenCommand.run,
    "collaboration": CollaborationCommands.run,
    "provider": ProviderCommands.run,
    "consumer": ConsumerCommands.run,
    "coordinator": CoordinatorCommands.run,
    "version": VersionCommand.run,
]

@MainActor func main() -> Int32 {
    let argv = Array(CommandLine.arguments.dropFirst())
    guard let name = argv.first else {
        Console.err(usage)
        return ExitCode.usage.rawValue
    }
    if name == "--help" || name == "-h" || name == "help" {
        Console.out(usage)
        return ExitCode.success.rawValue
    }
    guard let command = commands[name] else {
        Console.err("cleanroom: unknown command '\(name)'\n\n\(usage)")
        return ExitCode.usage.rawValue
    }
    // Large sets spill to one scratch file per partition or bucket (SPEC §9 "Bounded memory").
    Files.raiseOpenFileLimit()
    Files.limitMallocArenas()
    do {
        try command(Array(argv.dropFirst()))
        return ExitCode.success.rawValue
    } catch let error as CLIError {
        Console.err("cleanroom \(name): \(error.message)")
        if Console.jsonRequested.isSet {
            FailureJSON.print(
                code: error.exitCode == .usage ? "cli.usage" : "cli.failure", message: error.message,
                exit: error.exitCode)
        }
        return error.exitCode.rawValue
    } catch {
        // Module errors (CryptoError, IdentifierError, …) describe the rule that failed and never
        // carry identifiers or secrets, so they are printed as they are.
        Console.err("cleanroom \(name): \(error)")
        if Console.jsonRequested.isSet {
            FailureJSON.print(code: FailureJSON.code(of: error), message: "\(error)", exit: .failure)
        }
        return ExitCode.failure.rawValue
    }
}

/// With `--json` (a flag of the step's own command line), a failure is also one JSON object on
/// stdout, so a script reads the outcome of every run the same way:
/// `{"error": {"code": …, "message": …}, "exitCode": …}`. The message is the stderr line's
/// (rules, files, rows and columns; never a value, a key or a credential); `code` is the error's
/// stable code from `Protocol/SPEC.md` §10, `cli.usage` or `cli.failure` for the command line's
/// own errors, or null when the error has none. Nothing is added when the command already printed
/// its JSON (a check that reports its findings, then fails), nor for an unknown command.
enum FailureJSON {
    static func print(code: String?, message: String, exit: ExitCode) {
        guard !Console.printedJSON.isSet else { return }
        Console.json([
            "error": ["code": code.map { $0 as Any } ?? NSNull(), "message": message], "exitCode": Int(exit.rawValue),
        ])
    }

    /// The stable code of a module's error; for another type, a leading `a.b: ` of its
    /// description when there is one.
    static func code(of error: any Error) -> String? {
        switch error {
        case let e as ActivationError: return e.code.rawValue
        case let e as WorkflowError: return e.code.rawValue
        case let e as AuditLogError: return e.code.rawValue
        case let e as AWSError: return e.code.rawValue
        case let e as CryptoError: return e.code.rawValue
        case let e as IdentifierError: return e.code.rawValue
        case let e as CSVError: return e.code.rawValue
        default:
            let text = "\(error)"
            guard let colon = text.firstIndex(of: ":") else { return nil }
            let head = text[..<colon]
            let valid =
                head.contains(".")
                && head.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "." || $0 == "_") }
            return valid ? String(head) : nil
        }
    }
}

exit(main())
