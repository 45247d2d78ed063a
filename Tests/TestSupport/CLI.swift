import Foundation

/// The built `cleanroom` binary.
///
/// `swift test` builds it because the test target depends on `CleanRoomCLI`; it sits next to the
/// test bundle (`.build/<triple>/debug/`). The package-relative path is a fallback.
public enum CLI {
    /// The binary's path, looked up once; nil when no candidate directory holds an executable `cleanroom`.
    public static let binary: String? = {
        var dirs: [URL] = []
        if let exe = Bundle.main.executableURL { dirs.append(exe.deletingLastPathComponent()) }
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        dirs.append(Bundle.main.bundleURL)
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        dirs.append(packageRoot.appendingPathComponent(".build/debug"))
        for d in dirs {
            let candidate = d.appendingPathComponent("cleanroom").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    /// How a finished run ended and everything it wrote.
    public struct Result: Sendable {
        /// The exit status, or the signal number when `reason` is `.uncaughtSignal`.
        public let status: Int32
        /// Whether the process exited or was ended by a signal.
        public let reason: Process.TerminationReason
        /// All of standard output, as UTF-8 (empty if it was not valid UTF-8).
        public let stdout: String
        /// All of standard error, as UTF-8 (empty if it was not valid UTF-8).
        public let stderr: String
    }

    /// Thrown when ``binary`` is nil: no built `cleanroom` was found.
    public struct NotBuilt: Error, CustomStringConvertible {
        /// Says the binary is missing and that `swift build` makes it.
        public var description: String {
            "the cleanroom binary was not found next to the test bundle; run `swift build` first"
        }
    }

    /// The binary's path; throws ``NotBuilt`` when there is none.
    public static func path() throws -> String {
        guard let binary else { throw NotBuilt() }
        return binary
    }

    /// A `Process` for the binary with `args`, not started, for tests that drive it themselves (pipes,
    /// signals); throws ``NotBuilt`` when there is no binary.
    public static func process(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try path())
        p.arguments = args
        return p
    }

    /// Runs the CLI to completion, capturing output through files (no pipe can fill up).
    /// - Parameters:
    ///   - args: the arguments after the program name.
    ///   - environment: extra variables over the test process's own (AWS settings).
    /// - Returns: the exit status and the whole output; a non-zero exit is not an error here.
    /// - Throws: ``NotBuilt`` without a binary, or the error of creating the output files or
    ///   launching the process.
    public static func run(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        let p = try process(args)
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        let err = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        return Result(
            status: p.terminationStatus, reason: p.terminationReason,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Thrown by ``expectSuccess(_:environment:)`` when the CLI exits non-zero.
    public struct Failed: Error, CustomStringConvertible {
        /// The arguments the CLI was run with.
        public let args: [String]
        /// How the run ended and what it wrote.
        public let result: Result
        /// The command line, the exit status and the run's stderr.
        public var description: String {
            "cleanroom \(args.joined(separator: " ")) exited \(result.status): \(result.stderr)"
        }
    }

    /// Runs the CLI and throws unless it exits 0.
    @discardableResult
    public static func expectSuccess(_ args: [String], environment: [String: String] = [:]) throws -> Result {
        let r = try run(args, environment: environment)
        guard r.status == 0 else { throw Failed(args: args, result: r) }
        return r
    }
}
