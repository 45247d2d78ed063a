@_spi(Benchmarks) import Activation
import Foundation
@_spi(Benchmarks) import RistrettoPSI
import Workflow

#if canImport(Glibc)
import Glibc
#endif

/// `cleanroom-bench --filter coordinator-scale --sizes 10m,30m,100m`: round 5 alone at sizes
/// where running rounds 1–4 would take hours (BENCHMARKS.md "Coordinator at scale").
///
/// For each size `N` it writes the coordinator's three round-5 inputs for an `N × N` run with
/// `N − N/2` in common straight from group arithmetic: provider position `i` holds
/// `E_i = base + i·B` (`B` the generator, `base` a random element), the consumer's `N` elements
/// are `E_{N/2} … E_{N/2+N−1}` (so positions `N/2 …` of the provider match), every element a
/// valid, distinct encoding (`RistrettoElement.writeProgression`, both cores). Payload rows are a
/// permutation of `0..<N` (`i·A mod N`), so the matches reach the coordinator's sort out of order
/// as real shuffled rounds would make them. The messages are written and signed with
/// `MessageWriter` as the parties write them. The agreement is the one that keeps disk smallest:
/// no member IDs (32-byte consumer records), plain audience keys (`sealed: false`: 138-byte
/// payload records and short delivered lines), no gzip; what the production defaults would add
/// is in BENCHMARKS.md. Then it runs `cleanroom coordinator match` as a child process (the
/// built CLI beside this executable) and reports wall and CPU seconds, peak RSS (`wait4`), the
/// peak disk held by the child's scratch files (sampled: the allocated size of every file the
/// process holds open that is unlinked or in its scratch directory; scratch files are unlinked
/// at creation, so `du` cannot see them), the delivered bytes, and checks that the manifest
/// delivers exactly `N − N/2` records.
///
/// Inputs are kept under `<work-dir>/coordinator-scale-<N>` and reused by a later run of the same
/// size (a marker file records that they are complete); each run gets a fresh audit log and
/// delivery directory. `--keep` is implied for the inputs; delete the directory when done.
enum CoordinatorScale {
    static let filterName = "coordinator-scale"

    static func run(_ options: Options) throws {
        guard let exe = cleanroomBinary() else {
            throw BenchError(
                "coordinator-scale needs the built `cleanroom` beside this executable (run `make release`)")
        }
        print("cleanroom-bench coordinator-scale — \(ISO8601.format(Date()))")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(loadAverage())")
        try Files.makeDirectory(options.workDir)
        for n in options.sizes {
            let dir = "\(options.workDir)/coordinator-scale-\(Options.label(n))"
            print(
                "\n== coordinator match, \(Report.count(n)) × \(Report.count(n)) (overlap \(Report.count(n - n / 2))) =="
            )
            let inputs = try Inputs.prepare(size: n, dir: dir)
            print(
                String(
                    format: "  inputs: %@ on disk (%@), %@", bytes(inputs.bytes),
                    inputs.reused ? "reused" : String(format: "written in %.1f s", inputs.seconds), dir))
            try measure(inputs, cleanroom: exe)
        }
    }

    /// The built `cleanroom` binary beside this executable.
    static func cleanroomBinary() -> String? {
        guard let me = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        let path = (me as NSString).deletingLastPathComponent + "/cleanroom"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(
            separator: " ") ?? "?"
    }

    static func bytes(_ b: Int) -> String {
        b >= 1_000_000_000 ? String(format: "%.2f GB", Double(b) / 1e9) : String(format: "%.1f MB", Double(b) / 1e6)
    }

    /// The three messages of one size, with the agreement and keys they are signed under.
    struct Inputs {
        let size: Int
        let dir: String
        let runID: String
        let bytes: Int
        let reused: Bool
        let seconds: Double
        var agreementPath: String { "\(dir)/agreement.json" }
        var exchange: String { "\(dir)/exchange" }
        var coordinatorKey: String { "\(dir)/keys-coordinator/identity.key" }

