import AuditLog
import Foundation
import RistrettoPSI
import S3Delivery
import TestSupport
import Testing

@testable import Activation
@testable import Workflow

/// Everything after the coordinator's decision, in bounded memory (SPEC §9 "Bounded memory",
/// §12.4): destinations write objects from their content in pieces, and `provider open` reads
/// each object in pieces (local: in place; S3: ranged GETs into a private scratch file), verifies
/// it before using a record, and commits its output file only when every object verified.
@Suite("Delivery and open, streamed")
struct DeliveryStreamingTests {
    static func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("cleanroom-stream-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// Deterministic bytes with no period short enough to hide a misplaced part.
    static func pattern(_ n: Int, seed: UInt64 = 1) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    /// `bytes` in an unlinked scratch file, as the coordinator's large delivery objects are.
    static func scratchContent(_ bytes: [UInt8], in dir: String) throws -> ObjectContent {
        let file = try DirectoryScratch(directory: dir + "/scratch").makeFile()
        var i = 0
        while i < bytes.count {
            let end = min(bytes.count, i + 300_000)
            try bytes[i..<end].withUnsafeBytes { try file.append($0) }
            i = end
        }
        return ObjectContent(file: file)
    }

    /// A local destination streams a scratch-file object to its file byte for byte.
    @Test func localDestinationWritesAScratchObjectExactly() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = Self.pattern(3 * 1024 * 1024 + 17)
        let content = try Self.scratchContent(bytes, in: dir)
        let id = PartyIdentity.generate()
        let m = Manifest(
            collaborationID: "c", runID: "r", agreementHash: "", createdAt: "", sealed: true, compression: nil,
            columns: [],
            records: 0, objects: [], payloadSealingKey: nil, memberSealingKey: nil)
        let plan = DeliveryPlan(
            objects: [.init(name: "part-00000.csv", content: content, sha256: SHA256.hash(bytes), records: 0)],
            manifest: SignedManifest.sign(m, with: id.signingKey))
        try LocalDirectoryDestination(directory: dir + "/bucket").deliver(plan, collaborationID: "c", runID: "r")
        #expect(try Files.read(dir + "/bucket/c/r/part-00000.csv") == bytes)
        #expect(try Files.read(dir + "/bucket/c/r/manifest.json") == plan.manifest.json())
    }

