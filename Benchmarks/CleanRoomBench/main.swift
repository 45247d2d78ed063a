import Activation
import Foundation
import Identifiers
import RistrettoPSI
import Tabular
import Workflow

/// `cleanroom-bench`: CleanRoom's performance tester (see `BENCHMARKS.md` and `Options.usage`).
///
/// Every figure is elements per second, the median of several timed runs after a warm-up. The
/// primitive bound (libsodium hash-to-group + 2 scalar multiplications per element, all cores)
/// is measured in the same run, so the end-to-end ratio does not depend on how busy the machine is.

let benchmarkNames = [
    "read+normalize", "hash-to-group@1t", "hash-to-group@Nt", "blind@1t", "blind@Nt", "re-blind@1t", "re-blind@Nt",
    "decode@1t", "decode@Nt", "bound@1t", "bound@Nt", "shuffle", "write", "e2e", "e2e@1t", "e2e-processes",
    "e2e-processes-concurrent",
    "verify+decode", "match", "coordinator-round", "deliver", CoordinatorScale.filterName,
]

#if DEBUG
let debugBanner = """

    ================================================================================
    ==  WARNING: cleanroom-bench is a DEBUG build. Its numbers mean nothing.      ==
    ==  Measure with `make bench` (release builds of cleanroom and the bench).    ==
    ================================================================================

    """
#endif

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == Child.helperFlag {
    Child.helperMain(Array(CommandLine.arguments.dropFirst(2)))
}

let options: Options
do { options = try Options(Array(CommandLine.arguments.dropFirst())) } catch let e as Options.UsageError {
    if e.message.isEmpty {
        print(Options.usage)
        exit(0)
    }
    FileHandle.standardError.write(Data("cleanroom-bench: \(e.message)\n\n\(Options.usage)\n".utf8))
    exit(64)
}
if options.list {
    for n in benchmarkNames { print(n) }
    exit(0)
}
#if DEBUG
FileHandle.standardError.write(Data(debugBanner.utf8))
#endif

// Round 5 alone on generated inputs (BENCHMARKS.md "Coordinator at scale"): a mode of its own.
if options.filters.contains(CoordinatorScale.filterName) {
    do { try CoordinatorScale.run(options) } catch {
        FileHandle.standardError.write(Data("cleanroom-bench: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}

do { try BenchMain.run(options) } catch {
    FileHandle.standardError.write(Data("cleanroom-bench: \(error)\n".utf8))
    exit(1)
}