        static func prepare(size n: Int, dir: String) throws -> Inputs {
            let marker = "\(dir)/inputs-complete"
            if let text = try? String(contentsOfFile: marker, encoding: .utf8) {
                let f = text.split(separator: " ").map(String.init)
                if f.count == 3, Int(f[0]) == n, let b = Int(f[2]) {
                    return Inputs(size: n, dir: dir, runID: f[1], bytes: b, reused: true, seconds: 0)
                }
            }
            try? FileManager.default.removeItem(atPath: dir)
            try Files.makeDirectory(dir)
            let t0 = Clock.now()
            // Smallest on disk: no member IDs, plain audience keys, no gzip.
            let parties = try BenchParties(
                dir: dir, label: "Scale", output: .init(deliverMemberID: false, sealed: false), days: 30)
            let (consumer, provider, agreement) = (parties.consumer, parties.provider, parties.agreement)
            let runID = AgreementTerms.newID()
            let run = UUIDBytes.parse(runID)!
            let ex = Exchange(root: "\(dir)/exchange")

            // What round 1's body hash would be: both the payload and provider-reblinded name it.
            let round1 = SecureRandom.bytes(32)
            let payloadRecord = 8 + 2 + 128
            var payload = try MessageWriter.benchmarkWriter(
                kind: .providerPayload, agreement: agreement, runUUID: run, count: n, recordSize: payloadRecord,
                reference: round1,
                metadata: [:], signer: provider.signingKey,
                sink: FileMessageSink(path: ex.path(agreement, run: runID, .providerPayload)))
            var providerSet = try MessageWriter.benchmarkWriter(
                kind: .providerReblinded, agreement: agreement, runUUID: run, count: n, recordSize: 32,
                reference: round1,
                metadata: [:], signer: consumer.signingKey,
                sink: FileMessageSink(path: ex.path(agreement, run: runID, .providerReblinded)))
            var consumerSet = try MessageWriter.benchmarkWriter(
                kind: .consumerReblinded, agreement: agreement, runUUID: run, count: n, recordSize: 32,
                reference: SecureRandom.bytes(32),
                metadata: ["segmentID": "scale", "segmentName": "Scale", "consumerRows": String(n)],
                signer: provider.signingKey,
                sink: FileMessageSink(path: ex.path(agreement, run: runID, .consumerReblinded)))

            // Elements E_k = base + k·B for k in 0 ..< N/2 + N, in blocks computed on every core.
            let base = try RistrettoElement.generator.multiplied(by: Scalar.random())
            let half = n / 2
            let total = half + n
            let a = multiplier(n)
            let block = 1 << 17
            var elements = [UInt8](repeating: 0, count: block * 32)
            var records = [UInt8](repeating: 0, count: block * payloadRecord)
            var k = 0
            var lastReport = Clock.now()
            while k < total {
                let m = min(block, total - k)
                let first = k
                let failed = UnsafeSendableFlag()
                elements.withUnsafeMutableBytes { e in
                    let box = UnsafeSendableBuffer(e)
                    Parallel.forEachRange(count: m) { r in
                        do {
                            try RistrettoElement.writeProgression(
                                base: base, first: UInt64(first + r.lowerBound), count: r.count,
                                into: UnsafeMutableRawBufferPointer(
                                    rebasing: box.buffer[(r.lowerBound * 32)..<(r.upperBound * 32)]))
                        } catch { failed.set() }
                    }
                }
                guard !failed.value else { throw BenchError("element generation failed at block \(first)") }
                // Provider: E_0 … E_{N−1} at positions 0 … N−1, with their payload records.
                let pEnd = min(k + m, n)
                if k < pEnd {
                    let c = pEnd - k
                    try elements.withUnsafeBytes {
                        try providerSet.append(UnsafeRawBufferPointer(rebasing: $0[0..<(c * 32)]))
                    }
                    records.withUnsafeMutableBytes { r in
                        for j in 0..<c {
                            writePayloadRecord(
                                row: UInt64((k + j)) &* a % UInt64(n), into: r.baseAddress! + j * payloadRecord)
                        }
                    }
                    try records.withUnsafeBytes {
                        try payload.append(UnsafeRawBufferPointer(rebasing: $0[0..<(c * payloadRecord)]))
                    }
                }
                // Consumer: E_{N/2} … E_{N/2+N−1}.
                let cStart = max(k, half)
                if cStart < k + m {
                    try elements.withUnsafeBytes {
                        try consumerSet.append(UnsafeRawBufferPointer(rebasing: $0[((cStart - k) * 32)..<(m * 32)]))
                    }
                }
                k += m
                if Clock.now() - lastReport > 30 {
                    lastReport = Clock.now()
                    print(String(format: "  … generated %d of %d elements (%.0f s)", k, total, Clock.now() - t0))
                    fflush(nil)
                }
            }
            _ = try payload.finish()
            _ = try providerSet.finish()
            _ = try consumerSet.finish()
            var b = 0
            for kind in [MessageKind.providerPayload, .providerReblinded, .consumerReblinded] {
                b +=
                    (try? FileManager.default.attributesOfItem(atPath: ex.path(agreement, run: runID, kind))[.size]
                        as? Int) ?? 0
            }
            try "\(n) \(runID) \(b)".write(toFile: marker, atomically: true, encoding: .utf8)
            return Inputs(size: n, dir: dir, runID: runID, bytes: b, reused: false, seconds: Clock.now() - t0)
        }