    /// The files a failed or finished open may leave beside its output: none.
    static func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
    }

    /// A delivery copied whole under another run's path (its objects and the manifest the
    /// coordinator signed for its own run): `provider open` of that other run refuses it, naming
    /// both runs, with nothing at the output path.
    @Test func aDeliveryCopiedUnderAnotherRunIsRefused() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        #expect(try room.match(run).kind == .delivered)
        let other = AgreementTerms.newID()
        try FileManager.default.copyItem(
            atPath: "\(room.bucket)/\(room.collaboration)/\(run)",
            toPath: "\(room.bucket)/\(room.collaboration)/\(other)")
        let source = try Steps.destination(for: room.agreement, access: .provider)
        let out = "\(room.root)/out/matched.csv"
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: other, source: source, output: out)
        } throws: {
            ($0 as? ActivationError)?.code == .deliveryInvalid
                && "\($0)".contains("manifest is for run \(run), not for run \(other) whose path it was read from")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try Self.leftovers("\(room.root)/out").isEmpty)
        // A run ID that is not a lowercase UUID names no path at all.
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: "../\(run)", source: source, output: out)
        } throws: { ($0 as? ActivationError)?.code == .invalidInput }
    }

    /// `provider open` from a local delivery: the file equals the in-memory open's CSV; one
    /// flipped byte in an object gives `activation.delivery.invalid` and no output file, and no
    /// temporary or scratch file is left.
    @Test func localOpenStreamsAndRefusesACorruptedObjectLeavingNothing() throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        #expect(try room.match(run).kind == .delivered)
        let source = try Steps.destination(for: room.agreement, access: .provider)
        let out = "\(room.root)/out/matched.csv"
        // What a killed open leaves on this host: its empty scratch directory (no live process).
        let stale = "\(room.root)/out/.matched.csv.scratch-\(Files.hostTag)-2147483646-00000000"
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: true)
        let n = try Steps.providerOpen(
            agreement: room.agreement, identity: room.provider, runID: run, source: source, output: out)
        #expect(n == room.data.expectedAudienceKeys.count)
        #expect(!FileManager.default.fileExists(atPath: stale), "a dead open's scratch directory is removed")
        let inMemory = try Provider(agreement: room.agreement, identity: room.provider)
            .open(try source.read(collaborationID: room.collaboration, runID: run))
        #expect(try Files.read(out) == ReceivedDelivery.plainCSV(inMemory))
        let attributes = try FileManager.default.attributesOfItem(atPath: out)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try Self.leftovers("\(room.root)/out").isEmpty)

        let object = "\(room.bucket)/\(room.collaboration)/\(run)/part-00000.csv"
        var bytes = try Files.read(object)
        bytes[bytes.count / 2] ^= 0x20
        try FileManager.default.removeItem(atPath: object)
        try Files.writeAtomically(bytes, to: object)
        let failed = "\(room.root)/out2/matched.csv"
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: run, source: source, output: failed)
        } throws: {
            ($0 as? ActivationError)?.code == .deliveryInvalid
                && "\($0)".contains("part-00000.csv does not match its SHA-256")
        }
        #expect(!FileManager.default.fileExists(atPath: failed), "nothing at the output path")
        #expect(try Self.leftovers("\(room.root)/out2").isEmpty, "no temporary or scratch file left")
    }

    /// A manifest (signed by the coordinator, so it passes every signature check) naming an object
    /// outside the run's directory is refused before anything is read from that path
    /// (`workflow.destination`); one naming an object the directory does not hold gives
    /// `workflow.not_found` naming the file. Neither leaves an output file.
    @Test(arguments: ["../escaped.csv", ".hidden.csv", "sub/part-00000.csv", "part-00009.csv"])
    func localOpenRefusesObjectsOutsideTheRunOrMissing(_ name: String) throws {
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let run = try room.prepare()
        #expect(try room.match(run).kind == .delivered)
        let dir = "\(room.bucket)/\(room.collaboration)/\(run)"
        let signed = try JSONDecoder().decode(SignedManifest.self, from: Data(try Files.read("\(dir)/manifest.json")))
        let m = signed.manifest
        let o = m.objects[0]
        // The object's bytes exist where the forged name points (outside the run, for the escapes).
        if name != "part-00009.csv" {
            try FileManager.default.createDirectory(atPath: "\(dir)/sub", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "\(dir)/\(o.name)", toPath: "\(dir)/\(name)")
        }
        let forged = Manifest(
            collaborationID: m.collaborationID, runID: m.runID, agreementHash: m.agreementHash, createdAt: m.createdAt,
            sealed: m.sealed, compression: m.compression, columns: m.columns, records: m.records,
            objects: [.init(name: name, sha256: o.sha256, bytes: o.bytes, records: o.records)],
            payloadSealingKey: m.payloadSealingKey, memberSealingKey: m.memberSealingKey)
        try FileManager.default.removeItem(atPath: "\(dir)/manifest.json")
        try Files.writeAtomically(
            SignedManifest.sign(forged, with: room.coordinator.signingKey).json(), to: "\(dir)/manifest.json")
        let source = try Steps.destination(for: room.agreement, access: .provider)
        let out = "\(room.root)/out/matched.csv"
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: run, source: source, output: out)
        } throws: { error in
            guard let e = error as? WorkflowError else { return false }
            return name == "part-00009.csv"
                ? e.code == .notFound && "\(e)".contains("part-00009.csv")
                : e.code == .destination && "\(e)".contains("manifest names an object outside the run")
        }
        #expect(!FileManager.default.fileExists(atPath: out), "nothing at the output path")
    }
}

