// libFuzzer harness: the round-message parser (Activation.SignedMessage through the five typed
// parsers) and, for messages that parse, the role step that consumes them.
//
// Each input is tried twice: as it is (so the layout, version, kind, collaboration and agreement
// checks see hostile headers), and "repaired": the collaboration ID and agreement hash set to the
// fixed collaboration's, the body hash recomputed and the header re-signed by the sender of its
// kind. The repaired copy carries the fuzzer past the signature into the count, record size,
// set size, metadata, element decoding, duplicate and matching checks.
//
// Invariants checked on every parsed message:
// - re-serializing it gives exactly the input bytes; its kind is the one expected;
// - count × record size = body size; count ≤ the agreement's maxSetSize;
// - the role step that consumes it (consumer or provider respond, coordinator match against the
//   honest run's other messages) ends in a result or an ActivationError, never a crash; a
//   re-blinded set keeps its size; match counts never exceed the set sizes.
import Activation
import FuzzSupport
import RistrettoPSI

let world = FuzzCollaboration.self
let agreement = FuzzCollaboration.agreement
let run = FuzzCollaboration.run
let providerRole = try! Provider(agreement: agreement, identity: FuzzCollaboration.provider)
let consumerRole = try! Consumer(agreement: agreement, signingKey: FuzzCollaboration.consumer.signingKey)
let coordinatorRole = try! Coordinator(agreement: agreement, identity: FuzzCollaboration.coordinator)

/// Byte offsets of the header fields (Protocol/SPEC.md §7).
enum Offset {
    static let kind = 6, collaboration = 8, agreementHash = 40, bodyHash = 84, metadataLength = 180, fixedHeader = 184
    static let signature = 64
}
let signaturePrefix = Array("CLEANROOM-V01-MSG".utf8)

/// The party that signs each kind (Protocol/SPEC.md §6).
func signer(of kind: MessageKind) -> SigningKey {
    switch kind {
    case .providerBlinded, .providerPayload, .consumerReblinded: return FuzzCollaboration.provider.signingKey
    case .consumerBlinded, .providerReblinded: return FuzzCollaboration.consumer.signingKey
    }
}

func repaired(_ data: [UInt8]) -> [UInt8]? {
    guard data.count >= Offset.fixedHeader + Offset.signature, let kind = MessageKind(rawValue: data[Offset.kind])
    else { return nil }
    let metaLen = data[Offset.metadataLength..<Offset.metadataLength + 4].reduce(0) { $0 << 8 | Int($1) }
    let headerEnd = Offset.fixedHeader + metaLen
    guard metaLen <= 64 * 1024, headerEnd + Offset.signature <= data.count else { return nil }
    var d = data
    d.replaceSubrange(Offset.collaboration..<Offset.collaboration + 16, with: agreement.collaborationUUID)
    d.replaceSubrange(Offset.agreementHash..<Offset.agreementHash + 32, with: agreement.hash)
    d.replaceSubrange(
        Offset.bodyHash..<Offset.bodyHash + 32, with: SHA256.hash(d[headerEnd..<(d.count - Offset.signature)]))
    let signature = signer(of: kind).signature(for: signaturePrefix + d[0..<headerEnd])
    d.replaceSubrange((d.count - Offset.signature)..., with: signature)
    return d
}

func checkParsed(_ m: SignedMessage, _ data: [UInt8], _ kind: MessageKind) {
    invariant(m.serialized() == data, "re-serializing a parsed message changes its bytes")
    invariant(m.kind == kind, "parsed a '\(m.kind)' message while expecting '\(kind)'")
    invariant(m.count * m.recordSize == m.body.count, "count × record size ≠ body size")
    invariant(m.count <= FuzzCollaboration.maxSetSize, "a set above the agreed maximum was accepted")
}

func checkMatch(payload: ProviderPayload, consumerSet: ConsumerReblindedSet, providerSet: ProviderReblindedSet) {
    do {
        let outcome = try coordinatorRole.match(
            runID: FuzzCollaboration.runID, payload: payload, consumerSet: consumerSet,
            providerSet: providerSet, history: RunHistory(), now: FuzzCollaboration.now)
        let counts: MatchCounts
        switch outcome {
        case .deliver(_, let c): counts = c
        case .belowThreshold(let c): counts = c
        }
        invariant(counts.matchedElements <= counts.providerElements, "more matched elements than provider elements")
        invariant(counts.matchedRows <= counts.matchedElements, "more matched rows than matched elements")
        invariant(counts.consumerIdentifiers == consumerSet.message.count, "consumer identifiers miscounted")
    } catch {}
}

func check(_ data: [UInt8], expecting kind: MessageKind) {
    let source = "fuzz.crm"
    do {
        switch kind {
        case .providerBlinded:
            let set = try ProviderBlindedSet(parsing: data, agreement: agreement, source: source)
            checkParsed(set.message, data, kind)
            if let out = try? consumerRole.respond(to: set, state: run.consumerPrepared.state) {
                invariant(out.message.count == set.message.count, "re-blinding changed the set size")
            }
        case .consumerBlinded:
            let set = try ConsumerBlindedSet(parsing: data, agreement: agreement, source: source)
            checkParsed(set.message, data, kind)
            if let out = try? providerRole.respond(to: set, state: run.providerPrepared.state, permutation: nil) {
                invariant(out.message.count == set.message.count, "re-blinding changed the set size")
            }
        case .providerPayload:
            let payload = try ProviderPayload(parsing: data, agreement: agreement, source: source)
            checkParsed(payload.message, data, kind)
            checkMatch(payload: payload, consumerSet: run.consumerReblinded, providerSet: run.providerReblinded)
        case .consumerReblinded:
            let set = try ConsumerReblindedSet(parsing: data, agreement: agreement, source: source)
            checkParsed(set.message, data, kind)
            checkMatch(
                payload: run.providerPrepared.forCoordinator, consumerSet: set, providerSet: run.providerReblinded)
        case .providerReblinded:
            let set = try ProviderReblindedSet(parsing: data, agreement: agreement, source: source)
            checkParsed(set.message, data, kind)
            checkMatch(
                payload: run.providerPrepared.forCoordinator, consumerSet: run.consumerReblinded, providerSet: set)
        }
    } catch {
        invariant(error.reason.hasPrefix(source), "a parse error does not name the file: \(error)")
    }
}

func fuzzOne(_ data: [UInt8]) {
    let kind =
        data.count > Offset.kind ? MessageKind(rawValue: data[Offset.kind]) ?? .providerBlinded : .providerBlinded
    check(data, expecting: kind)
    if kind != .providerBlinded { check(data, expecting: .providerBlinded) }  // the wrong-kind path
    if let fixed = repaired(data), fixed != data { check(fixed, expecting: kind) }
}

#if CLEANROOM_FUZZING
/// libFuzzer's entry point: runs one input through `fuzzOne`; always returns 0 (a broken invariant
/// stops the process instead).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(fuzzInput(data, size))
    return 0
}
#else
import Foundation

/// `FuzzMessage --write-seeds <dir>` writes the honest run's five messages (the seed corpus);
/// otherwise replays the inputs named.
@main enum Replay {
    static func main() {
        let args = CommandLine.arguments
        if args.count == 3, args[1] == "--write-seeds" {
            for file in run.files {
                _ = FileManager.default.createFile(atPath: "\(args[2])/\(file.name)", contents: Data(file.bytes))
            }
            print("FuzzMessage: wrote \(run.files.count) seed messages to \(args[2])")
            exit(0)
        }
        replayMain("FuzzMessage", fuzzOne)
    }
}
#endif
