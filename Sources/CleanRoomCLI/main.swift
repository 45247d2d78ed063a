import Foundation
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
    do {
        try command(Array(argv.dropFirst()))
        return ExitCode.success.rawValue
    } catch let error as CLIError {
        Console.err("cleanroom \(name): \(error.message)")
        return error.exitCode.rawValue
    } catch {
        // Module errors (CryptoError, IdentifierError, …) describe the rule that failed and never
        // carry identifiers or secrets, so they are printed as they are.
        Console.err("cleanroom \(name): \(error)")
        return ExitCode.failure.rawValue
    }
}

exit(main())