/// The same against the local S3 server: streamed multipart uploads (with retried parts read
/// again), ranged downloads, and `provider open` from S3 through a private scratch file.
@Suite("S3 delivery and open, streamed", .enabled(if: S3Server.configured, Comment(rawValue: S3Server.skipMessage)))
struct S3StreamingTests {
    static let mib5 = 5 * 1024 * 1024

    func role(_ p: S3Server.Provisioned) -> AssumedRoleCredentials {
        AssumedRoleCredentials(
            sts: STSClient(endpoints: S3Server.endpoints(), http: S3Server.http),
            base: StaticCredentials(p.coordinator),
            roleARN: p.roleARN, externalID: p.externalID, sessionName: "cleanroom-stream")
    }

    func writer(_ p: S3Server.Provisioned, via proxy: FaultProxy? = nil) -> S3Writer {
        S3Writer(
            endpoints: AWSEndpoints(
                region: S3Server.region, s3: proxy?.url ?? S3Server.endpoint!, sts: S3Server.endpoint!),
            bucket: p.location.bucket, http: S3Server.http, credentials: role(p),
            multipartThreshold: Self.mib5, partSize: Self.mib5, parallelParts: 2)
    }

    var admin: S3Reader {
        S3Reader(
            endpoints: S3Server.endpoints(), bucket: "", http: S3Server.http,
            credentials: StaticCredentials(S3Server.admin))
    }
    func reader(_ p: S3Server.Provisioned) -> S3Reader {
        S3Reader(
            endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http,
            credentials: StaticCredentials(S3Server.admin))
    }

    /// Downloads in ranges of `range` bytes, checking the announced size.
    func download(_ p: S3Server.Provisioned, _ key: String, range: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var announced = -1
        let n = try reader(p).download(
            key: key, rangeSize: range, expect: { announced = $0 }, write: { out.append(contentsOf: $0) })
        #expect(n == out.count && announced == out.count)
        return out
    }

    /// Counts how often each offset is read, so a test can see a retried part read again.
    final class CountingReader: @unchecked Sendable {
        let content: ObjectContent
        private let lock = NSLock()
        private var reads: [Int: Int] = [:]
        init(_ c: ObjectContent) { content = c }
        func read(_ offset: Int, _ buffer: UnsafeMutableRawBufferPointer) throws {
            lock.lock()
            reads[offset, default: 0] += 1
            lock.unlock()
            try content.read(at: offset, into: buffer)
        }
        func count(_ offset: Int) -> Int {
            lock.lock()
            defer { lock.unlock() }
            return reads[offset] ?? 0
        }
    }

    /// An object of two full parts and a short one, streamed from a scratch file, comes back byte
    /// for byte (whole, and in 1 MiB ranges); nothing is left open.
    @Test func streamedMultipartUploadRoundTripsExactly() throws {
        let p = try S3Server.provision()
        let dir = try DeliveryStreamingTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = DeliveryStreamingTests.pattern(2 * Self.mib5 + 1_234_567)
        let content = try DeliveryStreamingTests.scratchContent(bytes, in: dir)
        let key = p.location.key(p.collaborationID, "run-s", "part-00000.csv")
        let counting = CountingReader(content)
        #expect(
            try writer(p).put(key: key, size: content.size, sha256: SHA256.hash(bytes), read: counting.read) == .written
        )
        for i in 0..<3 { #expect(counting.count(i * Self.mib5) == 1, "each part read once") }
        #expect(try download(p, key, range: 1 << 20) == bytes)
        #expect(try download(p, key, range: 64 << 20) == bytes)
        #expect(try S3Server.object(p.location.bucket, key: key) == bytes)
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
    }

