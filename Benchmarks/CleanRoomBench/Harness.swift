import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Command-line options of `cleanroom-bench`.
struct Options {
    static let usage = """
        usage: cleanroom-bench [--sizes 10k,100k,1m] [--runs N] [--warmup N] [--filter <substring>[,<substring>…]]
                               [--exclude <substring>[,<substring>…]] [--work-dir <dir>] [--json <file>] [--no-processes] [--keep] [--list] [--help]

        Measures CleanRoom's throughput stage by stage and end to end against the primitive bound
        (libsodium hash-to-group + 2 scalar multiplications per element, all cores) measured in the
        same run. Every figure is the median of --runs timed runs after --warmup untimed ones.

        OPTIONS:
          --sizes        set sizes (elements per side; k = 1,000, m = 1,000,000)      default 10k,100k
          --runs         timed runs per benchmark                                     default 5
          --warmup       untimed warm-up runs per benchmark                           default 1
          --filter       run only benchmarks whose name contains one of these         default all
          --exclude      skip benchmarks whose name contains one of these (after --filter)
          --work-dir     where the synthetic lists and message files go               default $TMPDIR/cleanroom-bench
          --json         also write every result and the summary as JSON to this file
          --no-processes skip the end-to-end run through child `cleanroom` processes (per-party peak RSS)
          --keep         keep the work directory
          --list         print the benchmark names and exit

        --filter coordinator-scale runs only round 5 on generated N × N inputs (no rounds 1–4), kept
        and reused under --work-dir/coordinator-scale-<N>: see BENCHMARKS.md "Coordinator at scale".

        Threads: batch group arithmetic uses every core, or CLEANROOM_THREADS when set; the
        `@1t` benchmarks set it to 1 to measure thread scaling.
        """

    var sizes = [10_000, 100_000]
    var runs = 5
    var warmup = 1
    var filters: [String] = []
    var excludes: [String] = []
    var workDir = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/cleanroom-bench"
    var jsonPath: String?
    var processes = true
    var keep = false
    var list = false

    struct UsageError: Error { let message: String }

    init(_ argv: [String]) throws {
        var i = 0
        func value(_ flag: String) throws -> String {
            i += 1
            guard i < argv.count else { throw UsageError(message: "\(flag) needs a value") }
            return argv[i]
        }
        func count(_ flag: String, min: Int) throws -> Int {
            let v = try value(flag)
            guard let n = Int(v), n >= min else { throw UsageError(message: "\(flag) must be an integer ≥ \(min)") }
            return n
        }
        while i < argv.count {
            switch argv[i] {
            case "--sizes":
                sizes = try value("--sizes").split(separator: ",").map { s throws in
                    guard let n = Options.size(String(s)), n >= 2 else {
                        throw UsageError(message: "--sizes: '\(s)' is not a size such as 10k or 1m")
                    }
                    return n
                }
            case "--runs": runs = try count("--runs", min: 1)
            case "--warmup": warmup = try count("--warmup", min: 0)
            case "--filter": filters += try value("--filter").split(separator: ",").map(String.init)
            case "--exclude": excludes += try value("--exclude").split(separator: ",").map(String.init)
            case "--work-dir": workDir = try value("--work-dir")
            case "--json": jsonPath = try value("--json")
            case "--no-processes": processes = false
            case "--keep": keep = true
            case "--list": list = true
            case "--help", "-h": throw UsageError(message: "")
            default: throw UsageError(message: "unknown option '\(argv[i])'")
            }
            i += 1
        }
    }

    /// "10k" → 10,000; "1m" → 1,000,000; "2500" → 2,500.
    static func size(_ s: String) -> Int? {
        let t = s.lowercased().trimmingCharacters(in: .whitespaces)
        let (digits, factor): (Substring, Int) =
            t.hasSuffix("k") ? (t.dropLast(), 1_000) : t.hasSuffix("m") ? (t.dropLast(), 1_000_000) : (t[...], 1)
        guard let n = Int(digits) else { return nil }
        return n * factor
    }

    static func label(_ n: Int) -> String {
        if n % 1_000_000 == 0 { return "\(n / 1_000_000)m" }
        if n % 1_000 == 0 { return "\(n / 1_000)k" }
        return "\(n)"
    }
}

