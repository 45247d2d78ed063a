import Foundation
import Gzip
import RistrettoPSI
import Testing

@testable import Activation

/// Rounds 5 and 6 on every core (SPEC §9 "Bounded memory", issue 6): round 5 validates a chunk on
/// a pipeline job while the next is read and formats delivered rows in blocks across cores; round
/// 6 opens records in batches across cores, a batch on a job while the next is inflated. Whatever
/// the chunk, block and batch sizes and whether the work is pipelined, they give the bytes and the
/// first error of one thing after another. (The thread count itself is not changed: `setenv`
/// while other tests read the environment would race; forcing the plain path is what
/// `CLEANROOM_THREADS=1` does besides splitting loops in fewer pieces, which the sizes below vary.)
@Suite("Rounds 5 and 6 on every core")
struct ParallelRoundsTests {
    typealias Run = CoordinatorStreamTests.Run

    /// Production sizes on the plain path, then sizes that cut the People sets into many chunks,
    /// blocks and batches, on both paths.
    static let tunings: [Coordinator.Tuning] = [
        Coordinator.Tuning(pipelined: false),
        Coordinator.Tuning(chunk: 7, block: 3, pipelined: false),
        Coordinator.Tuning(chunk: 7, block: 3, pipelined: true),
        Coordinator.Tuning(chunk: 1, block: 1, pipelined: true),
        Coordinator.Tuning(pipelined: true),
        // Delivered records read one span per block, and each alone (only adjacent ones together).
        Coordinator.Tuning(chunk: 7, block: 64, gap: 1 << 20, pipelined: true),
        Coordinator.Tuning(chunk: 7, block: 64, gap: 0, pipelined: false),
    ]

    static func match(
        _ run: Run, tuning: Coordinator.Tuning, budget: Int = 1 << 30, recordsPerObject: Int = 1_000_000,
        payload: [UInt8]? = nil, consumer: [UInt8]? = nil,
        now: Date = Date(timeIntervalSince1970: 1_800_000_000)
    ) throws -> MatchOutcome {
        var c = run.coordinator
        c.recordsPerObject = recordsPerObject
        return try c.match(
            runID: run.runID, payload: BytesSource(payload ?? run.payload.message.serialized()),
            consumerSet: BytesSource(consumer ?? run.consumerSet.message.serialized()),
            providerSet: BytesSource(run.providerSet.message.serialized()),
            scratch: MemoryScratch(), history: RunHistory(), now: now, names: .standard, budget: budget, tuning: tuning)
    }

    /// What a match produced (objects' bytes, counts, signed manifest) or the error it threw.
    enum Outcome: Equatable {
        case delivered(objects: [[UInt8]], names: [String], matchedRows: Int, matchedElements: Int, manifest: [UInt8])
        case failed(String)
    }

    static func outcome(_ body: () throws -> MatchOutcome) -> Outcome {
        do {
            guard case .deliver(let plan, let counts) = try body() else { return .failed("below threshold") }
            return .delivered(
                objects: try plan.objects.map { try $0.bytes() }, names: plan.objects.map(\.name),
                matchedRows: counts.matchedRows, matchedElements: counts.matchedElements, manifest: plan.manifest.json()
            )
        } catch let e as ActivationError { return .failed("\(e.code.rawValue): \(e.reason)") } catch {
            return .failed("\(error)")
        }
    }

