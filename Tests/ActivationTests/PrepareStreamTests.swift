import Foundation
import Identifiers
import RistrettoPSI
import Testing

@testable import Activation

/// Rounds 1 and 2 in bounded memory (SPEC §9 "Bounded memory", "Rounds 1 and 2"): the streamed
/// prepare, forced by tiny spill budgets through many partitions, re-split partitions and many
/// shuffle buckets, produces what the plain definition of the round produces, and a whole run
/// through it still delivers exactly the known overlap.
@Suite("Prepare in bounded memory")
struct PrepareStreamTests {
    /// The budgets each case runs under: everything in memory, and 4 KiB (a few records per
    /// partition and bucket, so partitions spill, are split again and the shuffle has hundreds of buckets).
    static let budgets = [1 << 30, 4096]

    /// Provider rows with identifiers repeated within and across rows, blank ones, and rows
    /// without any identifier.
    static func providerRows(_ n: Int = 2_000) -> [InputRow] {
        (0..<n).map { i in
            let email = i % 11 == 0 ? "" : People.email(i % 900)
            let phone = i % 3 == 0 ? People.phone(i % 500) : " "
            let maid = i % 7 == 0 ? People.maid(i % 300) : ""
            return InputRow(
                row: i + 1,
                fields: [Array(People.audienceKey(i).utf8), Array(email.utf8), Array(phone.utf8), Array(maid.utf8)])
        }
    }

    static func scalar(_ tag: String) -> Scalar {
        var b = SHA256.hash(Array("prepare stream \(tag)".utf8))
        b[31] &= 0x0f
        return try! Scalar(consumingCanonicalBytes: &b)
    }

    /// The round's definition, written out plainly: distinct normalized messages in first-seen
    /// order with the first row that carried each, hashed and blinded.
    static func reference(
        _ rows: [InputRow], _ columns: [IdentifierColumn], _ agreement: VerifiedAgreement,
        _ scalar: Scalar
    ) throws -> (elements: [[UInt8]], firstRow: [Int], duplicates: Int) {
        let normalizer = Normalizer(rules: agreement.rules)
        var seen = Set<[UInt8]>()
        var messages: [[UInt8]] = []
        var firstRow: [Int] = []
        var duplicates = 0
        for (r, row) in rows.enumerated() {
            for c in columns {
                let raw = row.field(c.index)
                if raw.allSatisfy({ $0 == 0x20 }) { continue }
                let m = try normalizer.matchValue(raw, as: c.type).hashToGroupMessage
                if seen.insert(m).inserted {
                    messages.append(m)
                    firstRow.append(r)
                } else {
                    duplicates += 1
                }
            }
        }
        let blinded = try agreement.hasher.hash(messages).multiplied(by: scalar)
        return (blinded.map { $0.bytes }, firstRow, duplicates)
    }

    static func records(_ m: SignedMessage) -> [[UInt8]] { (0..<m.count).map { Array(m.record($0)) } }

    static func stageProvider(
        _ provider: Provider, _ runID: String, rows: [InputRow], scalar: Scalar, permutation: [Int]?,
        budget: Int
    ) throws -> Provider.Prepared {
        var staged = try provider.stage(
            runID: runID,
            audience: ProviderAudience(
                source: "audience.csv", rows: rows, identifierColumns: People.providerColumns,
                audienceKeyColumn: (0, "audience_id")),
            scalar: scalar, scratch: MemoryScratch(), permutation: permutation, progress: nil, budget: budget)
        let m1 = BytesSink()
        let m2 = BytesSink()
        let state = try staged.write(forConsumer: m1, forCoordinator: m2) { _ in }
        let agreement = provider.agreement
        return Provider.Prepared(
            forConsumer: try ProviderBlindedSet(parsing: m1.bytes, agreement: agreement, source: "m1"),
            forCoordinator: try ProviderPayload(parsing: m2.bytes, agreement: agreement, source: "m2"),
            state: state, summary: staged.summary, skipped: try staged.skipped.all())
    }

