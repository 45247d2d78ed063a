import Foundation
import RistrettoPSI

// The coordinator's privacy guards beyond k and the run cap: near-duplicate (differencing)
// detection and differential privacy for the counts the consumer sees. Pure functions and plain
// data; the coordinator-private sketch store and the audit log live at the edges (Workflow).
// - SeeAlso: `Protocol/SPEC.md` §9.1 "Privacy guards at the coordinator".

extension AgreementTerms.Privacy {
    /// Differential privacy for the consumer-visible matched count (off when absent).
    ///
    /// ε is written in thousandths (`epsilonMillis` 500 = ε 0.5) so the signed JSON holds integers
    /// only and the sampler works on exact rationals.
    /// - SeeAlso: `Protocol/SPEC.md` §9.1 "Differential privacy".
    public struct Noise: Codable, Equatable, Sendable {
        /// The only mechanism of protocol v1.
        public static let twoSidedGeometric = "two-sided-geometric"
        /// `two-sided-geometric`.
        public var mechanism: String
        /// ε per run, in thousandths.
        public var epsilonMillis: Int
        /// Total ε the collaboration may spend over its lifetime, in thousandths.
        public var budgetMillis: Int
        /// Provider rows one person can add to the matched count (the count's L1 sensitivity).
        public var sensitivity: Int
        /// Noise terms; by default the only mechanism and sensitivity 1. Checked when the agreement
        /// is verified, not here.
        public init(
            mechanism: String = Noise.twoSidedGeometric, epsilonMillis: Int, budgetMillis: Int, sensitivity: Int = 1
        ) {
            self.mechanism = mechanism
            self.epsilonMillis = epsilonMillis
            self.budgetMillis = budgetMillis
            self.sensitivity = sensitivity
        }
    }

    /// The near-duplicate threshold in force: `maxRunSimilarityPercent`, 90 when absent, 0 = off.
    public var effectiveRunSimilarityPercent: Int {
        maxRunSimilarityPercent ?? PrivacyGuards.defaultRunSimilarityPercent
    }
}

/// The guards' rules, written once.
public enum PrivacyGuards {
    /// Near-duplicate threshold when the agreement names none: refuse a run whose matched set has
    /// an estimated Jaccard similarity of 90 % or more with an earlier run's.
    public static let defaultRunSimilarityPercent = 90
    /// δ of the (ε, δ) guarantee that covers the delivered/below-threshold decision under noise.
    public static let thresholdDelta = 1e-6

    /// Agreement-time checks of the guard terms. - Throws: `.agreementMalformed` naming the field.
    static func validate(_ p: AgreementTerms.Privacy) throws(ActivationError) {
        if let s = p.maxRunSimilarityPercent, !(0...100).contains(s) {
            throw ActivationError(.agreementMalformed, "privacy.maxRunSimilarityPercent must be 0 (off) to 100")
        }
        if let n = p.noise {
            guard n.mechanism == AgreementTerms.Privacy.Noise.twoSidedGeometric else {
                throw ActivationError(
                    .agreementMalformed,
                    "privacy.noise.mechanism must be \(AgreementTerms.Privacy.Noise.twoSidedGeometric)")
            }
            guard (1...20_000).contains(n.epsilonMillis) else {
                throw ActivationError(
                    .agreementMalformed, "privacy.noise.epsilonMillis must be 1...20000 (ε 0.001 to 20)")
            }
            guard n.budgetMillis >= n.epsilonMillis, n.budgetMillis <= 1_000_000 else {
                throw ActivationError(
                    .agreementMalformed, "privacy.noise.budgetMillis must be at least epsilonMillis and at most 1000000"
                )
            }
            guard (1...1000).contains(n.sensitivity) else {
                throw ActivationError(.agreementMalformed, "privacy.noise.sensitivity must be 1...1000")
            }
        }
    }

    /// How far above k the noisy count must be for a delivery under noise:
    /// `⌈sensitivity · ln(1/δ) / ε⌉`, so a run whose exact count is below k passes the noisy test
    /// with probability below δ. A public function of the agreement only.
    public static func thresholdMargin(_ n: AgreementTerms.Privacy.Noise) -> Int {
        Int((Double(n.sensitivity) * log(1 / thresholdDelta) * 1000 / Double(n.epsilonMillis)).rounded(.up))
    }

    /// Budget check before anything is matched.
    /// - Throws: `.privacyBudgetExhausted` when this run's ε would take the collaboration over its budget.
    static func checkBudget(_ p: AgreementTerms.Privacy, spentMillis: Int) throws(ActivationError) {
        guard let n = p.noise else { return }
        guard spentMillis + n.epsilonMillis <= n.budgetMillis else {
            throw ActivationError(
                .privacyBudgetExhausted,
                "the collaboration has spent ε \(Self.epsilonText(spentMillis)) of its budget \(Self.epsilonText(n.budgetMillis)); a run costs \(Self.epsilonText(n.epsilonMillis))"
            )
        }
    }

