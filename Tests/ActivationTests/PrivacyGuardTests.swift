import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// The coordinator's guards in memory: the noise sampler, the differencing sketch, the budget,
/// the agreement's guard terms, and fresh scalars. The same guards through the audit log and the
/// private store are in `CLITests/PrivacyGuardsTests.swift`.
@Suite("Privacy guards (in memory)")
struct PrivacyGuardTests {
    // MARK: Noise

    /// Distribution sanity of the two-sided geometric sampler, without a seed: mean, variance and
    /// P(0) against the closed forms `0`, `2α/(1−α)²` and `(1−α)/(1+α)` with `α = exp(−ε)`. The
    /// bounds are ≥ 8 standard errors wide, so a correct sampler fails them with probability far
    /// below 10^-9, while a sampler off by a factor in scale or with a sign bias fails them.
    @Test(
        "ε prints with three decimals, its sign kept",
        arguments: [
            (0, "0.000"), (5, "0.005"), (1500, "1.500"), (1000, "1.000"), (12_345, "12.345"), (-1500, "-1.500"),
            (-5, "-0.005"),
        ])
    func epsilonText(millis: Int, text: String) {
        #expect(PrivacyGuards.epsilonText(millis) == text)
    }

    @Test(arguments: [250, 500, 1000, 2000])
    func geometricNoiseMatchesItsDistribution(epsilonMillis: Int) {
        let n = 20_000
        let alpha = exp(-Double(epsilonMillis) / 1000)
        let variance = 2 * alpha / ((1 - alpha) * (1 - alpha))
        let pZero = (1 - alpha) / (1 + alpha)
        var sum = 0.0
        var sumSq = 0.0
        var zeros = 0
        for _ in 0..<n {
            let z = Double(GeometricNoise.sample(epsilonMillis: epsilonMillis))
            sum += z
            sumSq += z * z
            if z == 0 { zeros += 1 }
        }
        let mean = sum / Double(n)
        let sampleVariance = sumSq / Double(n) - mean * mean
        #expect(abs(mean) < 8 * (variance / Double(n)).squareRoot(), "mean \(mean)")
        // The variance of the sample variance of a discrete Laplace is below 6σ⁴/n.
        #expect(
            abs(sampleVariance - variance) < 8 * (6 * variance * variance / Double(n)).squareRoot(),
            "variance \(sampleVariance) vs \(variance)")
        let pHat = Double(zeros) / Double(n)
        #expect(abs(pHat - pZero) < 8 * (pZero * (1 - pZero) / Double(n)).squareRoot(), "P(0) \(pHat) vs \(pZero)")
    }

    /// Sensitivity Δ scales the noise as ε/Δ: Δ = 2 at ε 1 has the variance of ε 0.5.
    @Test func sensitivityScalesTheNoise() {
        let n = 20_000
        let alpha = exp(-0.5)
        let variance = 2 * alpha / ((1 - alpha) * (1 - alpha))
        var sumSq = 0.0
        for _ in 0..<n {
            let z = Double(GeometricNoise.sample(epsilonMillis: 1000, sensitivity: 2))
            sumSq += z * z
        }
        #expect(abs(sumSq / Double(n) - variance) < 8 * (6 * variance * variance / Double(n)).squareRoot())
    }

    /// Bernoulli(exp(−γ)) for integer and fractional γ, including γ > 1 (the integer part split off).
    @Test(arguments: [(0, 1), (1, 2), (1, 1), (3, 2), (5, 2)])
    func bernoulliExpHasItsMean(n: Int, d: Int) {
        let trials = 20_000
        let p = exp(-Double(n) / Double(d))
        let hits = (0..<trials).filter { _ in GeometricNoise.bernoulliExp(UInt64(n), UInt64(d)) }.count
        #expect(abs(Double(hits) / Double(trials) - p) < 8 * max((p * (1 - p) / Double(trials)).squareRoot(), 1e-3))
    }

    @Test func thresholdMarginFollowsEpsilon() {
        #expect(PrivacyGuards.thresholdMargin(.init(epsilonMillis: 1000, budgetMillis: 1000)) == 14)  // ⌈ln 10^6⌉
        #expect(PrivacyGuards.thresholdMargin(.init(epsilonMillis: 500, budgetMillis: 1000)) == 28)
        #expect(PrivacyGuards.thresholdMargin(.init(epsilonMillis: 1000, budgetMillis: 1000, sensitivity: 3)) == 42)
    }

    // MARK: Sketch

    static let key = SigningKey.generate()
    static let collab = UUIDBytes.parse(AgreementTerms.newID())!

    static func sketch(_ rows: Range<UInt64>, run: String = AgreementTerms.newID()) -> RunSketch {
        RunSketch.make(runID: run, rows: rows, coordinator: key, collaborationUUID: collab)
    }

    @Test func sketchIsExactForSmallSetsAndRefusesNearDuplicates() throws {
        let a = Self.sketch(0..<100)
        let b = Self.sketch(2..<100)
        let c = Self.sketch(100..<200)
        #expect(a.overlap(with: b) == (98, 100))
        #expect(a.overlap(with: c).both == 0)
        #expect(throws: ActivationError(.nearDuplicateRun, "")) {
            try PrivacyGuards.checkNearDuplicate(b, against: [c, a], percent: 90)
        }
        try PrivacyGuards.checkNearDuplicate(c, against: [a, b], percent: 90)
        // 0 turns the check off; 100 refuses only identical matched sets.
        try PrivacyGuards.checkNearDuplicate(b, against: [a], percent: 0)
        try PrivacyGuards.checkNearDuplicate(b, against: [a], percent: 100)
        #expect(throws: ActivationError(.nearDuplicateRun, "")) {
            try PrivacyGuards.checkNearDuplicate(Self.sketch(0..<100), against: [a], percent: 100)
        }
        // A retried run is not compared with its own earlier sketch.
        try PrivacyGuards.checkNearDuplicate(Self.sketch(0..<100, run: a.runID), against: [a], percent: 90)
    }

    /// Above the sketch's capacity the estimate is statistical: 10,000 rows differing by 20 are
    /// still refused (estimate ≈ 0.998), two halves of a set are not (estimate ≈ 0.33).
    @Test func sketchEstimatesLargeSets() throws {
        let full = Self.sketch(0..<10_000)
        #expect(full.tags.count == RunSketch.capacity)
        #expect(throws: ActivationError(.nearDuplicateRun, "")) {
            try PrivacyGuards.checkNearDuplicate(Self.sketch(20..<10_000), against: [full], percent: 90)
        }
        try PrivacyGuards.checkNearDuplicate(Self.sketch(5_000..<15_000), against: [full], percent: 90)
    }

    @Test func sketchTagsAreKeyedPerCoordinatorAndCollaboration() {
        let other = RunSketch.make(
            runID: AgreementTerms.newID(), rows: 0..<100, coordinator: SigningKey.generate(),
            collaborationUUID: Self.collab)
        let otherCollab = RunSketch.make(
            runID: AgreementTerms.newID(), rows: 0..<100, coordinator: Self.key,
            collaborationUUID: UUIDBytes.parse(AgreementTerms.newID())!)
        let mine = Self.sketch(0..<100)
        #expect(Set(mine.tags).isDisjoint(with: other.tags))
        #expect(Set(mine.tags).isDisjoint(with: otherCollab.tags))
    }

    @Test func sketchFileRoundTripsAndRefusesGarbage() throws {
        let s = Self.sketch(0..<50)
        #expect(try RunSketch(parsing: s.serialized(), source: "s") == s)
        for bad in [
            "", "CLEANROOM-V01-SKETCH\nnot-a-run\n", "CLEANROOM-V01-SKETCH\n\(s.runID)\nxyz\n", "OTHER\n\(s.runID)\n",
        ] {
            #expect(throws: ActivationError(.stateInvalid, "")) { try RunSketch(parsing: Array(bad.utf8), source: "s") }
        }
    }

    // MARK: The coordinator with the guards

    struct Prepared {
        let f: Fixture, agreement: VerifiedAgreement, runID: String
        let p: Provider.Prepared, m4: ConsumerReblindedSet, m5: ProviderReblindedSet
        init(_ f: Fixture) throws {
            self.f = f
            agreement = try f.agreement()
            runID = AgreementTerms.newID()
            let provider = try Provider(agreement: agreement, identity: f.providerID)
            let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
            p = try provider.prepare(runID: runID, audience: People.audience())
            let c = try consumer.prepare(runID: runID, query: People.query())
            m4 = try provider.respond(to: c.forProvider, state: p.state)
            m5 = try consumer.respond(to: p.forConsumer, state: c.state)
        }
        func match(_ history: RunHistory = RunHistory()) throws(ActivationError) -> MatchOutcome {
            try Coordinator(agreement: agreement, identity: f.coordinatorID)
                .match(runID: runID, payload: p.forCoordinator, consumerSet: m4, providerSet: m5, history: history)
        }
    }

    static func counts(_ o: MatchOutcome) -> MatchCounts {
        switch o {
        case .deliver(_, let c), .belowThreshold(let c): return c
        }
    }

    /// Two runs of the same query under one agreement: the second is a near duplicate (its
    /// matched set equals the first's, though every blinded value differs).
    @Test func sameQueryTwiceIsRefusedAsNearDuplicate() throws {
        let f = Fixture()
        let first = Self.counts(try Prepared(f).match())
        let sketch = try #require(first.sketch)
        #expect(sketch.tags.count == min(RunSketch.capacity, People.expectedAudienceKeys.count))
        #expect(throws: ActivationError(.nearDuplicateRun, "")) {
            try Prepared(f).match(RunHistory(sketches: [sketch]))
        }
        var off = f
        off.terms.privacy.maxRunSimilarityPercent = 0
        _ = try Prepared(off).match(RunHistory(sketches: [sketch]))
    }

    @Test func budgetIsCheckedBeforeMatching() throws {
        var f = Fixture()
        f.terms.privacy.noise = .init(epsilonMillis: 500, budgetMillis: 1200)
        let run = try Prepared(f)
        let c = Self.counts(try run.match(RunHistory(epsilonSpentMillis: 500)))
        #expect(c.epsilonMillis == 500)
        #expect(c.noisyMatchedRows != nil)
        #expect(c.consumerVisibleMatchedRows == c.noisyMatchedRows)
        #expect(throws: ActivationError(.privacyBudgetExhausted, "")) {
            try run.match(RunHistory(epsilonSpentMillis: 1000))
        }
    }

    /// Under noise the outcome is decided on the noisy count plus the margin: with k just below
    /// the exact count, a run is delivered only if its noisy count clears k + margin.
    @Test func noisyOutcomeUsesTheMargin() throws {
        var f = Fixture(minMatched: 1)
        f.terms.privacy.noise = .init(epsilonMillis: 1000, budgetMillis: 100_000)
        f.terms.privacy.minMatchedRows = People.expectedAudienceKeys.count - 5
        for _ in 0..<5 {
            let outcome = try Prepared(f).match()
            let c = Self.counts(outcome)
            let margin = PrivacyGuards.thresholdMargin(f.terms.privacy.noise!)
            switch outcome {
            case .deliver: #expect(c.noisyMatchedRows! >= f.terms.privacy.minMatchedRows + margin)
            case .belowThreshold: #expect(c.noisyMatchedRows! < f.terms.privacy.minMatchedRows + margin)
            }
        }
    }

    @Test(arguments: [
        AgreementTerms.Privacy.Noise(mechanism: "laplace", epsilonMillis: 500, budgetMillis: 1000),
        AgreementTerms.Privacy.Noise(epsilonMillis: 0, budgetMillis: 1000),
        AgreementTerms.Privacy.Noise(epsilonMillis: 500, budgetMillis: 100),
        AgreementTerms.Privacy.Noise(epsilonMillis: 500, budgetMillis: 1000, sensitivity: 0),
    ])
    func malformedNoiseTermsAreRefused(noise: AgreementTerms.Privacy.Noise) throws {
        var f = Fixture()
        f.terms.privacy.noise = noise
        #expect(throws: ActivationError(.agreementMalformed, "")) { try f.agreement() }
    }

    @Test func similarityOutOfRangeIsRefusedAndAbsentMeansTheDefault() throws {
        var f = Fixture()
        #expect(
            try f.agreement().terms.privacy.effectiveRunSimilarityPercent == PrivacyGuards.defaultRunSimilarityPercent)
        f.terms.privacy.maxRunSimilarityPercent = 101
        #expect(throws: ActivationError(.agreementMalformed, "")) { try f.agreement() }
    }

    /// Agreements signed before the guards existed keep their bytes: absent optional terms are
    /// not encoded.
    @Test func absentGuardTermsAreNotEncoded() throws {
        let json = String(decoding: Fixture().terms.signedBytes(), as: UTF8.self)
        #expect(!json.contains("noise") && !json.contains("maxRunSimilarityPercent"))
    }

    // MARK: Fresh scalars

    /// The same input blinded in two runs gives unrelated values, on both sides and after both
    /// blindings: no element in common between runs (fresh `a` and `b` every run).
    @Test func sameInputInTwoRunsSharesNoBlindedValue() throws {
        let f = Fixture()
        let r1 = try Prepared(f)
        let r2 = try Prepared(f)
        let agreement = r1.agreement
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let c1 = try consumer.prepare(runID: r1.runID, query: People.query())
        let c2 = try consumer.prepare(runID: r2.runID, query: People.query())
        let pairs: [(String, SignedMessage, SignedMessage)] = [
            ("provider round 1", r1.p.forConsumer.message, r2.p.forConsumer.message),
            ("consumer round 2", c1.forProvider.message, c2.forProvider.message),
            ("consumer-reblinded round 3", r1.m4.message, r2.m4.message),
            ("provider-reblinded round 4", r1.m5.message, r2.m5.message),
        ]
        for (name, m1, m2) in pairs {
            let s1 = Set(try Layout.elements(of: m1, source: "1"))
            let s2 = Set(try Layout.elements(of: m2, source: "2"))
            #expect(s1.count == s2.count && !s1.isEmpty, "\(name)")
            #expect(s1.isDisjoint(with: s2), "\(name): a blinded value repeats across runs")
        }
    }
}