    static func stageConsumer(
        _ consumer: Consumer, _ runID: String, query: ConsumerQuery, scalar: Scalar = .random(),
        permutation: [Int]? = nil,
        budget: Int
    ) throws -> Consumer.Prepared {
        var staged = try consumer.stage(
            runID: runID, query: query, scalar: scalar, scratch: MemoryScratch(), permutation: permutation,
            progress: nil, budget: budget)
        let m = BytesSink()
        let state = try staged.write(forProvider: m) { _ in }
        return Consumer.Prepared(
            forProvider: try ConsumerBlindedSet(parsing: m.bytes, agreement: consumer.agreement, source: "m3"),
            state: state, summary: staged.summary, skipped: try staged.skipped.all())
    }

    @Test(
        "round 1 with a fixed scalar and permutation is the plain definition, byte for byte, under every budget",
        arguments: budgets)
    func providerMatchesTheDefinition(budget: Int) throws {
        let f = Fixture(deliverMemberID: false, sealed: false)
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let rows = Self.providerRows()
        let b = Self.scalar("b")
        let ref = try Self.reference(rows, People.providerColumns, agreement, b)
        var perm = Array(ref.elements.indices)
        perm.shuffle()
        let p = try Self.stageProvider(
            provider, AgreementTerms.newID(), rows: rows, scalar: b, permutation: perm, budget: budget)
        #expect(Self.records(p.forConsumer.message) == perm.map { ref.elements[$0] })
        let payloads = perm.map { j in
            BE.u64(UInt64(ref.firstRow[j]))
                + Layout.padded(Array(People.audienceKey(ref.firstRow[j]).utf8), to: Layout.maxAudienceKey)
        }
        #expect(Self.records(p.forCoordinator.message) == payloads)
        #expect(p.forCoordinator.message.reference == p.forConsumer.message.bodyHash)
        #expect(p.state.reference == p.forConsumer.message.bodyHash)
        #expect(p.summary.elements == ref.elements.count)
        #expect(p.summary.duplicateIdentifiers == ref.duplicates)
        #expect(p.summary.rowsRead == rows.count && p.summary.rowsSelected == rows.count)
        #expect(
            p.summary.rowsWithoutIdentifier == rows.indices.filter { $0 % 11 == 0 && $0 % 3 != 0 && $0 % 7 != 0 }.count)
        // The public in-memory API gives the same bytes.
        let inMemory = try provider.prepare(
            runID: UUIDBytes.string(p.forConsumer.message.runUUID),
            audience: ProviderAudience(
                source: "audience.csv", rows: rows, identifierColumns: People.providerColumns,
                audienceKeyColumn: (0, "audience_id")),
            scalar: b, permutation: perm)
        #expect(inMemory.forConsumer.message.body == p.forConsumer.message.body)
        #expect(inMemory.forCoordinator.message.body == p.forCoordinator.message.body)
        #expect(inMemory.summary == p.summary)
    }

    @Test(
        "round 1 shuffled: the same records as the definition, each element with its own payload, under every budget",
        arguments: budgets)
    func providerShuffledKeepsPairs(budget: Int) throws {
        let f = Fixture(deliverMemberID: false, sealed: false)
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let rows = Self.providerRows()
        let b = Self.scalar("b2")
        let ref = try Self.reference(rows, People.providerColumns, agreement, b)
        #expect(ref.duplicates > 0, "the fixture repeats identifiers, so the in-place deduplication (1 GiB) drops some")
        let p = try Self.stageProvider(
            provider, AgreementTerms.newID(), rows: rows, scalar: b, permutation: nil, budget: budget)
        let got = zip(Self.records(p.forConsumer.message), Self.records(p.forCoordinator.message)).map { $0 + $1 }
        let want = ref.elements.indices.map { j in
            ref.elements[j] + BE.u64(UInt64(ref.firstRow[j]))
                + Layout.padded(Array(People.audienceKey(ref.firstRow[j]).utf8), to: Layout.maxAudienceKey)
        }
        #expect(got.count == want.count)
        #expect(Set(got) == Set(want))
        #expect(
            Self.records(p.forConsumer.message) != ref.elements,
            "the output is shuffled (2000 elements in first-seen order by chance: never)")
    }

    @Test("round 2 with a fixed scalar and permutation is the plain definition under every budget", arguments: budgets)
    func consumerMatchesTheDefinition(budget: Int) throws {
        let f = Fixture(deliverMemberID: false, sealed: false)
        let agreement = try f.agreement()
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let a = Self.scalar("a")
        let selected = People.consumerRows().filter { String(decoding: $0.field(3), as: UTF8.self) == "yes" }
        let ref = try Self.reference(selected, People.consumerColumns, agreement, a)
        let perm = Array(ref.elements.indices.reversed())
        let c = try Self.stageConsumer(
            consumer, AgreementTerms.newID(), query: People.query(), scalar: a, permutation: perm, budget: budget)
        #expect(Self.records(c.forProvider.message) == perm.map { ref.elements[$0] })
        #expect(c.summary.rowsRead == 200 && c.summary.rowsSelected == 150 && c.summary.rowsFilteredOut == 50)
        #expect(c.summary.elements == ref.elements.count && c.summary.duplicateIdentifiers == ref.duplicates)
        #expect(c.forProvider.message.metadata["consumerRows"] == "150")
    }

    /// Shuffled, the survivors are gathered in place in the partition buffer when it never
    /// spilled (budget 1 GiB) and copied out of spilled partitions otherwise (4 KiB): both give
    /// the definition's elements, duplicates dropped, each with its sealed member ID moved along
    /// (the records' tails), with the same summary.
    @Test(
        "round 2 shuffled: the definition's elements under every budget, duplicates dropped, tails kept",
        arguments: budgets)
    func consumerShuffledKeepsTheSet(budget: Int) throws {
        let f = Fixture(deliverMemberID: true)
        let agreement = try f.agreement()
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let a = Self.scalar("a2")
        // The fixture's rows, then its first 60 again (new row numbers): their identifiers repeat.
        let base = People.consumerRows()
        let rows =
            base + base.prefix(60).enumerated().map { k, r in InputRow(row: base.count + k + 1, fields: r.fields) }
        let q = People.query()
        let query = ConsumerQuery(
            source: q.source, rows: rows, identifierColumns: q.identifierColumns, filters: q.filters,
            consentColumns: q.consentColumns, memberIDColumn: q.memberIDColumn, segmentID: q.segmentID,
            segmentName: q.segmentName)
        let selected = rows.filter { String(decoding: $0.field(3), as: UTF8.self) == "yes" }
        let ref = try Self.reference(selected, People.consumerColumns, agreement, a)
        #expect(ref.duplicates > 0, "repeated rows, so the deduplication drops some")
        let c = try Self.stageConsumer(
            consumer, AgreementTerms.newID(), query: query, scalar: a, permutation: nil, budget: budget)
        let got = Self.records(c.forProvider.message)
        #expect(got.count == ref.elements.count)
        #expect(Set(got.map { Array($0.prefix(32)) }) == Set(ref.elements))
        #expect(c.summary.elements == ref.elements.count && c.summary.duplicateIdentifiers == ref.duplicates)
        // Each record's tail is its element's sealed member ID, opened by the coordinator's
        // inner layer only: here it must at least be there, whole and not zero.
        let tail = Layout.consumerRecordSize(agreement) - 32
        #expect(tail > 0)
        #expect(got.allSatisfy { $0.count == 32 + tail && $0.suffix(tail).contains { $0 != 0 } })
    }

    @Test(
        "a whole run with every party spilling delivers exactly the known overlap, with unchanged summaries",
        arguments: [(true, true), (false, false)])
    func fullRunUnderTinyBudgets(memberIDs: Bool, sealed: Bool) throws {
        let f = Fixture(deliverMemberID: memberIDs, sealed: sealed)
        let agreement = try f.agreement()
        let provider = try Provider(agreement: agreement, identity: f.providerID)
        let consumer = try Consumer(agreement: agreement, signingKey: f.consumerID.signingKey)
        let coordinator = try Coordinator(agreement: agreement, identity: f.coordinatorID)
        let runID = AgreementTerms.newID()
        let p = try Self.stageProvider(
            provider, runID, rows: People.providerRows(), scalar: .random(), permutation: nil, budget: 4096)
        let c = try Self.stageConsumer(consumer, runID, query: People.query(), budget: 4096)
        // The summaries are those of the in-memory run.
        let pMem = try provider.prepare(runID: AgreementTerms.newID(), audience: People.audience())
        let cMem = try consumer.prepare(runID: AgreementTerms.newID(), query: People.query())
        #expect(p.summary == pMem.summary && c.summary == cMem.summary)
        let m4 = try provider.respond(to: c.forProvider, state: p.state)
        let m5 = try consumer.respond(to: p.forConsumer, state: c.state)
        let outcome = try coordinator.match(
            runID: runID, payload: p.forCoordinator, consumerSet: m4, providerSet: m5, history: RunHistory())
        guard case .deliver(let plan, let counts) = outcome else {
            Issue.record("expected a delivery")
            return
        }
        #expect(counts.matchedRows == People.expectedAudienceKeys.count)
        let objects = Dictionary(uniqueKeysWithValues: try plan.objects.map { ($0.name, try $0.bytes()) })
        let records = try provider.open(ReceivedDelivery(manifestBytes: plan.manifest.json(), objects: objects))
        #expect(Set(records.map { String(decoding: $0.audienceKey, as: UTF8.self) }) == People.expectedAudienceKeys)
        #expect(records.count == People.expectedAudienceKeys.count)
        if memberIDs {
            for rec in records {
                let i = Int(String(decoding: rec.audienceKey, as: UTF8.self).dropFirst("audience-".count))!
                #expect(rec.memberID.map { String(decoding: $0, as: UTF8.self) } == People.memberID(i))
            }
        }
    }

    @Test(
        "an invalid audience key is reported for the first such row in input order, before anything is written",
        arguments: budgets)
    func invalidAudienceKeyNamesTheFirstRow(budget: Int) throws {
        let f = Fixture()
        let provider = try Provider(agreement: try f.agreement(), identity: f.providerID)
        var rows = Self.providerRows()
        // Rows 1500 and 1700 (data rows 1501 and 1701) carry an empty key and a key above 128 bytes; 1500's identifiers are new.
        for (i, key) in [(1700, [UInt8](repeating: 0x61, count: 129)), (1500, [])] {
            var fields = rows[i].fields
            fields[0] = key
            fields[3] = Array(People.maid(5_000 + i).utf8)
            rows[i] = InputRow(row: i + 1, fields: fields)
        }
        let audience = ProviderAudience(
            source: "audience.csv", rows: rows, identifierColumns: People.providerColumns,
            audienceKeyColumn: (0, "audience_id"))
        do {
            _ = try provider.stage(
                runID: AgreementTerms.newID(), audience: audience, scalar: .random(), scratch: MemoryScratch(),
                permutation: nil, progress: nil, budget: budget)
            Issue.record("an invalid audience key was accepted")
        } catch let e as ActivationError {
            #expect(e.code == .invalidInput)
            #expect(e.reason == "audience.csv row 1501, column 'audience_id': the audience key must be 1...128 bytes")
        }
    }

    @Test("an invalid member ID is reported for its row, before anything is written", arguments: budgets)
    func invalidMemberIDNamesTheRow(budget: Int) throws {
        let f = Fixture(deliverMemberID: true)
        let consumer = try Consumer(agreement: try f.agreement(), signingKey: f.consumerID.signingKey)
        var rows = People.consumerRows()
        var fields = rows[120].fields
        fields[0] = [UInt8](repeating: 0x6d, count: 65)
        rows[120] = InputRow(row: 121, fields: fields)
        let q = People.query()
        let query = ConsumerQuery(
            source: q.source, rows: rows, identifierColumns: q.identifierColumns, filters: q.filters,
            consentColumns: q.consentColumns,
            memberIDColumn: q.memberIDColumn, segmentID: q.segmentID, segmentName: q.segmentName)
        #expect(throws: ActivationError(.invalidInput, "")) {
            _ = try Self.stageConsumer(consumer, AgreementTerms.newID(), query: query, budget: budget)
        }
        do { _ = try consumer.prepare(runID: AgreementTerms.newID(), query: query) } catch {
            #expect(error.reason == "customers.csv row 121, column 'member_id': the member ID must be 1...64 bytes")
        }
    }

    /// Rows from an array, then the error a malformed input file would raise.
    final class FailingSource: InputRowSource {
        struct Broken: Error {}
        var rows: [InputRow]
        init(_ rows: [InputRow]) { self.rows = rows.reversed() }
        func next() throws -> InputRow? {
            guard let r = rows.popLast() else { throw Broken() }
            return r
        }
    }

    @Test("the input's own error wins over an earlier invalid identifier, as when the whole file was read first")
    func sourceErrorComesFirst() throws {
        let f = Fixture()
        let provider = try Provider(agreement: try f.agreement(), identity: f.providerID)
        var rows = Self.providerRows(50)
        rows[3] = InputRow(row: 4, fields: [Array("k".utf8), Array("not-an-email".utf8), [], []])
        let audience = ProviderAudience(
            source: "audience.csv", rows: FailingSource(rows), identifierColumns: People.providerColumns,
            audienceKeyColumn: (0, "audience_id"))
        #expect(throws: FailingSource.Broken.self) {
            _ = try provider.stage(runID: AgreementTerms.newID(), audience: audience, scratch: MemoryScratch())
        }
        // Without the source's error, the identifier's is the one reported.
        do {
            _ = try provider.prepare(
                runID: AgreementTerms.newID(),
                audience: ProviderAudience(
                    source: "audience.csv", rows: rows, identifierColumns: People.providerColumns,
                    audienceKeyColumn: (0, "audience_id")))
            Issue.record("an invalid identifier was accepted")
        } catch {
            #expect(error.reason.hasPrefix("audience.csv row 4, column 'email': identifier."))
        }
    }

    @Test("a failure before publishing abandons both round-1 sinks and never finishes either")
    func failureBeforePublishingAbandonsBoth() throws {
        let f = Fixture()
        let provider = try Provider(agreement: try f.agreement(), identity: f.providerID)
        var staged = try provider.stage(
            runID: AgreementTerms.newID(), audience: People.audience(), scratch: MemoryScratch())
        final class Counting: MessageSink {
            var finished = false, abandoned = false
            func begin(headerLength: Int) throws {}
            func append(_ bytes: UnsafeRawBufferPointer) throws {}
            func finish(header: [UInt8], signature: [UInt8]) throws { finished = true }
            func abandon() { abandoned = true }
        }
        struct Refused: Error {}
        let blinded = Counting()
        let payload = Counting()
        #expect(throws: Refused.self) {
            _ = try staged.write(forConsumer: blinded, forCoordinator: payload) { _ in throw Refused() }
        }
        #expect(!blinded.finished && !payload.finished)
        #expect(blinded.abandoned && payload.abandoned)
    }

    @Test(
        "record partitions: equal elements meet, every record comes back once, in append order within a partition",
        arguments: [64, 4096, 1 << 20])
    func partitionsKeepEveryRecord(budget: Int) throws {
        var parts = RecordPartitions(recordSize: 40, scratch: MemoryScratch(), budget: budget)
        // 3000 records over 700 distinct elements; the trailing word numbers the record.
        var all = [UInt8]()
        for i in 0..<3000 {
            all += SHA256.hash(Array("element \(i % 700)".utf8))
            withUnsafeBytes(of: UInt64(i).littleEndian) { all += $0 }
        }
        try all.withUnsafeBytes { try parts.append($0) }
        var seen = [Int]()
        var owner = [[UInt8]: Int]()
        var partition = 0
        try parts.drain { records in
            partition += 1
            var last = -1
            for k in 0..<(records.count / 40) {
                let r = Array(records[(k * 40)..<((k + 1) * 40)])
                let i = Int(
                    UInt64(littleEndian: r.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 32, as: UInt64.self) }))
                #expect(i > last, "append order within a partition")
                last = i
                seen.append(i)
                let e = Array(r.prefix(32))
                if let p = owner[e] {
                    #expect(p == partition, "equal elements meet in one partition")
                } else {
                    owner[e] = partition
                }
            }
        }
        #expect(seen.sorted() == Array(0..<3000))
        if budget < 3000 * 40 { #expect(partition > 1) } else { #expect(partition == 1) }
    }
}
