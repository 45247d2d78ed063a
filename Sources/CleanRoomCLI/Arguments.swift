import Foundation

/// Exit codes shared by every subcommand (documented in README.md).
enum ExitCode: Int32 {
    case success = 0
    /// The command ran and failed: bad input, a refused run, a failed check.
    case failure = 1
    /// The command line itself is wrong (BSD `EX_USAGE`).
    case usage = 64
}

/// A failure that ends a subcommand with a message on stderr and an exit code.
struct CLIError: Error {
    let message: String
    let exitCode: ExitCode
    static func usage(_ message: String) -> CLIError { CLIError(message: message, exitCode: .usage) }
    static func failure(_ message: String) -> CLIError { CLIError(message: message, exitCode: .failure) }
}

/// A small GNU-style argument parser: `--flag`, `--option value`, `--option=value`, positionals.
///
/// Every subcommand declares the flags and options it accepts, so a typo is a usage error, not a
/// silently ignored option.
struct Arguments {
    private(set) var flags: Set<String> = []
    private(set) var options: [String: [String]] = [:]
    private(set) var positionals: [String] = []

    init(_ argv: [String], flags allowedFlags: Set<String> = [], options allowedOptions: Set<String> = []) throws {
        do {
            try parse(argv, allowedFlags, allowedOptions)
        } catch {
            // A command line refused before its end: `--json` as a flag of its own counts
            // (a contrived `--json` meant as an option's value is taken as the flag here).
            if allowedFlags.contains("json") && argv.prefix(while: { $0 != "--" }).contains("--json") {
                Console.jsonRequested.set()
            }
            throw error
        }
        // A failure after this point is reported as JSON too (main.swift's `FailureJSON`).
        if flags.contains("json") { Console.jsonRequested.set() }
    }

    private mutating func parse(_ argv: [String], _ allowedFlags: Set<String>, _ allowedOptions: Set<String>) throws {
        var i = 0
        var onlyPositionals = false
        while i < argv.count {
            let a = argv[i]
            i += 1
            if onlyPositionals || !a.hasPrefix("--") || a == "-" {
                positionals.append(a)
                continue
            }
            if a == "--" {
                onlyPositionals = true
                continue
            }
            var name = String(a.dropFirst(2))
            var inlineValue: String?
            if let eq = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: eq)...])
                name = String(name[..<eq])
            }
            if allowedFlags.contains(name) {
                guard inlineValue == nil else { throw CLIError.usage("--\(name) takes no value") }
                flags.insert(name)
            } else if allowedOptions.contains(name) {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard i < argv.count else { throw CLIError.usage("--\(name) needs a value") }
                    value = argv[i]
                    i += 1
                }
                options[name, default: []].append(value)
            } else {
                throw CLIError.usage("unknown option --\(name)")
            }
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }

    /// The single value of an option, or nil when absent; repeating it is a usage error.
    func value(_ name: String) throws -> String? {
        guard let v = options[name] else { return nil }
        guard v.count == 1 else { throw CLIError.usage("--\(name) given more than once") }
        return v[0]
    }

    func required(_ name: String) throws -> String {
        guard let v = try value(name) else { throw CLIError.usage("missing --\(name)") }
        return v
    }

    func values(_ name: String) -> [String] { options[name] ?? [] }

    func positional(_ index: Int, _ what: String) throws -> String {
        guard index < positionals.count else { throw CLIError.usage("missing \(what)") }
        return positionals[index]
    }

    func expectPositionals(_ count: Int) throws {
        if positionals.count > count { throw CLIError.usage("unexpected argument") }
    }
}

/// Output helpers: results on stdout, diagnostics and progress on stderr.
enum Console {
    static func out(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
    static func err(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
    /// Prints a JSON object with sorted keys, for `--json` summaries that scripts read.
    static func json(_ object: Any) {
        if let data = try? JSONSerialization.data(
            withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]),
            let s = String(data: data, encoding: .utf8)
        {
            printedJSON.set()
            out(s)
        }
    }

    /// Whether a command printed its JSON object: a failure after that (a check that printed
    /// its findings, then failed) must not add a second object to stdout.
    static let printedJSON = Flag()
    /// Whether the command line asked for `--json` (set by ``Arguments`` when it parses the flag).
    static let jsonRequested = Flag()

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() {
            lock.lock()
            value = true
            lock.unlock()
        }
        var isSet: Bool {
            lock.lock()
            defer { lock.unlock() }
            return value
        }
    }
}

/// Dispatch of a command group's subcommands: `--help` (or nothing) prints the group's usage,
/// an unknown name is a usage error naming the group.
enum Subcommands {
    static func dispatch(
        _ argv: [String], group: String, usage: String,
        _ table: KeyValuePairs<String, ([String]) throws -> Void>
    ) throws {
        guard let sub = argv.first, sub != "--help", sub != "-h" else {
            Console.out(usage)
            if argv.isEmpty { throw CLIError.usage("missing subcommand") }
            return
        }
        guard let handler = table.first(where: { $0.key == sub })?.value else {
            throw CLIError.usage("unknown \(group) subcommand '\(sub)'\n\n\(usage)")
        }
        try handler(Array(argv.dropFirst()))
    }
}
