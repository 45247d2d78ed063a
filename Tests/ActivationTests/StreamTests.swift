import Foundation
import RistrettoPSI
import Testing

@testable import Activation

/// The streamed message writer and reader (SPEC §9 "Bounded memory") against the in-memory
/// `SignedMessage`: same bytes, same checks.
@Suite("Streamed messages")
struct StreamTests {
    static let run = try! NegativeTests.Prepared()

    @Test("the streamed writer produces the in-memory message's bytes", arguments: [1, 7, 1000])
    func writerMatchesSignedMessage(chunk: Int) throws {
        let a = Self.run
        let m = a.p.forCoordinator.message
        let sink = BytesSink()
        var w = try MessageWriter(
            kind: m.kind, agreement: a.agreement, runUUID: m.runUUID, count: m.count, recordSize: m.recordSize,
            reference: m.reference, sealingKey: try SealingPublicKey(bytes: m.sealingKey),
            metadata: m.metadata, signer: a.f.providerID.signingKey, sink: sink)
        var i = 0
        while i < m.count {
            let n = min(chunk, m.count - i)
            try w.append(Array(m.body[(i * m.recordSize)..<((i + n) * m.recordSize)]))
            i += n
        }
        let hash = try w.finish()
        #expect(hash == m.bodyHash)
        #expect(sink.bytes == m.serialized())
    }

    @Test(
        "the streamed reader returns every record and accepts the signed body, pass after pass",
        arguments: [1, 64, 100_000])
    func readerReadsAllRecords(chunk: Int) throws {
        let a = Self.run
        let m = a.p.forConsumer.message
        var r = try MessageReader(
            BytesSource(m.serialized()), expecting: .providerBlinded, agreement: a.agreement, run: m.runUUID, name: "m1"
        )
        #expect(r.count == m.count && r.recordSize == 32)
        for _ in 0..<2 {
            var all = [UInt8]()
            var buf = [UInt8]()
            while try r.next(chunk, into: &buf) > 0 { all += buf }
            try r.endPass()
            #expect(all == m.body)
        }
    }

    @Test("a changed body byte is caught at the end of the pass, before anything is committed")
    func readerCatchesBodyChange() throws {
        let a = Self.run
        var bytes = a.p.forConsumer.message.serialized()
        let headerLength = bytes.count - a.p.forConsumer.message.body.count - 64
        bytes[headerLength + 40] ^= 1
        var r = try MessageReader(BytesSource(bytes), expecting: .providerBlinded, agreement: a.agreement, name: "m1")
        var buf = [UInt8]()
        while try r.next(50, into: &buf) > 0 {}
        #expect(throws: ActivationError(.messageChecksumMismatch, "")) { try r.endPass() }
    }

    @Test(
        "the header and the signature are checked before any record is read",
        arguments: BadMessageTests.flips.filter { $0.code != .messageChecksumMismatch })
    func readerRefusesBadHeaders(_ flip: BadMessageTests.Flip) throws {
        let a = Self.run
        var bytes = a.p.forConsumer.message.serialized()
        bytes[flip.offset >= 0 ? flip.offset : bytes.count + flip.offset] ^= 1
        #expect(throws: ActivationError(flip.code, "")) {
            _ = try MessageReader(
                BytesSource(bytes), expecting: .providerBlinded, agreement: a.agreement, run: a.p.state.runUUID,
                name: "m1")
        }
    }
}
