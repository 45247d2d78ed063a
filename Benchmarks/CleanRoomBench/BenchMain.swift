import Activation
import Foundation
import Identifiers
import RistrettoPSI
import Tabular
import Workflow

/// The benchmark run itself, outside top-level code so that nothing in it is main-actor isolated.
enum BenchMain {
    static func run(_ options: Options) throws {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let bench = Bench(options: options)

        /// Runs `body` with batch arithmetic capped at `threads` (the `CLEANROOM_THREADS` knob).
        func withThreads<T>(_ threads: Int?, _ body: () throws -> T) rethrows -> T {
            let previous = getenv(Parallel.threadsVariable).map { String(cString: $0) }
            if let threads {
                setenv(Parallel.threadsVariable, String(threads), 1)
            } else {
                unsetenv(Parallel.threadsVariable)
            }
            defer {
                if let previous {
                    setenv(Parallel.threadsVariable, previous, 1)
                } else {
                    unsetenv(Parallel.threadsVariable)
                }
            }
            return try body()
        }

        /// The built `cleanroom` binary beside this executable, for the child-process run.
        func cleanroomBinary() -> String? {
            guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else {
                return nil
            }
            let path = (exe as NSString).deletingLastPathComponent + "/cleanroom"
            return FileManager.default.isExecutableFile(atPath: path) ? path : nil
        }

        func machineDescription() -> String {
            var model = "unknown CPU"
            if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
                let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
            {
                model =
                    line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) }
                    ?? model
            }
            let mem =
                (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8))?.split(separator: "\n").first.map(
                    String.init) ?? ""
            let load =
                (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(
                    separator: " ") ?? "?"
            return
                "\(cores) cores (\(model)), \(mem.replacingOccurrences(of: "  ", with: "")), load average \(load), libsodium \(CryptoLibrary.libsodiumVersion)"
        }

        print("cleanroom-bench — \(ISO8601.format(Date()))")
        print("machine: \(machineDescription())")
        print(
            "sizes: \(options.sizes.map(Options.label).joined(separator: ", ")); \(options.runs) timed runs after \(options.warmup) warm-up; median ± half-spread"
        )
        try? FileManager.default.removeItem(atPath: options.workDir)
        try Files.makeDirectory(options.workDir)

        struct Summary: Codable {
            var size: Int
            var boundRate: Double?
            var e2eRate: Double?
            var e2eRatio: Double?
            var e2eProcessesRate: Double?
            var e2eProcessesRatio: Double?
            /// Primitive CPU per element / end-to-end CPU per element: the overhead, independent of load.
            var e2eCPURatio: Double?
            var e2eProcessesCPURatio: Double?
            var e2eConcurrentRate: Double?
            var e2eConcurrentRatio: Double?
            var e2eConcurrentCPURatio: Double?
            var scaling: [String: Double] = [:]
            var roundScaling: [String: Double] = [:]
            var matchRate: Double?
            var peakRSSKiBByRound: [String: Int] = [:]
        }
        var summaries: [Summary] = []

        do {
            for size in options.sizes {
                print("\n== \(Report.count(size)) × \(Report.count(size)) elements ==")
                print(Bench.header)
                let scenario = try Scenario(size: size, root: options.workDir)
                var summary = Summary(size: size)
                let agreement = scenario.agreement
                guard case .rfc9380(let hasher) = agreement.hasher else {
                    throw BenchError("the bench agreement must use RFC 9380 hash-to-group")
                }
                let normalizer = Normalizer(rules: agreement.rules)

                // Read and normalize: the streaming CSV reader and normalization v1, deduplicated as the parties do.
                var messages: [[UInt8]] = []
                func readAndNormalize() throws {
                    var reader = try CSVReader(path: scenario.consumerCSV)
                    let column = try reader.header.require("email")
                    var seen = Set<[UInt8]>(minimumCapacity: size)
                    var out: [[UInt8]] = []
                    out.reserveCapacity(size)
                    while let row = try reader.next() {
                        let m = try normalizer.matchValue(row[column], as: .email).hashToGroupMessage
                        if seen.insert(m).inserted { out.append(m) }
                    }
                    messages = out
                }
                if try bench.measure("read+normalize", size: size, elements: size, readAndNormalize) == nil {
                    try readAndNormalize()
                }

                // The group arithmetic at one thread and on every core, timed alternately (1t, Nt, 1t, …)
                // so that both see the same load from whatever else runs on the machine.
                let a = Scalar.random()
                let b = Scalar.random()
                var hashed = try ElementBatch.hashing(Array(messages.prefix(1)), with: hasher)
                func pair(_ op: String, _ body: () throws -> Void) throws {
                    let (_, n) = try bench.measurePair(
                        reference: op + "@1t", referenceElements: size, { try withThreads(1, body) },
                        subject: op + "@Nt", size: size, elements: size,
                        {
                            try withThreads(nil, body)
                            return (nil, nil, nil)
                        })
                    if let n, let r = n.pairedRatio { summary.scaling[op] = r }
                }
                try pair("hash-to-group") { hashed = try ElementBatch.hashing(messages, with: hasher) }
                if hashed.count != messages.count { hashed = try ElementBatch.hashing(messages, with: hasher) }
                var blinded = ElementBatch()
                try pair("blind") { blinded = try hashed.multiplied(by: a) }
                if blinded.count != messages.count { blinded = try hashed.multiplied(by: a) }
                // What rounds 3 and 4 do per element: strict decode and multiply, fused (ElementBatch.multiplying).
                let blindedBytes = blinded.withUnsafeBytes { Array($0) }
                try pair("re-blind") { _ = try ElementBatch.multiplying(validating: blindedBytes, by: b) }
                try pair("decode") { _ = try ElementBatch(validating: blindedBytes) }
                // The primitive bound: hash-to-group and two scalar multiplications per element, nothing else.
                let bound = { _ = try ElementBatch.hashing(messages, with: hasher).multiplied(by: a).multiplied(by: b) }
                try pair("bound", bound)

                var shuffled = blinded
                try bench.measure(
                    "shuffle", size: size, elements: size, prepare: { shuffled = blinded },
                    {
                        shuffled.shuffle()
                    })

                // Write: body SHA-256, the header signature, an fsync'd atomic write (what each round's output costs).
                let writePath = "\(scenario.dir)/write-test.crm"
                try bench.measure(
                    "write", size: size, elements: size,
                    prepare: { try? FileManager.default.removeItem(atPath: writePath) },
                    {
                        try blinded.withUnsafeBytes { body in
                            let digest = SHA256.hash(Array(body))
                            _ = scenario.consumer.signingKey.signature(for: digest)
                            try Files.writeAtomically(body, to: writePath, exclusive: true)
                        }
                    })
                try? FileManager.default.removeItem(atPath: writePath)

                // End to end in this process, through the message files (the Steps the CLI runs), each
                // run paired with a run of the primitive bound at the same moment.
                var lastRun: (Scenario.Run, String)?
                var runCounter = 0
                func e2e(_ name: String, threads: Int?) throws {
                    guard bench.selected(name) else { return }
                    let (_, _) = try bench.measurePair(
                        reference: threads == 1 ? "bound@1t" : "bound@Nt", referenceElements: 2 * size,
                        {
                            try withThreads(threads, bound)
                            try withThreads(threads, bound)
                        },
                        subject: name, size: size, elements: 2 * size,
                        prepare: {
                            if let (previous, _) = lastRun {
                                try? FileManager.default.removeItem(atPath: previous.dir)
                                lastRun = nil
                            }
                        },
                        {
                            runCounter += 1
                            let run = try scenario.newRun("\(name)-\(runCounter)")
                            let r = try withThreads(threads) { try scenario.endToEnd(run) }
                            lastRun = (run, r.runID)
                            return (nil, r.rounds, nil)
                        })
                }
                try e2e("e2e", threads: nil)
                try e2e("e2e@1t", threads: 1)
                summary.boundRate = bench.result("bound@Nt", size: size)?.rate
                if let e = bench.result("e2e", size: size) {
                    summary.e2eRate = e.rate
                    summary.e2eRatio = e.pairedRatio
                    summary.e2eCPURatio =
                        zip(
                            [e.cpuPerElement],
                            [bench.results.first { $0.name == "bound@Nt" && $0.size == size }?.cpuPerElement]
                        )
                        .compactMap { x, y in x.flatMap { xx in y.map { $0 / xx } } }.first
                    if let one = bench.result("e2e@1t", size: size) {
                        for (r1, rN) in zip(one.rounds ?? [], e.rounds ?? []) {
                            summary.roundScaling[rN.name] = r1.seconds / rN.seconds
                        }
                        summary.scaling["e2e (unpaired)"] = e.rate / one.rate
                    }
                }

                // End to end through child `cleanroom` processes: per-party peak RSS and CPU from wait4.
                // `e2e-processes` runs the six rounds one after the other; `e2e-processes-concurrent`
                // runs rounds 1 ‖ 2 and 3 ‖ 4 at once, as two parties on their own machines would.
                for concurrent in [false, true] {
                    let name = concurrent ? "e2e-processes-concurrent" : "e2e-processes"
                    guard options.processes && bench.selected(name) else { continue }
                    guard let exe = cleanroomBinary() else {
                        print(
                            "  \(name): skipped (no built `cleanroom` beside this executable; run `make release` first)"
                        )
                        continue
                    }
                    var previous: Scenario.Run?
                    var processesRun: (Scenario.Run, String)?
                    let (_, r) = try bench.measurePair(
                        reference: "bound@Nt", referenceElements: 2 * size,
                        {
                            try bound()
                            try bound()
                        },
                        subject: name, size: size, elements: 2 * size,
                        prepare: {
                            if let p = previous { try? FileManager.default.removeItem(atPath: p.dir) }
                        },
                        {
                            runCounter += 1
                            let run = try scenario.newRun("processes-\(runCounter)")
                            previous = run
                            let (rounds, runID, wall) = try scenario.endToEndProcesses(
                                run, cleanroom: exe, concurrent: concurrent)
                            processesRun = (run, runID)
                            return (rounds.reduce(0) { $0 + ($1.cpuSeconds ?? 0) }, rounds, wall)
                        })
                    // The coordinator's stages below use the in-process run's files, else this run's.
                    if lastRun == nil {
                        lastRun = processesRun
                    } else if let p = previous {
                        try? FileManager.default.removeItem(atPath: p.dir)
                    }
                    guard let r else { continue }
                    // Against the bound runs paired with this subject (the last recorded), not an earlier
                    // unpaired one that saw a different load.
                    let cpuRatio = r.cpuPerElement.flatMap { c in
                        bench.results.last(where: { $0.name == "bound@Nt" && $0.size == size })?.cpuPerElement.map {
                            $0 / c
                        }
                    }
                    if concurrent {
                        summary.e2eConcurrentRate = r.rate
                        summary.e2eConcurrentRatio = r.pairedRatio
                        summary.e2eConcurrentCPURatio = cpuRatio
                    } else {
                        for x in r.rounds ?? [] { summary.peakRSSKiBByRound[x.name] = x.peakRSSKiB }
                        summary.e2eProcessesRate = r.rate
                        summary.e2eProcessesRatio = r.pairedRatio
                        summary.e2eProcessesCPURatio = cpuRatio
                    }
                }

                // Without an end-to-end run, `match` runs on synthetic sides of the same shape: the
                // hashed consumer set, and half of it plus half of the blinded set (n/2 matches).
                if lastRun == nil && bench.selected("match") {
                    var probe = ElementBatch()
                    for i in 0..<size { probe.append(i < size / 2 ? hashed[i] : blinded[i]) }
                    var matches = 0
                    if let r = try bench.measure(
                        "match", size: size, elements: 2 * size,
                        {
                            let join = ElementJoin.intersect(hashed, probe)
                            precondition(join.duplicateInA == nil && join.duplicateInB == nil)
                            matches = join.matches.count
                        })
                    {
                        summary.matchRate = r.rate
                        guard matches == size / 2 else {
                            throw BenchError("match found \(matches), expected \(size / 2)")
                        }
                    }
                }

                // The coordinator's stages, on the message files of the last in-process run.
                if let (run, runID) = lastRun, let uuid = UUIDBytes.parse(runID) {
                    let ex = run.exchange
                    let pPath = ex.path(agreement, run: runID, .providerPayload)
                    let cPath = ex.path(agreement, run: runID, .consumerReblinded)
                    let qPath = ex.path(agreement, run: runID, .providerReblinded)
                    var consumerSet: ConsumerReblindedSet?
                    var providerSet: ProviderReblindedSet?
                    var consumerBatch = ElementBatch()
                    var providerBatch = ElementBatch()
                    func leading32(_ m: SignedMessage) -> [UInt8] {
                        var raw = [UInt8]()
                        raw.reserveCapacity(m.count * 32)
                        m.body.withUnsafeBytes { body in
                            for i in 0..<m.count {
                                raw.append(
                                    contentsOf: UnsafeRawBufferPointer(
                                        rebasing: body[(i * m.recordSize)..<(i * m.recordSize + 32)]))
                            }
                        }
                        return raw
                    }
                    func verifyAndDecode() throws {
                        let c = try ConsumerReblindedSet(
                            parsing: try Files.read(cPath), agreement: agreement, run: uuid, source: cPath)
                        let q = try ProviderReblindedSet(
                            parsing: try Files.read(qPath), agreement: agreement, run: uuid, source: qPath)
                        consumerBatch = try ElementBatch(validating: leading32(c.message))
                        providerBatch = try ElementBatch(validating: q.message.body)
                        consumerSet = c
                        providerSet = q
                    }
                    if try bench.measure("verify+decode", size: size, elements: 2 * size, verifyAndDecode) == nil {
                        try verifyAndDecode()
                    }
                    var matches = 0
                    if let r = try bench.measure(
                        "match", size: size, elements: 2 * size,
                        {
                            // What the coordinator runs: dedup both sides and intersect (partitioned join).
                            let join = ElementJoin.intersect(consumerBatch, providerBatch)
                            precondition(join.duplicateInA == nil && join.duplicateInB == nil)
                            matches = join.matches.count
                        })
                    {
                        summary.matchRate = r.rate
                        guard matches == scenario.overlap else {
                            throw BenchError("match found \(matches), expected \(scenario.overlap)")
                        }
                    }
                    let payload = try ProviderPayload(
                        parsing: try Files.read(pPath), agreement: agreement, run: uuid, source: pPath)
                    let coordinator = try Coordinator(agreement: agreement, identity: scenario.coordinator)
                    var plan: DeliveryPlan?
                    func coordinate() throws {
                        let outcome = try coordinator.match(
                            runID: runID, payload: payload, consumerSet: consumerSet!, providerSet: providerSet!,
                            history: RunHistory())
                        guard case .deliver(let p, _) = outcome else {
                            throw BenchError("the coordinator did not deliver")
                        }
                        plan = p
                    }
                    if try bench.measure("coordinator-round", size: size, elements: 2 * size, coordinate) == nil,
                        bench.selected("deliver")
                    {
                        try coordinate()
                    }
                    if let plan {
                        var k = 0
                        let bucket = "\(scenario.dir)/deliver-bench"
                        try bench.measure(
                            "deliver", size: size, elements: plan.manifest.manifest.records,
                            prepare: {
                                try? FileManager.default.removeItem(atPath: bucket)
                                k += 1
                            },
                            {
                                try LocalDirectoryDestination(directory: bucket).deliver(
                                    plan, collaborationID: agreement.terms.collaborationID, runID: runID)
                            })
                        try? FileManager.default.removeItem(atPath: bucket)
                    }
                }
                summaries.append(summary)
                if !options.keep { try? FileManager.default.removeItem(atPath: scenario.dir) }
            }
        } catch {
            FileHandle.standardError.write(Data("cleanroom-bench: \(error)\n".utf8))
            exit(1)
        }

        // Summary: the ratios the issue's targets are stated in.
        print("\n== summary (ratios are measured in the same run, so they hold on a busy machine) ==")
        for s in summaries {
            print("\(Report.count(s.size)) × \(Report.count(s.size)):")
            if let b = s.boundRate {
                print("  primitive bound (hash-to-group + 2 scalar mults, \(cores) threads): \(Report.rate(b))")
            }
            if let e = s.e2eRate, let r = s.e2eRatio {
                print(
                    String(
                        format:
                            "  end to end (in process, all rounds):   %@   throughput ratio to bound %.3f (target ≥ 0.90), CPU-cost ratio %.3f",
                        Report.rate(e), r, s.e2eCPURatio ?? .nan))
            }
            if let e = s.e2eProcessesRate, let r = s.e2eProcessesRatio {
                print(
                    String(
                        format:
                            "  end to end (child processes):          %@   throughput ratio to bound %.3f, CPU-cost ratio %.3f",
                        Report.rate(e), r, s.e2eProcessesCPURatio ?? .nan))
            }
            if let e = s.e2eConcurrentRate, let r = s.e2eConcurrentRatio {
                print(
                    String(
                        format:
                            "  end to end (processes, 1‖2 and 3‖4):   %@   throughput ratio to bound %.3f, CPU-cost ratio %.3f",
                        Report.rate(e), r, s.e2eConcurrentCPURatio ?? .nan))
            }
            if !s.scaling.isEmpty {
                print(
                    "  thread scaling \(cores) vs 1, paired runs (target ≥ 1.8): "
                        + s.scaling.sorted { $0.key < $1.key }.map { String(format: "%@ %.2f×", $0.key, $0.value) }
                        .joined(separator: ", "))
            }
            if !s.roundScaling.isEmpty {
                print(
                    "  per-round scaling: "
                        + s.roundScaling.sorted { $0.key < $1.key }.map { String(format: "%@ %.2f×", $0.key, $0.value) }
                        .joined(separator: ", "))
            }
            if let m = s.matchRate { print("  coordinator matching: \(Report.rate(m))  (target ≥ 10 M/s)") }
            if !s.peakRSSKiBByRound.isEmpty {
                print(
                    "  peak RSS per process: "
                        + s.peakRSSKiBByRound.sorted { $0.key < $1.key }.map { "\($0.key) \(Report.mib($0.value))" }
                        .joined(separator: ", ")
                        + "  (target ≤ 300 MB at 1M)")
            }
        }
        print("this process's peak RSS (VmHWM, all benchmarks together): \(Report.mib(Memory.peakKiB))")

        if let path = options.jsonPath {
            struct Output: Codable {
                let date: String, machine: String, runs: Int, warmup: Int
                let results: [Result]
                let summaries: [Summary]
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let out = Output(
                date: ISO8601.format(Date()), machine: machineDescription(), runs: options.runs, warmup: options.warmup,
                results: bench.results, summaries: summaries)
            try Files.writeAtomically(Array(try encoder.encode(out)), to: path)
        }
        if !options.keep { try? FileManager.default.removeItem(atPath: options.workDir) }

    }
}