/// One benchmark's timed runs.
struct Result: Codable {
    let name: String
    let size: Int
    /// Elements processed per run (the unit of the rate).
    let elements: Int
    let seconds: [Double]
    let median: Double
    /// Elements per second at the median time.
    let rate: Double
    /// (max − min) / median, in percent.
    let spread: Double
    /// CPU seconds (user + system, every thread and child) per element, median over runs.
    var cpuPerElement: Double?
    /// CPU seconds per wall second: ≈ the cores actually used (below 1 on a busy machine).
    var cpuPerWall: Double?
    var peakRSSKiB: Int?
    /// For a benchmark timed alternately with a reference (`pairedWith`): the median over run
    /// pairs of this rate / the reference's rate, so a change of machine load between runs cancels.
    var pairedWith: String?
    var pairedRatio: Double?
    var note: String?
    /// Per-round seconds of the median run (end-to-end benchmarks).
    var rounds: [Round]?

    struct Round: Codable {
        let name: String
        let elements: Int
        let seconds: Double
        var cpuSeconds: Double?
        var peakRSSKiB: Int?
    }

    init(name: String, size: Int, elements: Int, seconds: [Double], cpu: [Double]? = nil) {
        self.name = name
        self.size = size
        self.elements = elements
        self.seconds = seconds
        median = Result.median(seconds)
        rate = median > 0 ? Double(elements) / median : 0
        spread = median > 0 ? (seconds.max()! - seconds.min()!) / median * 100 : 0
        if let cpu, !cpu.isEmpty {
            cpuPerElement = Result.median(cpu) / Double(max(elements, 1))
            cpuPerWall = Result.median(cpu) / max(median, 1e-9)
        }
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

/// The timing loop: warm-up, timed runs, one printed line per benchmark.
final class Bench {
    let options: Options
    private(set) var results: [Result] = []

    init(options: Options) { self.options = options }

    func selected(_ name: String) -> Bool {
        (options.filters.isEmpty || options.filters.contains { name.contains($0) })
            && !options.excludes.contains { name.contains($0) }
    }

    /// One timed body: wall seconds, CPU seconds, and whatever the body reports.
    struct Sample<T> {
        let seconds: Double
        let cpu: Double
        let value: T
    }

    static func sample<T>(_ body: () throws -> T) rethrows -> Sample<T> {
        let c0 = Clock.cpu()
        let t0 = Clock.now()
        let v = try body()
        return Sample(seconds: Clock.now() - t0, cpu: Clock.cpu() - c0, value: v)
    }

    /// Runs `body` `warmup` times untimed, then `runs` times timed (`prepare` runs untimed before
    /// each). Returns nil when the filter excludes `name`.
    @discardableResult
    func measure(_ name: String, size: Int, elements: Int, prepare: () throws -> Void = {}, _ body: () throws -> Void)
        throws -> Result?
    {
        guard selected(name) else { return nil }
        for _ in 0..<options.warmup {
            try prepare()
            try body()
        }
        var samples: [Sample<Void>] = []
        for _ in 0..<options.runs {
            try prepare()
            samples.append(try Bench.sample(body))
        }
        let r = Result(
            name: name, size: size, elements: elements, seconds: samples.map(\.seconds), cpu: samples.map(\.cpu))
        record(r)
        return r
    }

    /// Times `reference` and `subject` alternately (reference first in each pair), so both see the
    /// same machine load; the subject's result carries the median of the per-pair rate ratios.
    /// `subject` returns its own CPU seconds when it runs child processes (nil: this process's),
    /// and may return its own wall seconds (`wall`): the child processes' time without the
    /// benchmark's rusage helpers around them (``Child``); the harness-inclusive median is then
    /// kept in the result's note.
    func measurePair(
        reference: String, referenceElements: Int, _ referenceBody: () throws -> Void,
        subject: String, size: Int, elements: Int, prepare: () throws -> Void = {},
        _ subjectBody: () throws -> (cpu: Double?, rounds: [Result.Round]?, wall: Double?)
    ) throws -> (Result?, Result?) {
        let runReference = selected(reference)
        let runSubject = selected(subject)
        guard runReference || runSubject else { return (nil, nil) }
        for _ in 0..<options.warmup {
            if runReference { try referenceBody() }
            if runSubject {
                try prepare()
                _ = try subjectBody()
            }
        }
        var ref: [Sample<Void>] = []
        var sub: [Sample<(cpu: Double?, rounds: [Result.Round]?, wall: Double?)>] = []
        for _ in 0..<options.runs {
            if runReference { ref.append(try Bench.sample(referenceBody)) }
            if runSubject {
                try prepare()
                sub.append(try Bench.sample(subjectBody))
            }
        }
        var a: Result?
        var b: Result?
        if runReference {
            a = Result(
                name: reference, size: size, elements: referenceElements, seconds: ref.map(\.seconds),
                cpu: ref.map(\.cpu))
            record(a!)
        }
        if runSubject {
            let wall = sub.map { $0.value.wall ?? $0.seconds }
            var r = Result(
                name: subject, size: size, elements: elements, seconds: wall,
                cpu: sub.map { $0.value.cpu ?? $0.cpu })
            if runReference {
                r.pairedWith = reference
                r.pairedRatio = Result.median(
                    zip(ref, wall).map {
                        (Double(referenceElements) / $0.seconds) > 0
                            ? (Double(elements) / $1) / (Double(referenceElements) / $0.seconds) : 0
                    })
            }
            if sub.contains(where: { $0.value.wall != nil }) {
                r.note = String(
                    format: "processes' own wall; with the rusage helpers %.4f s", Result.median(sub.map(\.seconds)))
            }
            let med = zip(sub, wall).min { abs($0.1 - r.median) < abs($1.1 - r.median) }!.0
            r.rounds = med.value.rounds
            r.peakRSSKiB = sub.compactMap { $0.value.rounds?.compactMap(\.peakRSSKiB).max() }.max()
            b = r
            record(r)
        }
        return (a, b)
    }

    /// Adds a result and prints it (and its rounds).
    func record(_ r: Result) {
        results.append(r)
        var line =
            "  " + Report.pad(r.name, 24) + Report.pad(Report.count(r.elements), 11, right: true)
            + Report.pad(String(format: "%.4f s", r.median), 12, right: true)
            + Report.pad(String(format: "±%.1f%%", r.spread / 2), 9, right: true)
            + Report.pad(Report.rate(r.rate), 12, right: true)
            + Report.pad(r.cpuPerElement.map { String(format: "%.1f µs", $0 * 1e6) } ?? "", 11, right: true)
            + Report.pad(r.cpuPerWall.map { String(format: "%.2f", $0) } ?? "", 7, right: true)
        if let p = r.pairedRatio, let w = r.pairedWith { line += String(format: "   %.3f × %@", p, w) }
        if let kib = r.peakRSSKiB { line += "   peak RSS \(Report.mib(kib))" }
        if let n = r.note { line += "   (\(n))" }
        print(line)
        for x in r.rounds ?? [] {
            var l =
                "      " + Report.pad(x.name, 22) + Report.pad(Report.count(x.elements), 9, right: true)
                + Report.pad(String(format: "%.4f s", x.seconds), 12, right: true) + Report.pad("", 9)
                + Report.pad(Report.rate(Double(x.elements) / max(x.seconds, 1e-9)), 12, right: true)
            if let c = x.cpuSeconds {
                l += Report.pad(String(format: "%.1f µs", c / Double(max(x.elements, 1)) * 1e6), 11, right: true)
            }
            if let kib = x.peakRSSKiB { l += "   peak RSS \(Report.mib(kib))" }
            print(l)
        }
        fflush(nil)
    }

    func result(_ name: String, size: Int) -> Result? { results.last { $0.name == name && $0.size == size } }

    static let header =
        "  " + Report.pad("benchmark", 24) + Report.pad("elements", 11, right: true)
        + Report.pad("median", 12, right: true)
        + Report.pad("±", 9, right: true) + Report.pad("elements/s", 12, right: true)
        + Report.pad("cpu/elem", 11, right: true)
        + Report.pad("cores", 7, right: true)
}

/// Monotonic seconds.
enum Clock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    /// CPU seconds of this process so far (user + system, every thread).
    static func cpu() -> Double {
        var u = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }
}

/// Peak and current resident memory of this process, from `/proc/self/status`.
enum Memory {
    static func status(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(
                line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "")
        }
        return nil
    }
    /// VmHWM: the high-water mark of resident memory, KiB.
    static var peakKiB: Int { status("VmHWM") ?? 0 }
}