    /// A part answered 500 and a part whose answer was lost are each sent again, read again from
    /// the content, and the object still holds exactly the bytes.
    @Test func retriedPartsAreReadAgainAndUploadCorrectBytes() throws {
        let p = try S3Server.provision()
        let proxy = try FaultProxy(
            upstream: S3Server.endpoint!,
            rules: [
                .init(
                    times: 1, fault: .status(500, code: "InternalError"),
                    matches: { m, t in m == "PUT" && t.contains("partNumber=2&") }),
                .init(times: 1, fault: .lostResponse, matches: { m, t in m == "PUT" && t.contains("partNumber=3&") }),
            ])
        defer { proxy.stop() }
        let dir = try DeliveryStreamingTests.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = DeliveryStreamingTests.pattern(2 * Self.mib5 + 99, seed: 7)
        let counting = CountingReader(try DeliveryStreamingTests.scratchContent(bytes, in: dir))
        let key = p.location.key(p.collaborationID, "run-r", "part-00000.csv")
        #expect(
            try writer(p, via: proxy).put(key: key, size: bytes.count, sha256: SHA256.hash(bytes), read: counting.read)
                == .written)
        #expect(proxy.actions.contains { $0.contains("partNumber=2") && $0.contains("500") })
        #expect(proxy.actions.contains { $0.contains("partNumber=3") && $0.contains("response lost") })
        #expect(counting.count(0) == 1)
        #expect(counting.count(Self.mib5) == 2, "the part answered 500 was read again")
        #expect(counting.count(2 * Self.mib5) == 2, "the part whose answer was lost was read again")
        #expect(try S3Server.object(p.location.bucket, key: key) == bytes)
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
    }

    /// Bytes that do not hash to the expected SHA-256 are never committed: a small object is not
    /// put, a multipart upload is aborted; a retried part that reads differently is refused.
    @Test func bytesOtherThanExpectedAreNeverCommitted() throws {
        let p = try S3Server.provision()
        let small = DeliveryStreamingTests.pattern(1000)
        let smallKey = p.location.key(p.collaborationID, "run-x", "small.csv")
        #expect(throws: AWSError(.bodyChanged, "")) {
            try writer(p).put(key: smallKey, size: small.count, sha256: SHA256.hash([1])) { o, b in
                small.withUnsafeBytes { b.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[o..<(o + b.count)])) }
            }
        }
        let big = DeliveryStreamingTests.pattern(Self.mib5 + 10)
        let bigKey = p.location.key(p.collaborationID, "run-x", "big.csv")
        #expect(throws: AWSError(.bodyChanged, "")) {
            try writer(p).put(key: bigKey, size: big.count, sha256: SHA256.hash(small)) { o, b in
                big.withUnsafeBytes { b.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[o..<(o + b.count)])) }
            }
        }
        // The second read of part 2 (its retry after a 500) returns other bytes.
        let proxy = try FaultProxy(
            upstream: S3Server.endpoint!,
            rules: [
                .init(
                    times: 1, fault: .status(500, code: "InternalError"),
                    matches: { m, t in m == "PUT" && t.contains("partNumber=2&") })
            ])
        defer { proxy.stop() }
        let reads = CountingReader(ObjectContent(big))
        let flaky = p.location.key(p.collaborationID, "run-x", "flaky.csv")
        #expect(throws: AWSError(.bodyChanged, "")) {
            try writer(p, via: proxy).put(key: flaky, size: big.count) { o, b in
                try reads.read(o, b)
                if o == Self.mib5 && reads.count(o) > 1 { b[0] ^= 1 }
            }
        }
        #expect(try S3Server.keys(p.location.bucket, prefix: p.location.key(p.collaborationID, "run-x")).isEmpty)
        #expect(try S3Server.openUploads(p.location.bucket) == 0)
    }

    /// Ranged downloads of an empty object and of objects at and around one range.
    @Test(arguments: [0, 1, 1023, 1024, 1025, 5000])
    func rangedDownloadsReturnExactlyTheObject(_ size: Int) throws {
        let p = try S3Server.provision()
        let bytes = DeliveryStreamingTests.pattern(size, seed: UInt64(size) + 3)
        let key = p.location.key(p.collaborationID, "run-d", "o-\(size)")
        _ = try writer(p).put(key: key, bytes: bytes)
        #expect(try download(p, key, range: 1024) == bytes)
        // Through a pass-through proxy: one GET per range (an empty object: the range is refused
        // with 416, then one plain GET), so the object really came in pieces.
        let proxy = try FaultProxy(upstream: S3Server.endpoint!, rules: [])
        defer { proxy.stop() }
        let viaProxy = S3Reader(
            endpoints: AWSEndpoints(region: S3Server.region, s3: proxy.url, sts: S3Server.endpoint!),
            bucket: p.location.bucket,
            http: S3Server.http, credentials: StaticCredentials(S3Server.admin))
        var out: [UInt8] = []
        _ = try viaProxy.download(key: key, rangeSize: 1024, write: { out.append(contentsOf: $0) })
        #expect(out == bytes)
        let gets = proxy.actions.filter { $0.hasPrefix("GET") }.count
        #expect(gets == (size == 0 ? 2 : (size + 1023) / 1024), "\(proxy.actions)")
    }

    /// An S3 exchange with a scratch directory stages a streamed message's body in an unlinked
    /// scratch file and uploads header ‖ body ‖ signature from it (multipart above 16 MiB), once;
    /// reading it back downloads into a scratch file: the bytes round-trip exactly.
    @Test(arguments: [1000, 17 * 1024 * 1024 + 5])
    func s3ExchangeMessagesStreamThroughScratchFiles(_ bodySize: Int) throws {
        let bucket = "cr-exchange-\(S3Server.random())"
        try S3Server.createBucket(bucket)
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let scratch = "\(room.root)/state/scratch"
        let exchange = try Exchange(
            location: "s3://\(bucket)/exchange", environment: AWSEnvironment(S3Server.providerEnvironment),
            scratchDirectory: scratch)
        let run = AgreementTerms.newID()
        let header = DeliveryStreamingTests.pattern(120, seed: 11)
        let signature = DeliveryStreamingTests.pattern(64, seed: 12)
        let body = DeliveryStreamingTests.pattern(bodySize, seed: 13)
        func write() throws {
            let sink = try exchange.sink(room.agreement, run: run, .providerBlinded)
            try sink.begin(headerLength: header.count)
            var i = 0
            while i < body.count {
                let end = min(body.count, i + 123_457)
                try body[i..<end].withUnsafeBytes { try sink.append($0) }
                i = end
            }
            try sink.finish(header: header, signature: signature)
        }
        try write()
        let key = "exchange/\(room.collaboration)/\(run)/provider-blinded.crm"
        #expect(try S3Server.object(bucket, key: key) == header + body + signature)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "scratch files are unlinked at once")
        #expect(throws: AWSError(.alreadyExists, "")) { try write() }

        let source = try exchange.source(room.agreement, run: run, .providerBlinded)
        #expect(source is ScratchFileSource)
        var back = [UInt8](repeating: 0, count: source.size)
        try back.withUnsafeMutableBytes { try source.read(at: 0, into: $0) }
        #expect(back == header + body + signature)
    }

    /// A whole run on an S3 exchange whose staging directory is short of room (the shortfall
    /// injected at the edge, SPEC §12.7 "Free space"): the provider's respond stops with
    /// `workflow.disk_space` as the first range tells the object's size, its state kept; the coordinator's
    /// run likewise, with no audit entry, and then again by round 5's header check once the
    /// messages are downloaded; both then complete under the same run ID.
    @Test func s3DownloadThatDoesNotFitIsRefused() throws {
        let bucket = "cr-exchange-\(S3Server.random())"
        try S3Server.createBucket(bucket)
        let room = try PrivacyGuardsTests.Room(.init(minConsumerRows: 10, minMatchedRows: 5))
        let staging = room.store.scratchDirectory  // as the CLI stages a coordinator's downloads
        let exchange = try Exchange(
            location: "s3://\(bucket)/exchange", environment: AWSEnvironment(S3Server.providerEnvironment),
            scratchDirectory: staging)
        var short = exchange
        short.availableBytes = { _ in 100 }
        let run = AgreementTerms.newID()
        let providerState = StateStore(root: "\(room.root)/provider-state")
        let consumerState = StateStore(root: "\(room.root)/consumer-state")
        _ = try Steps.providerPrepare(
            agreement: room.agreement, identity: room.provider, input: "\(room.root)/audience.csv",
            columns: ColumnSpec([(.email, "email"), (.phone, "phone"), (.mobileAdID, "mobile_ad_id")]),
            audienceKeyColumn: "audience_id", runID: run, exchange: exchange, state: providerState, policy: .reject)
        _ = try Steps.consumerPrepare(
            agreement: room.agreement, signingKey: room.consumer.signingKey, input: "\(room.root)/customers.csv",
            columns: ColumnSpec([(.email, "email"), (.phone, "phone")]), filters: [], consent: ["ads_consent"],
            memberIDColumn: nil, segmentID: "seg", segmentName: "Segment", runID: run, exchange: exchange,
            state: consumerState, policy: .skipAndReport)
        func expectNoRoom(_ body: () throws -> Void) {
            do {
                try body()
                Issue.record("a download that does not fit was not refused")
            } catch let e as WorkflowError {
                #expect(e.code == .diskSpace)
                #expect(e.reason.contains("s3://\(bucket)/exchange/\(room.collaboration)/\(run)/"), "\(e.reason)")
                #expect(e.reason.contains(staging) && e.reason.contains("100 bytes available"), "\(e.reason)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        expectNoRoom {
            _ = try Steps.providerRespond(
                agreement: room.agreement, identity: room.provider, runID: run, exchange: short, state: providerState)
        }
        #expect(
            FileManager.default.fileExists(atPath: providerState.path(room.agreement, run: run, role: .provider)),
            "the state is kept")
        _ = try Steps.providerRespond(
            agreement: room.agreement, identity: room.provider, runID: run, exchange: exchange, state: providerState)
        _ = try Steps.consumerRespond(
            agreement: room.agreement, signingKey: room.consumer.signingKey, runID: run, exchange: exchange,
            state: consumerState)
        func match(_ ex: Exchange, available: Int?) throws -> Steps.MatchResult {
            let ledger = try AuditLedger(
                path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
            return try Steps.coordinatorMatch(
                agreement: room.agreement, identity: room.coordinator, runID: run, exchange: ex,
                destination: try Steps.destination(for: room.agreement), ledger: ledger, store: room.store,
                availableScratchBytes: { _ in available })
        }
        expectNoRoom { _ = try match(short, available: nil) }
        #expect(try room.entry(run) == nil, "a run refused for room is not recorded: its run ID stays usable")
        // Downloaded, but too little room left for the join (the header check, measured after the
        // downloads, which the match holds): refused the same way.
        do {
            _ = try match(exchange, available: 1_000)
            Issue.record("a join that does not fit was not refused")
        } catch let e as WorkflowError {
            #expect(e.code == .diskSpace)
            #expect(
                e.reason.contains(room.store.scratchDirectory) && e.reason.contains("1000 bytes available"),
                "\(e.reason)")
        }
        #expect(try room.entry(run) == nil)
        #expect(try match(exchange, available: nil).kind == .delivered)
        #expect(try room.entry(run)?.event.kind == .delivered)
        #expect(room.delivered(run))
    }

    /// The whole round 5 → round 6 path on S3: the coordinator's role delivers, the provider opens
    /// with its own keys through a scratch file; the CSV equals the in-memory open's. A corrupted
    /// object (the bucket owner replaced it, one byte flipped) is refused with no output file.
    @Test func openFromS3StreamsAndRefusesACorruptedObject() throws {
        let p = try S3Server.provision()
        let room = try PrivacyGuardsTests.Room(
            .init(minConsumerRows: 10, minMatchedRows: 5), collaborationID: p.collaborationID,
            externalID: p.externalID,
            destination: .init(
                kind: "s3", bucket: p.location.bucket, prefix: p.location.prefix,
                region: S3Server.region, roleARN: p.roleARN))
        let run = try room.prepare()
        let coordinatorSide = S3Destination(
            coordinator: StaticCredentials(p.coordinator), roleARN: p.roleARN, externalID: p.externalID,
            location: p.location, endpoints: S3Server.endpoints(), http: S3Server.http)
        let ledger = try AuditLedger(
            path: room.auditPath, signingKey: room.coordinator.signingKey, agreement: room.agreement)
        let m = try Steps.coordinatorMatch(
            agreement: room.agreement, identity: room.coordinator, runID: run, exchange: room.exchange,
            destination: coordinatorSide, ledger: ledger, store: room.store)
        #expect(m.kind == .delivered)

        let providerSide = S3Destination(
            provider: StaticCredentials(S3Server.admin), location: p.location, endpoints: S3Server.endpoints(),
            http: S3Server.http)
        let out = "\(room.root)/out/matched.csv"
        let n = try Steps.providerOpen(
            agreement: room.agreement, identity: room.provider, runID: run, source: providerSide, output: out)
        #expect(n == room.data.expectedAudienceKeys.count)
        let inMemory = try Provider(agreement: room.agreement, identity: room.provider)
            .open(try providerSide.read(collaborationID: room.collaboration, runID: run))
        #expect(try Files.read(out) == ReceivedDelivery.plainCSV(inMemory))
        #expect(try DeliveryStreamingTests.leftovers("\(room.root)/out").isEmpty, "the scratch directory is removed")

        // No room beside the output for the first object: refused before its first byte, from
        // the manifest's size, with nothing at the output path; the same open then succeeds.
        var short = providerSide
        short.availableBytes = { _ in 100 }
        let cramped = "\(room.root)/out3/matched.csv"
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: run, source: short, output: cramped)
        } throws: { error in
            let reason = "\(error)"
            return (error as? WorkflowError)?.code == .diskSpace && reason.contains("100 bytes available")
                && reason.contains(
                    "s3://\(p.location.bucket)/\(p.location.key(p.collaborationID, run, "part-00000.csv"))")
                && reason.contains("\(room.root)/out3/.matched.csv.scratch-") && reason.contains("--out")
        }
        #expect(!FileManager.default.fileExists(atPath: cramped), "nothing at the output path")
        #expect(try DeliveryStreamingTests.leftovers("\(room.root)/out3").isEmpty)
        #expect(
            try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: run, source: providerSide, output: cramped)
                == n)

        let key = p.location.key(p.collaborationID, run, "part-00000.csv")
        var bytes = try S3Server.object(p.location.bucket, key: key)
        bytes[7] ^= 0x01
        try S3Server.deleteObject(p.location.bucket, key: key)
        _ = try S3Writer(
            endpoints: S3Server.endpoints(), bucket: p.location.bucket, http: S3Server.http,
            credentials: StaticCredentials(S3Server.admin)
        ).put(key: key, bytes: bytes)
        let failed = "\(room.root)/out2/matched.csv"
        #expect {
            _ = try Steps.providerOpen(
                agreement: room.agreement, identity: room.provider, runID: run, source: providerSide, output: failed)
        } throws: {
            ($0 as? ActivationError)?.code == .deliveryInvalid
                && "\($0)".contains("part-00000.csv does not match its SHA-256")
        }
        #expect(!FileManager.default.fileExists(atPath: failed), "nothing at the output path")
        #expect(try DeliveryStreamingTests.leftovers("\(room.root)/out2").isEmpty)
    }
}