    @Test("round 5 delivers the same bytes whatever the chunks, blocks and pipelining", arguments: [1 << 30, 512])
    func round5SameBytes(budget: Int) throws {
        for shape in CoordinatorStreamTests.shapes {
            let run = try Run(member: shape.member, sealed: shape.sealed, gzip: shape.gzip)
            for perObject in [1_000_000, 4] {
                let reference = Self.outcome {
                    try Self.match(run, tuning: Self.tunings[0], budget: budget, recordsPerObject: perObject)
                }
                guard case .delivered(let objects, _, let rows, _, _) = reference else {
                    Issue.record("no delivery: \(reference)")
                    return
                }
                #expect(rows == People.expectedAudienceKeys.count)
                #expect(objects.count == (perObject == 4 ? (rows + 3) / 4 : 1))
                for t in Self.tunings.dropFirst() {
                    #expect(
                        Self.outcome { try Self.match(run, tuning: t, budget: budget, recordsPerObject: perObject) }
                            == reference,
                        "chunk \(t.chunk), block \(t.block), pipelined \(String(describing: t.pipelined))")
                }
            }
        }
    }

    /// A consumer set of `count` elements (the People set repeated: valid, with duplicates, which
    /// only matter after every element validated) with the elements at `bad` made invalid.
    static func consumerSet(_ run: Run, count: Int, bad: [Int]) -> [UInt8] {
        let m = run.consumerSet.message
        var body = [UInt8]()
        for _ in 0..<(count / m.count + 1) { body += m.body }
        body.removeLast(body.count - count * 32)
        for b in bad { body.replaceSubrange((b * 32)..<((b + 1) * 32), with: [UInt8](repeating: 0xff, count: 32)) }
        return SignedMessage(
            kind: .consumerReblinded, agreement: run.agreement, runUUID: m.runUUID, recordSize: 32, body: body,
            reference: m.reference, metadata: m.metadata, signer: run.f.providerID.signingKey
        ).serialized()
    }

    @Test("round 5 reports the first invalid element when several chunks hold one")
    func round5FirstInvalidElement() throws {
        let run = try Run(member: false)
        // Invalid elements in chunks 3, 9 and 16 of 1,000 records (and in the last chunk of 16,384).
        let bytes = Self.consumerSet(run, count: 17_000, bad: [16_390, 9_000, 3_001, 3_500])
        let tunings =
            Self.tunings + [
                Coordinator.Tuning(chunk: 1000, pipelined: true), Coordinator.Tuning(chunk: 1000, pipelined: false),
                Coordinator.Tuning(chunk: 3_001, pipelined: true),
            ]
        for t in tunings {
            let o = Self.outcome { try Self.match(run, tuning: t, consumer: bytes) }
            guard case .failed(let reason) = o else {
                Issue.record("accepted with chunk \(t.chunk)")
                continue
            }
            #expect(
                reason.hasPrefix("activation.invalid_element: consumer-reblinded: element 3001 rejected"),
                "chunk \(t.chunk): \(reason)")
        }
        // A body changed after signing is a checksum mismatch on every path, even with invalid elements in it.
        var changed = bytes
        changed[changed.count - 64 - 5 * 32] ^= 0x01
        for t in tunings {
            #expect(
                Self.outcome { try Self.match(run, tuning: t, consumer: changed) }
                    == .failed(
                        "activation.message.checksum_mismatch: consumer-reblinded: body SHA-256 does not match the signed header"
                    ))
        }
    }

    @Test(
        "round 5 reports a changed payload before anything wrong with the sets, though the payload pass runs beside them"
    )
    func round5PayloadFirst() throws {
        let run = try Run(member: false)
        let consumer = Self.consumerSet(run, count: 17_000, bad: [3_001])
        var payload = run.payload.message.serialized()
        payload[payload.count - 64 - 3] ^= 0x01
        for t in Self.tunings + [Coordinator.Tuning(chunk: 1000, pipelined: true)] {
            #expect(
                Self.outcome { try Self.match(run, tuning: t, payload: payload, consumer: consumer) }
                    == .failed(
                        "activation.message.checksum_mismatch: provider-payload: body SHA-256 does not match the signed header"
                    ))
            // With the payload intact, the consumer's invalid element is what fails.
            guard case .failed(let reason) = Self.outcome({ try Self.match(run, tuning: t, consumer: consumer) }) else {
                Issue.record("accepted")
                continue
            }
            #expect(reason.hasPrefix("activation.invalid_element: consumer-reblinded: element 3001 rejected"))
        }
    }

    @Test("round 5 names the first delivered row whose sealed attributes do not open")
    func round5FirstBadAttributes() throws {
        let run = try Run(member: true)
        let m = run.consumerSet.message
        // Every consumer record's sealed attributes changed in their last byte: every delivered row fails to open.
        var body = m.body
        for i in 0..<m.count { body[(i + 1) * m.recordSize - 1] ^= 0x01 }
        let bytes = SignedMessage(
            kind: .consumerReblinded, agreement: run.agreement, runUUID: m.runUUID, recordSize: m.recordSize,
            body: body, reference: m.reference, sealingKey: try SealingPublicKey(bytes: m.sealingKey),
            metadata: m.metadata,
            signer: run.f.providerID.signingKey
        ).serialized()
        let reference = Self.outcome { try Self.match(run, tuning: Self.tunings[0], consumer: bytes) }
        guard case .failed(let reason) = reference else {
            Issue.record("delivered: \(reference)")
            return
        }
        #expect(
            reason.hasPrefix("activation.message.malformed: consumer-reblinded: element ")
                && reason.hasSuffix("'s sealed attributes do not open"))
        for t in Self.tunings.dropFirst() {
            #expect(Self.outcome { try Self.match(run, tuning: t, consumer: bytes) } == reference, "block \(t.block)")
        }
    }

    /// A message's bytes, recording every read (offset, length).
    final class CountingSource: ByteSource, @unchecked Sendable {
        let inner: BytesSource
        private let lock = NSLock()
        private var made: [(offset: Int, count: Int)] = []
        init(_ bytes: [UInt8]) { inner = BytesSource(bytes) }
        var size: Int { inner.size }
        var reads: [(offset: Int, count: Int)] { lock.withLock { made } }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
            lock.withLock { made.append((offset, buffer.count)) }
            try inner.read(at: offset, into: buffer)
        }
    }

    @Test(
        "round 5's first step reads and verifies each header once, and the match goes on from it",
        arguments: [false, true])
    func openThenMatch(member: Bool) throws {
        let run = try Run(member: member)
        let messages = [
            run.payload.message.serialized(), run.consumerSet.message.serialized(),
            run.providerSet.message.serialized(),
        ]
        let sources = messages.map(CountingSource.init)
        let inputs = try run.coordinator.open(
            runID: run.runID, payload: sources[0], consumerSet: sources[1], providerSet: sources[2],
            history: RunHistory())
        for (s, m) in zip(sources, messages) {
            // The header's prefix and the signature: nothing else yet.
            #expect(s.reads.count == 2)
            #expect(s.reads.last.map { $0.offset == m.count - 64 && $0.count == 64 } == true)
        }
        #expect(
            headerCounts(inputs) == [
                run.payload.message.count, run.consumerSet.message.count, run.providerSet.message.count,
            ])
        let got = Self.outcome {
            try run.coordinator.match(inputs, scratch: MemoryScratch(), now: Date(timeIntervalSince1970: 1_800_000_000))
        }
        for s in sources {
            #expect(s.reads.filter { $0.offset == 0 }.count == 1, "the header was read once")
            #expect(s.reads.filter { $0.offset == s.size - 64 }.count == 1, "the signature was verified once")
        }
        #expect(got == Self.outcome { try Self.match(run, tuning: .standard) })
    }

    /// The counts the verified headers give (what the free-space preflight reads from them).
    func headerCounts(_ inputs: Coordinator.MatchInputs) -> [Int] {
        [inputs.payloadHeader.count, inputs.consumerSetHeader.count, inputs.providerSetHeader.count]
    }

    @Test(
        "the delivery's byte-level Base64 gives Foundation's encoding",
        arguments: [0, 1, 2, 3, 4, 5, 31, 32, 33, 72, 100])
    func base64MatchesFoundation(length: Int) throws {
        for _ in 0..<20 {
            let bytes = SecureRandom.bytes(length)
            var out: [UInt8] = [0x2c]
            Base64.append(bytes[...], to: &out)
            #expect(out == [0x2c] + Array(Base64.encode(bytes).utf8))
            // From a slice that does not start at 0, as the delivery encodes a record past its row number.
            var sliced: [UInt8] = []
            Base64.append(([9, 9] + bytes)[2...], to: &sliced)
            #expect(sliced == Array(Base64.encode(bytes).utf8))
        }
    }

    @Test(
        "the strict Base64 decoder takes back every encoding it writes",
        arguments: [0, 1, 2, 3, 4, 5, 31, 32, 33, 72, 100, 170, 106])
    func base64DecodesItsEncoding(length: Int) throws {
        for _ in 0..<20 {
            let bytes = SecureRandom.bytes(length)
            var encoded: [UInt8] = []
            Base64.append(bytes[...], to: &encoded)
            #expect(Base64.decode(encoded) == bytes)
            #expect(
                Base64.decode(encoded).map { Data($0) } == Data(base64Encoded: Data(encoded)),
                "as Foundation decodes it")
        }
    }

    /// One case per rule of the strict decoder: what it takes (the canonical encoding) and what
    /// it refuses, with Foundation's verdict on the same bytes where it is laxer.
    @Test(
        arguments: [
            ("", [UInt8]?.some([])), ("QQ==", [65]), ("QUI=", [65, 66]), ("QUJD", [65, 66, 67]),
            ("QUJDRA==", [65, 66, 67, 68]),
            ("+/+/", [0xfb, 0xff, 0xbf]),
            // Bad length (Foundation refuses these too).
            ("Q", nil), ("QQ", nil), ("QQ=", nil), ("QUJ", nil), ("QUJDRA", nil), ("QUJDR", nil),
            // Bad characters: URL-safe alphabet, whitespace, line breaks, NUL, non-ASCII.
            ("-_==", nil), ("QQ==\n", nil), (" QQ=", nil), ("QU\rJ", nil), ("QUJ\u{0}", nil), ("QU\u{e9}", nil),
            ("QU.D", nil),
            // Misplaced padding: inside, at the start, three or four of them, data after it.
            ("Q===", nil), ("====", nil), ("=QQ=", nil), ("QQ=A", nil), ("Q=Q=", nil), ("QQ==QQ==", nil),
            ("QUJD====", nil), ("QQ==QUJD", nil),
            // Non-zero bits left over before the padding (Foundation drops them).
            ("QR==", nil), ("QX==", nil), ("QUJ=", nil), ("QUL=", nil),
        ] as [(String, [UInt8]?)])
    func base64DecoderRules(input: String, expected: [UInt8]?) throws {
        #expect(Base64.decode(Array(input.utf8)) == expected)
        // Every input it takes Foundation takes, to the same bytes.
        if let expected { #expect(Data(base64Encoded: input) == Data(expected)) }
        // Decoded from a slice of a larger buffer, as from a delivered line.
        let line = Array(("x," + input + ",y").utf8)
        var out = [UInt8](repeating: 0, count: input.utf8.count)
        let n = line.withUnsafeBytes { l in
            out.withUnsafeMutableBytes {
                Base64.decode(UnsafeRawBufferPointer(rebasing: l[2..<(2 + input.utf8.count)]), into: $0)
            }
        }
        #expect(n.map { Array(out[..<$0]) } == expected)
    }

    /// The split of a line without quotes (the fast path) is the quote-aware split's.
    @Test(arguments: ["", ",", "a", "a,b,c", ",a,,b,", "abc,,", "x,\"y\",z", "\"a,b\",c", "\"\"", "k,s,n,m"])
    func csvSplitFastPathAgrees(line: String) throws {
        let bytes = Array(line.utf8)
        var expected: [[UInt8]] = []
        var cur: [UInt8] = []
        var inQuotes = false
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if inQuotes {
                if b == 0x22 {
                    if i + 1 < bytes.count && bytes[i + 1] == 0x22 {
                        cur.append(0x22)
                        i += 1
                    } else {
                        inQuotes = false
                    }
                } else {
                    cur.append(b)
                }
            } else if b == 0x22 {
                inQuotes = true
            } else if b == 0x2c {
                expected.append(cur)
                cur = []
            } else {
                cur.append(b)
            }
            i += 1
        }
        expected.append(cur)
        #expect(CSVField.split(bytes[...]) == expected)
        #expect(CSVField.split(([0x2c] + bytes)[1...]) == expected, "from a slice not starting at 0")
    }

    @Test(
        "the matched-set sketch tagged in blocks on every core equals the one built row by row",
        arguments: [0, 1, 1000, 5000])
    func sketchInBlocks(count: Int) throws {
        let f = Fixture(deliverMemberID: false, sealed: true)
        let agreement = try f.agreement()
        let runID = AgreementTerms.newID()
        let rows = (0..<count).map { UInt64($0) * 7 + 3 }
        var one = RunSketch.Builder(
            runID: runID, coordinator: f.coordinatorID.signingKey, collaborationUUID: agreement.collaborationUUID)
        for r in rows { one.add(r) }
        var blocks = RunSketch.Builder(
            runID: runID, coordinator: f.coordinatorID.signingKey, collaborationUUID: agreement.collaborationUUID)
        for start in stride(from: 0, to: rows.count, by: 777) {
            blocks.add(rows: Array(rows[start..<min(rows.count, start + 777)]))
        }
        blocks.add(rows: [])
        let a = one.finish()
        let b = blocks.finish()
        #expect(a.serialized() == b.serialized())
        #expect(a.tags.count == min(count, RunSketch.capacity))
    }

    // MARK: Round 6

    static let openTunings: [(batch: Int, pipelined: Bool)] = [
        (4096, false), (1, false), (3, false), (1, true), (3, true), (4096, true),
    ]

    enum Opened: Equatable {
        case success([UInt8])
        case failure(String)
    }

    /// The plain CSV of a delivery (or the error), opened with the given batch size and path.
    static func open(_ f: Fixture, _ delivery: ReceivedDelivery, batch: Int, pipelined: Bool, chunk: Int = 1 << 20)
        -> Opened
    {
        var d = delivery
        d.openBatch = batch
        d.pipelined = pipelined
        d.readChunk = chunk
        let out = BytesOutput()
        do {
            _ = try Provider(agreement: try f.agreement(), identity: f.providerID).open(d, into: out)
            return .success(out.bytes)
        } catch let e as ActivationError { return .failure("\(e.code.rawValue): \(e.reason)") } catch {
            return .failure("\(error)")
        }
    }

    @Test("round 6 writes the same CSV whatever the batches and pipelining, over several objects")
    func round6SameBytes() throws {
        for shape in CoordinatorStreamTests.shapes {
            let run = try Run(member: shape.member, sealed: shape.sealed, gzip: shape.gzip)
            guard case .deliver(let plan, _) = try Self.match(run, tuning: .standard, recordsPerObject: 4) else {
                Issue.record("no delivery")
                return
            }
            #expect(plan.objects.count > 1)
            let delivery = ReceivedDelivery(
                manifestBytes: plan.manifest.json(), objects: try DeliveryOpenTests.objects(plan))
            let records = try Provider(agreement: try run.f.agreement(), identity: run.f.providerID).open(delivery)
            #expect(records.count == People.expectedAudienceKeys.count)
            let expected = ReceivedDelivery.plainCSV(records)
            for t in Self.openTunings {
                for chunk in [7, 1 << 20] {
                    #expect(
                        Self.open(run.f, delivery, batch: t.batch, pipelined: t.pipelined, chunk: chunk)
                            == .success(expected),
                        "batch \(t.batch), pipelined \(t.pipelined), reads of \(chunk) bytes")
                }
            }
        }
    }

    @Test("round 6 reports the first bad record when several batches hold one, before a later read failure")
    func round6FirstBadRecord() throws {
        let header = "audience_key,segment_id,segment_name"
        let long = String(repeating: "x", count: 1100)
        func good(_ n: Int) -> [String] { (0..<n).map { "k\($0),s,n" } }
        // Records 6 and 12 have a wrong field count; line 30 is too long.
        let lines = [header] + good(5) + ["k,s"] + good(5) + ["k,s"] + good(16) + ["\(long),s,n"] + good(3)
        let records = lines.count - 1
        for gzip in [false, true] {
            // The agreement's output terms say whether objects are gzip (a manifest must match them).
            let (f, plan) = try DeliveryOpenTests.delivered(memberIDs: false, sealed: false, gzip: gzip)
            var object = DeliveryOpenTests.csv(lines)
            if gzip { object = try Gzip.compress(object) }
            let d = try DeliveryOpenTests.forged(f, plan, object: object, records: records, gzip: gzip)
            let name = gzip ? "part-00000.csv.gz" : "part-00000.csv"
            for t in Self.openTunings {
                #expect(
                    Self.open(f, d, batch: t.batch, pipelined: t.pipelined)
                        == .failure("activation.delivery.invalid: object \(name) record 6: wrong field count"),
                    "batch \(t.batch), pipelined \(t.pipelined)")
            }
            // Without the bad records, the long line is what fails, after every record before it opened.
            let clean = [header] + good(28) + ["\(long),s,n"] + good(3)
            var cleanObject = DeliveryOpenTests.csv(clean)
            if gzip { cleanObject = try Gzip.compress(cleanObject) }
            let c = try DeliveryOpenTests.forged(f, plan, object: cleanObject, records: clean.count - 1, gzip: gzip)
            for t in Self.openTunings {
                #expect(
                    Self.open(f, c, batch: t.batch, pipelined: t.pipelined)
                        == .failure("activation.delivery.invalid: object \(name) line 30: longer than 1024 bytes"))
            }
        }
        // A gzip stream cut short fails at its end; a bad record before the cut is reported instead.
        let (f, plan) = try DeliveryOpenTests.delivered(memberIDs: false, sealed: false, gzip: true)
        let cut = Array(try Gzip.compress(DeliveryOpenTests.csv([header] + good(9) + ["k,s"] + good(20))).dropLast(12))
        let d = try DeliveryOpenTests.forged(f, plan, object: cut, records: 30, gzip: true)
        for t in Self.openTunings {
            #expect(
                Self.open(f, d, batch: t.batch, pipelined: t.pipelined)
                    == .failure("activation.delivery.invalid: object part-00000.csv.gz record 10: wrong field count"))
        }
    }

    @Test("round 6 names the first sealed field that does not open, whatever the batches")
    func round6FirstSealedFailure() throws {
        let (f, plan) = try DeliveryOpenTests.delivered(memberIDs: false, sealed: true, gzip: false)
        let good = try DeliveryOpenTests.objects(plan)[plan.objects[0].name]!
        var lines = CSVField.lines(good).map { String(decoding: $0, as: UTF8.self) }
        #expect(lines.count > 6)
        // Records 3 and 5 (lines 4 and 6) no longer open.
        lines[3] = "AAAA" + lines[3].drop { $0 != "," }
        lines[5] = "AAAA" + lines[5].drop { $0 != "," }
        let d = try DeliveryOpenTests.forged(
            f, plan, object: DeliveryOpenTests.csv(lines), records: lines.count - 1, gzip: false)
        for t in Self.openTunings {
            #expect(
                Self.open(f, d, batch: t.batch, pipelined: t.pipelined)
                    == .failure(
                        "activation.delivery.invalid: object part-00000.csv record 3: sealed field does not open"))
        }
    }
}