/// Child processes with their resource usage (`wait4`), for per-party peak RSS.
///
/// Why a helper process: glibc's `posix_spawn` uses `vfork` semantics, and Linux carries the
/// parent's resident-set high-water mark into the child's `ru_maxrss` at `exec`, so a child
/// spawned directly by a benchmark holding a million elements would report the benchmark's own
/// peak. ``measured(_:_:log:)`` therefore spawns this executable in `--rusage-child` mode (a fresh,
/// small process), which spawns the real command and reports the command's `ru_maxrss`.
enum Child {
    struct Outcome: Sendable {
        let seconds: Double
        let peakRSSKiB: Int
        let exitStatus: Int32
        /// User + system CPU seconds of the child.
        var cpuSeconds: Double = 0
        /// `CLOCK_MONOTONIC` (one clock for every process of the machine) just before the spawn
        /// and just after the wait: a stage of children runs from the first start to the last end,
        /// without the time the rusage helper itself takes to start and to exit.
        var started: Double = 0
        var ended: Double = 0
    }

    static let helperFlag = "--rusage-child"

    /// Runs `executable` with `arguments` (stdout and stderr appended to `log`, or inherited when
    /// nil); waits for it and returns its wall time and `ru_maxrss` (KiB on Linux).
    static func run(_ executable: String, _ arguments: [String], log: String?) throws -> Outcome {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let log {
            posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let t0 = Clock.now()
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard rc == 0 else { throw BenchError("cannot start \(executable): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let t1 = Clock.now()
        let seconds = t1 - t0
        let exited = (status & 0x7f) == 0
        let cpu =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(
                usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return Outcome(
            seconds: seconds, peakRSSKiB: Int(usage.ru_maxrss),
            exitStatus: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
            cpuSeconds: cpu, started: t0, ended: t1)
    }

    /// Runs the command through the `--rusage-child` helper (see the type's note).
    static func measured(_ executable: String, _ arguments: [String], log: String) throws -> Outcome {
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
            throw BenchError("cannot find this executable through /proc/self/exe")
        }
        let report = log + ".rusage"
        try? FileManager.default.removeItem(atPath: report)
        let helper = try run(me, [helperFlag, report, executable] + arguments, log: log)
        guard let text = try? String(contentsOfFile: report, encoding: .utf8) else {
            throw BenchError("the rusage helper wrote no report (exit \(helper.exitStatus)); see \(log)")
        }
        let f = text.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        guard f.count == 6, let sec = Double(f[0]), let kib = Int(f[1]), let st = Int32(f[2]), let cpu = Double(f[3]),
            let started = Double(f[4]), let ended = Double(f[5])
        else {
            throw BenchError("bad rusage report '\(text)'")
        }
        return Outcome(seconds: sec, peakRSSKiB: kib, exitStatus: st, cpuSeconds: cpu, started: started, ended: ended)
    }

    /// The helper's side: `--rusage-child <report> <executable> <args…>`.
    static func helperMain(_ argv: [String]) -> Never {
        guard argv.count >= 2 else { exit(64) }
        do {
            let o = try run(argv[1], Array(argv.dropFirst(2)), log: nil)
            try "\(o.seconds) \(o.peakRSSKiB) \(o.exitStatus) \(o.cpuSeconds) \(o.started) \(o.ended)\n".write(
                toFile: argv[0], atomically: true, encoding: .utf8)
            exit(o.exitStatus)
        } catch {
            FileHandle.standardError.write(Data("cleanroom-bench rusage helper: \(error)\n".utf8))
            exit(1)
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Number formatting for the tables.
enum Report {
    static func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
        let c = s.count
        guard c < n else { return s + " " }
        return right ? String(repeating: " ", count: n - c) + s : s + String(repeating: " ", count: n - c)
    }
    static func count(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, ch) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return String(out.reversed())
    }
    static func rate(_ r: Double) -> String {
        if r >= 1e6 { return String(format: "%.2f M/s", r / 1e6) }
        if r >= 1e3 { return String(format: "%.1f k/s", r / 1e3) }
        return String(format: "%.0f /s", r)
    }
    static func mib(_ kib: Int) -> String { String(format: "%.1f MiB", Double(kib) / 1024) }
}
