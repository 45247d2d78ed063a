import Foundation

/// `cleanroom`: the command-line face of CleanRoom. Thin by design: parse, wire, print.
/// All logic lives in the library modules, which the tests use directly.

let usage = """
usage: cleanroom <command> [<args>]

commands:
  audit     the Clean_Room_Audit_Log: show, verify, checkpoint, export
            (counts and statuses of every run, hash-chained and signed)
  debug     reviewer diagnostics: reproduce the spec's vectors from the shell
            (hash-to-group, expand-message, decode-element, scalar-mult, normalize)
  version   print the tool, protocol and libsodium versions

Run 'cleanroom <command> --help' for the subcommands of a command.
Exit codes: 0 success, 1 failure (bad input, refused, check failed), 64 usage error.
"""

/// Subcommand groups; each returns normally on success or throws `CLIError`.
let commands: [String: @Sendable ([String]) throws -> Void] = [
    "audit": AuditCommands.run,
    "debug": DebugCommands.run,
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