    /// Refuses a run whose matched set is a near duplicate of an earlier run's.
    /// - Throws: `.nearDuplicateRun` naming the earlier run and the threshold, never a row.
    static func checkNearDuplicate(_ sketch: RunSketch, against earlier: [RunSketch], percent: Int)
        throws(ActivationError)
    {
        guard percent > 0 else { return }
        for e in earlier where e.runID != sketch.runID {
            let (both, union) = sketch.overlap(with: e)
            // both/union ≥ percent/100, in integers; two empty sets are identical.
            if union == 0 || both * 100 >= percent * union {
                throw ActivationError(
                    .nearDuplicateRun,
                    "the matched set is a near duplicate of run \(e.runID) (estimated similarity ≥ \(percent) %); re-runs that differ by a few people are refused"
                )
            }
        }
    }

    /// ε in thousandths as a decimal with three places (`1500` gives `1.500`, `-1500` gives
    /// `-1.500`), for reasons and summaries. Agreements refuse a negative ε; the sign is kept
    /// so that a value read from a damaged ledger is printed as it is, not as `-1.-500`.
    public static func epsilonText(_ millis: Int) -> String {
        let magnitude = millis.magnitude
        let fraction = String(magnitude % 1000)
        return (millis < 0 ? "-" : "") + "\(magnitude / 1000)." + String(repeating: "0", count: 3 - fraction.count)
            + fraction
    }
}

/// A bottom-k MinHash sketch of one run's matched provider rows, kept by the coordinator (never
/// in the consumer-readable audit log) to detect near-duplicate re-runs across runs.
///
/// Run-independent on purpose: blinded values change every run (fresh scalars), so the sketch
/// is built from the provider row positions the coordinator already sees in round 1', each tagged
/// with a keyed hash under a key derived from the coordinator's identity and the collaboration.
/// It holds at most ``capacity`` 64-bit tags and no identifier, blinded value or count.
/// - SeeAlso: `Protocol/SPEC.md` §9.1 "Differencing".
public struct RunSketch: Sendable, Equatable {
    /// k of the bottom-k sketch.
    public static let capacity = 128
    static let keyTag = Array("CLEANROOM-V01-DIFFERENCING-KEY".utf8)
    static let fileTag = "CLEANROOM-V01-SKETCH"

    /// The run whose matched rows the sketch holds.
    public let runID: String
    /// Ascending, distinct, at most ``capacity``.
    public let tags: [UInt64]

    init(runID: String, tags: [UInt64]) {
        self.runID = runID
        self.tags = Array(Set(tags).sorted().prefix(Self.capacity))
    }

    /// The sketch of `rows` (provider row positions) under the coordinator's per-collaboration key.
    static func make(runID: String, rows: some Sequence<UInt64>, coordinator: SigningKey, collaborationUUID: [UInt8])
        -> RunSketch
    {
        var b = Builder(runID: runID, coordinator: coordinator, collaborationUUID: collaborationUUID)
        for r in rows { b.add(r) }
        return b.finish()
    }

    /// Builds a sketch from rows handed over one at a time (the coordinator streams its matched
    /// rows from scratch files, SPEC §9 "Bounded memory"); equal to
    /// ``make(runID:rows:coordinator:collaborationUUID:)``.
    struct Builder {
        let runID: String
        private var key: [UInt8]
        private var smallest: [UInt64] = []

        init(runID: String, coordinator: SigningKey, collaborationUUID: [UInt8]) {
            self.runID = runID
            key = coordinator.withSeed { seed in SHA256.hash(RunSketch.keyTag + Array(seed) + collaborationUUID) }
        }

        mutating func add(_ row: UInt64) {
            keep(tag(row))
        }

        /// Adds rows as ``add(_:)`` one after another would, their tags computed on every core.
        mutating func add(rows: [UInt64]) {
            var tags = [UInt64](repeating: 0, count: rows.count)
            let builder = self
            tags.withUnsafeMutableBufferPointer { out in
                Parallel.forEachRange(count: rows.count) { range in
                    for i in range { out[i] = builder.tag(rows[i]) }
                }
            }
            for t in tags { keep(t) }
        }

        private func tag(_ row: UInt64) -> UInt64 { BE.read64(SHA256.hash(key + BE.u64(row)).prefix(8)) }

        private mutating func keep(_ tag: UInt64) {
            smallest.append(tag)
            // Keep memory bounded for very large matches.
            if smallest.count >= 8 * RunSketch.capacity {
                smallest = Array(Set(smallest).sorted().prefix(RunSketch.capacity))
            }
        }

