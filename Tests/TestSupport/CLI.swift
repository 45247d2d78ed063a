import Foundation

/// The built `cleanroom` binary.
///
/// `swift test` builds it because the test target depends on `CleanRoomCLI`; it sits next to the
/// test bundle (`.build/<triple>/debug/`). The package-relative path is a fallback.
public enum CLI {
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

    public struct Result: Sendable {
        public let status: Int32
        public let reason: Process.TerminationReason
        public let stdout: String
        public let stderr: String
    }

    public struct NotBuilt: Error, CustomStringConvertible {
        public var description: String {
            "the cleanroom binary was not found next to the test bundle; run `swift build` first"
        }
    }

    public static func path() throws -> String {
        guard let binary else { throw NotBuilt() }
        return binary
    }

    public static func process(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try path())
        p.arguments = args
        return p
    }

    /// Runs the CLI to completion, capturing output through files (no pipe can fill up).
    /// - Parameter environment: extra variables over the test process's own (AWS settings).
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

    public struct Failed: Error, CustomStringConvertible {
        public let args: [String]
        public let result: Result
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
