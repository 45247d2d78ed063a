import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// The three roles driven in memory, every message through its byte form.
@Suite("Activation end to end, in memory")
struct EndToEndTests {
    struct Run {
        var m1: [UInt8], m2: [UInt8], m3: [UInt8], m4: [UInt8], m5: [UInt8]
        var outcome: MatchOutcome
        var runID: String
    }

    static func run(
        _ f: Fixture, history: RunHistory = RunHistory(), audience: ProviderAudience = People.audience(),
        query: ConsumerQuery = People.query()
    ) throws -> Run {
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let coordinator = try Coordinator(agreement: agreement, identity: f.coordinatorID)
        let runID = AgreementTerms.newID()

        let p = try provider.prepare(runID: runID, audience: audience)
        let c = try consumer.prepare(runID: runID, query: query)
        let m1 = p.forConsumer.message.serialized()
        let m2 = p.forCoordinator.message.serialized()
        let m3 = c.forProvider.message.serialized()
        // Round 3 at the provider, round 4 at the consumer: each parses what it received.
        let m4 = try provider.respond(
            to: ConsumerBlindedSet(parsing: m3, agreement: agreement, source: "m3"), state: p.state
        ).message.serialized()
        let m5 = try consumer.respond(
            to: ProviderBlindedSet(parsing: m1, agreement: agreement, source: "m1"), state: c.state
        ).message.serialized()
        let outcome = try coordinator.match(
            runID: runID,
            payload: ProviderPayload(parsing: m2, agreement: agreement, source: "m2"),
            consumerSet: ConsumerReblindedSet(parsing: m4, agreement: agreement, source: "m4"),
            providerSet: ProviderReblindedSet(parsing: m5, agreement: agreement, source: "m5"),
            history: history)
        return Run(m1: m1, m2: m2, m3: m3, m4: m4, m5: m5, outcome: outcome, runID: runID)
    }

    @Test(arguments: [
        (true, true, false), (true, false, false), (false, true, false), (true, true, true), (false, false, true),
    ])
    func deliversExactlyTheOverlap(memberIDs: Bool, sealed: Bool, gzip: Bool) throws {
        var f = Fixture(deliverMemberID: memberIDs, sealed: sealed)
        f.terms.output.gzip = gzip
        let r = try Self.run(f)
        guard case .deliver(let plan, let counts) = r.outcome else {
            Issue.record("expected a delivery")
            return
        }
        #expect(counts.matchedRows == People.expectedAudienceKeys.count)
        #expect(counts.consumerRows == 150)  // 200 customers, 50 without consent
        #expect(plan.objects.allSatisfy { $0.name.hasSuffix(gzip ? ".csv.gz" : ".csv") })
        if gzip { #expect(plan.objects.allSatisfy { (try? $0.bytes())?.starts(with: [0x1f, 0x8b]) == true }) }
        let objects = Dictionary(uniqueKeysWithValues: try plan.objects.map { ($0.name, try $0.bytes()) })
        let delivery = ReceivedDelivery(manifestBytes: plan.manifest.json(), objects: objects)
        let records = try Provider(agreement: try f.agreement(), identity: f.providerID).open(delivery)
        let keys = Set(records.map { String(decoding: $0.audienceKey, as: UTF8.self) })
        #expect(keys == People.expectedAudienceKeys)
        #expect(records.count == keys.count, "each provider row is delivered once")
        #expect(records.allSatisfy { $0.segmentID == "loyalty-gold" && $0.segmentName == "Gold members" })
        if memberIDs {
            // The member ID delivered with aud-i is the consumer's M-i: the attributes follow the match.
            for rec in records {
                let i = Int(String(decoding: rec.audienceKey, as: UTF8.self).dropFirst("audience-".count))!
                #expect(rec.memberID.map { String(decoding: $0, as: UTF8.self) } == People.memberID(i))
            }
        } else {
            #expect(records.allSatisfy { $0.memberID == nil })
        }
        // Sealed deliveries hold no plaintext audience key.
        if sealed {
            for o in plan.objects { #expect(!(try o.bytes()).contains(bytes: Array("audience-0002".utf8))) }
        }
    }

    /// The consumer's inputs (round 1 from the provider) hold no identifier or provider record, and
    /// the coordinator's inputs hold no plaintext identifier.
    @Test func noPlaintextCrossesToTheOtherParties() throws {
        let f = Fixture()
        let r = try Self.run(f)
        var secrets: [[UInt8]] = []
        for i in 0..<400 {
            for s in [
                People.email(i), People.email(i).lowercased(), People.maid(i), People.audienceKey(i),
                People.memberID(i), "555\(String(format: "%04d", i))", "555-\(String(format: "%04d", i))",
            ] {
                secrets.append(Array(s.utf8))
            }
            secrets.append(SHA256.hash(Array(People.email(i).lowercased().utf8)))
        }
        for (name, bytes) in [("m1 (consumer's view)", r.m1), ("m2", r.m2), ("m4", r.m4), ("m5", r.m5), ("m3", r.m3)] {
            for s in secrets where bytes.contains(bytes: s) {
                Issue.record("\(name) contains plaintext of an identifier or record (\(s.count)-byte needle)")
                return
            }
        }
    }

    @Test func belowThresholdDeliversNothing() throws {
        let f = Fixture(minMatched: 1000)
        let r = try Self.run(f)
        guard case .belowThreshold(let counts) = r.outcome else {
            Issue.record("expected below threshold")
            return
        }
        #expect(counts.matchedRows == People.expectedAudienceKeys.count)
    }

    @Test func reusedRunIDIsRefused() throws {
        let f = Fixture()
        let agreement = try f.agreement()
        let runID = AgreementTerms.newID()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let p = try provider.prepare(runID: runID, audience: People.audience())
        let c = try consumer.prepare(runID: runID, query: People.query())
        let m4 = try provider.respond(to: c.forProvider, state: p.state)
        let m5 = try consumer.respond(to: p.forConsumer, state: c.state)
        let coordinator = try Coordinator(agreement: agreement, identity: f.coordinatorID)
        #expect(throws: ActivationError(.runAlreadyUsed, "")) {
            try coordinator.match(
                runID: runID, payload: p.forCoordinator, consumerSet: m4, providerSet: m5,
                history: RunHistory(usedRunIDs: [runID]))
        }
        #expect(throws: ActivationError(.runLimitReached, "")) {
            try coordinator.match(
                runID: runID, payload: p.forCoordinator, consumerSet: m4, providerSet: m5,
                history: RunHistory(runsInWindow: 10))
        }
    }
}