        /// The sketch; zeroes the key.
        mutating func finish() -> RunSketch {
            SecureBytes.zero(&key)
            return RunSketch(runID: runID, tags: smallest)
        }
    }

    /// The bottom-k estimate of |A ∩ B| / |A ∪ B| as (numerator, denominator): among the k smallest
    /// tags of the union of both sketches, how many are in both. Exact when both sets are ≤ k.
    public func overlap(with other: RunSketch) -> (both: Int, union: Int) {
        let mine = Set(tags)
        let theirs = Set(other.tags)
        let union = mine.union(theirs).sorted().prefix(Self.capacity)
        return (union.filter { mine.contains($0) && theirs.contains($0) }.count, union.count)
    }

    /// The file form: a tag line, the run ID, then one 16-hex-digit tag per line.
    public func serialized() -> [UInt8] {
        Array(
            ([Self.fileTag, runID] + tags.map { String(format: "%016llx", $0) }).joined(separator: "\n").utf8 + [0x0a])
    }

    /// Parses ``serialized()``. - Throws: `.stateInvalid` naming `source`.
    public init(parsing bytes: [UInt8], source: String) throws(ActivationError) {
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(
            String.init)
        guard lines.count >= 3, lines[0] == Self.fileTag, UUIDBytes.parse(lines[1]) != nil, lines.last == "" else {
            throw ActivationError(.stateInvalid, "\(source): not a run sketch")
        }
        var tags: [UInt64] = []
        for l in lines[2..<(lines.count - 1)] {
            guard l.utf8.count == 16, let v = UInt64(l, radix: 16) else {
                throw ActivationError(.stateInvalid, "\(source): malformed sketch tag line")
            }
            tags.append(v)
        }
        guard tags.count <= Self.capacity else {
            throw ActivationError(.stateInvalid, "\(source): too many sketch tags")
        }
        self.init(runID: lines[1], tags: tags)
    }
}

/// The two-sided geometric (discrete Laplace) mechanism, sampled exactly from libsodium's CSPRNG
/// with integer arithmetic only (no floating point), after Canonne, Kamath and Steinke, "The
/// Discrete Gaussian for Differential Privacy" (NeurIPS 2020), Algorithms 1 and 2.
///
/// `P(Z = z) = (1 − α)/(1 + α) · α^|z|` with `α = exp(−ε/Δ)`: adding `Z` to a count of L1
/// sensitivity Δ is ε-differentially private. Thread-safety: stateless.
/// - SeeAlso: `Protocol/SPEC.md` §9.1 "Differential privacy".
public enum GeometricNoise {
    /// A sample with `α = exp(−ε/Δ)` where ε = `epsilonMillis`/1000 and Δ = `sensitivity`.
    public static func sample(epsilonMillis: Int, sensitivity: Int = 1) -> Int {
        precondition(epsilonMillis > 0 && sensitivity > 0)
        return discreteLaplace(numerator: UInt64(epsilonMillis), denominator: 1000 * UInt64(sensitivity))
    }

    /// `P(Y = y) ∝ exp(−|y| · s/t)` (CKS Algorithm 2 with scale t/s).
    static func discreteLaplace(numerator s: UInt64, denominator t: UInt64) -> Int {
        while true {
            let u = uniform(below: t)
            guard bernoulliExp(u, t) else { continue }
            var v: UInt64 = 0
            while bernoulliExp(1, 1) { v += 1 }
            let y = (u + t * v) / s
            let negative = uniform(below: 2) == 1
            if negative && y == 0 { continue }
            return negative ? -Int(y) : Int(y)
        }
    }

    /// Bernoulli(exp(−n/d)) for n/d ≥ 0 (CKS Algorithm 1, with the integer part split off).
    static func bernoulliExp(_ n: UInt64, _ d: UInt64) -> Bool {
        var whole = n / d
        while whole > 0 {
            guard bernoulliExpAtMostOne(1, 1) else { return false }
            whole -= 1
        }
        return bernoulliExpAtMostOne(n % d, d)
    }

    /// Bernoulli(exp(−γ)) for γ = n/d ∈ [0, 1]: draw Bernoulli(γ/k) for k = 1, 2, … until one
    /// fails; the result is 1 when the failing k is odd.
    private static func bernoulliExpAtMostOne(_ n: UInt64, _ d: UInt64) -> Bool {
        var k: UInt64 = 1
        while uniform(below: d * k) < n { k += 1 }
        return k % 2 == 1
    }

    private static func uniform(below bound: UInt64) -> UInt64 { UInt64(SecureRandom.index(below: Int(bound))) }
}