        /// An odd multiplier coprime with `n` (so `i·A mod n` permutes `0..<n`), far from 1.
        static func multiplier(_ n: Int) -> UInt64 {
            func gcd(_ x: UInt64, _ y: UInt64) -> UInt64 { y == 0 ? x : gcd(y, x % y) }
            var a = UInt64(0x9E37_79B9) % UInt64(n)
            while a < 2 || gcd(a, UInt64(n)) != 1 { a += 1 }
            return a
        }

        /// `row (u64 BE) ‖ I2OSP(len, 2) ‖ "aud-<row>" ‖ zeros` (138 bytes: SPEC §6 plain padded key).
        static func writePayloadRecord(row: UInt64, into p: UnsafeMutableRawPointer) {
            p.storeBytes(of: row.bigEndian, as: UInt64.self)
            var d = 1
            var t = row
            while t >= 10 {
                t /= 10
                d += 1
            }
            let len = 4 + d
            (p + 8).storeBytes(of: UInt8(len >> 8), as: UInt8.self)
            (p + 9).storeBytes(of: UInt8(len & 0xff), as: UInt8.self)
            let key = p + 10
            for (i, ch) in "aud-".utf8.enumerated() { key.storeBytes(of: ch, toByteOffset: i, as: UInt8.self) }
            var v = row
            for i in stride(from: len - 1, through: 4, by: -1) {
                key.storeBytes(of: UInt8(48 + v % 10), toByteOffset: i, as: UInt8.self)
                v /= 10
            }
            (key + len).initializeMemory(as: UInt8.self, repeating: 0, count: 128 - len)
        }
    }

