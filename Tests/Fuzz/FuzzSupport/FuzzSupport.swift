// Shared by the libFuzzer harnesses in Tests/Fuzz (see Tests/Fuzz/README.md).
import Foundation

/// Stops the process when a harness invariant breaks, so libFuzzer records the input as a crash.
///
/// A broken invariant is a bug in the code under test, never in the input: the harnesses only
/// assert properties that must hold for every byte string.
public func invariant(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fatalError("fuzz invariant broken: \(message())", file: file, line: line) }
}

/// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput` (a null pointer only for an empty input).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// The entry point of a harness built without libFuzzer (a plain `swift build`): runs each file
/// named on the command line, or every file of each directory named, through `body`, so a crash
/// input or a whole corpus can be replayed under a debugger or the address sanitizer.
///
/// Exits 0 after the last input, 64 for a usage error.
public func replayMain(_ name: String, _ body: ([UInt8]) -> Void) -> Never {
    let args = CommandLine.arguments.dropFirst()
    guard !args.isEmpty, !args.contains("--help") else {
        print(
            """
            USAGE: \(name) <file-or-directory>...
            Runs each input through the \(name) harness once. Built this way (without libFuzzer) the
            harness only replays inputs; Tests/scripts/fuzz.sh builds it with -sanitize=fuzzer,address.
            """)
        exit(args.isEmpty ? 64 : 0)
    }
    var count = 0
    for arg in args {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: arg, isDirectory: &isDirectory) else {
            FileHandle.standardError.write(Data("\(name): no such file or directory: \(arg)\n".utf8))
            exit(1)
        }
        let files =
            isDirectory.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: arg)) ?? []).sorted().map { "\(arg)/\($0)" }
            : [arg]
        for file in files {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            body(Array(bytes))
            count += 1
        }
    }
    print("\(name): \(count) input(s) replayed, no invariant broken")
    exit(0)
}