    /// Runs `cleanroom coordinator match` on the inputs and prints what it cost.
    static func measure(_ inputs: Inputs, cleanroom: String) throws {
        let dir = inputs.dir
        let audit = "\(dir)/audit.sqlite"
        for p in [audit, audit + "-wal", audit + "-shm", "\(dir)/provider-bucket", "\(dir)/match.log"] {
            try? FileManager.default.removeItem(atPath: p)
        }
        let args = [
            "coordinator", "match", "--agreement", inputs.agreementPath, "--identity", inputs.coordinatorKey,
            "--exchange", inputs.exchange, "--run-id", inputs.runID, "--audit-db", audit, "--quiet",
        ]
        print("  command: \(cleanroom) \(args.joined(separator: " "))")
        let load0 = loadAverage()
        let sampler = ScratchSampler(marker: inputs.runID)
        sampler.start()
        let o = try Child.measured(cleanroom, args, log: "\(dir)/match.log")
        sampler.stop()
        guard o.exitStatus == 0 else {
            throw BenchError("`cleanroom coordinator match` exited with \(o.exitStatus); see \(dir)/match.log")
        }
        // The delivery: its manifest's record count must be the overlap.
        let agreement = try Steps.loadAgreement(inputs.agreementPath)
        let delivery = "\(dir)/provider-bucket/\(agreement.terms.collaborationID)/\(inputs.runID)"
        guard let data = FileManager.default.contents(atPath: "\(delivery)/manifest.json"),
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let records = ((json["manifest"] as? [String: Any]) ?? json)["records"] as? Int
        else { throw BenchError("no readable manifest at \(delivery)") }
        let overlap = inputs.size - inputs.size / 2
        guard records == overlap else { throw BenchError("delivered \(records) records, expected \(overlap)") }
        var delivered = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: delivery)) ?? [] {
            delivered += (try? FileManager.default.attributesOfItem(atPath: "\(delivery)/\(name)")[.size] as? Int) ?? 0
        }
        print(
            String(
                format: "  wall %.1f s, CPU %.1f s (%.2f µs per element), peak RSS %@", o.seconds, o.cpuSeconds,
                o.cpuSeconds / Double(2 * inputs.size) * 1e6, Report.mib(o.peakRSSKiB)))
        print(
            "  peak scratch on disk \(bytes(sampler.peakBytes)) (\(sampler.peakFiles) files open at most, \(sampler.samples) samples); delivered \(Report.count(records)) records = N − N/2 ✓, \(bytes(delivered)) in the delivery directory"
        )
        print("  load average before \(load0), after \(loadAverage())")
        fflush(nil)
        try? FileManager.default.removeItem(atPath: "\(dir)/provider-bucket")
    }
}

/// Samples, twice a second, the disk held by the scratch files of the process whose command
/// line contains `marker`: the allocated blocks of every regular file it holds open that is
/// unlinked (`(deleted)`) — scratch files are unlinked at creation, invisible to `du`.
final class ScratchSampler: @unchecked Sendable {
    let marker: String
    private let lock = NSLock()
    private var running = false
    private var thread: Thread?
    private(set) var peakBytes = 0
    private(set) var peakFiles = 0
    private(set) var samples = 0

    init(marker: String) { self.marker = marker }

    func start() {
        running = true
        let t = Thread { [self] in
            var pid: String?
            while lock.withLock({ running }) {
                if pid == nil { pid = findProcess() }
                if let p = pid { sample(p) }
                usleep(500_000)
            }
        }
        thread = t
        t.start()
    }

    func stop() { lock.withLock { running = false } }

    private func findProcess() -> String? {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for e in entries where e.allSatisfy(\.isNumber) {
            guard let cmd = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { continue }
            let s = String(decoding: cmd.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            if s.contains(marker) && s.contains("coordinator match") && !s.contains(Child.helperFlag) { return e }
        }
        return nil
    }

    private func sample(_ pid: String) {
        let fdDir = "/proc/\(pid)/fd"
        guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDir) else { return }
        var total = 0
        var files = 0
        for fd in fds {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(fd)"),
                target.hasSuffix("(deleted)")
            else { continue }
            var st = stat()
            guard stat("\(fdDir)/\(fd)", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            total += Int(st.st_blocks) * 512
            files += 1
        }
        lock.withLock {
            samples += 1
            peakBytes = max(peakBytes, total)
            peakFiles = max(peakFiles, files)
        }
    }
}

/// A flag set from worker threads (any failure of a generation range).
final class UnsafeSendableFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    func set() { lock.withLock { v = true } }
    var value: Bool { lock.withLock { v } }
}

/// A buffer handed to `Parallel.forEachRange` ranges, each writing only its own slice.
struct UnsafeSendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    init(_ b: UnsafeMutableRawBufferPointer) { buffer = b }
}
