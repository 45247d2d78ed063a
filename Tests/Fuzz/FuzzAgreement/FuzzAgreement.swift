// libFuzzer harness: the agreement parser and verifier (Activation.SignedAgreement(json:) and
// verified(now:)) on arbitrary bytes.
//
// Each document that parses is verified as it is, then re-signed by whichever of the fixed
// collaboration's parties it names and verified again, so the fuzzer reaches every completeness,
// key, time, identifier-type, rule and limit check behind the signatures.
//
// Invariants checked on every input:
// - parsing ends in an agreement or `activation.agreement.malformed`, never a crash;
// - a parsed agreement written out and parsed again is the same agreement;
// - nothing verifies without re-signing unless its terms are exactly the terms the fixed parties
//   signed (any other outcome is a way to change signed terms and keep the signatures);
// - a verified agreement's hash is SHA-256 of its signed bytes, and its set-size bound is ≥ 1.
import Activation
import Foundation
import FuzzSupport
import RistrettoPSI

let signedTerms = FuzzCollaboration.terms.signedBytes()

func checkVerified(_ v: VerifiedAgreement, _ s: SignedAgreement) {
    invariant(v.terms == s.terms, "verification changed the terms")
    invariant(v.hash == SHA256.hash(s.terms.signedBytes()), "the agreement hash is not SHA-256 of the signed bytes")
    invariant(!v.identifierTypes.isEmpty, "verified with no identifier types")
    invariant((v.terms.matching.maxSetSize ?? 1) >= 1, "verified with a set-size bound below 1")
}

func fuzzOne(_ data: [UInt8]) {
    let parsed: SignedAgreement
    do { parsed = try SignedAgreement(json: Data(data)) } catch {
        invariant(error.code == .agreementMalformed, "a parse failure with code \(error.code.rawValue)")
        return
    }
    do {
        let again = try SignedAgreement(json: parsed.json())
        invariant(again == parsed, "an agreement changes when written and parsed again")
    } catch {
        invariant(false, "an agreement's own file form does not parse: \(error)")
    }
    if let v = try? parsed.verified(now: FuzzCollaboration.now) {
        invariant(parsed.terms.signedBytes() == signedTerms, "changed terms verified under the original signatures")
        checkVerified(v, parsed)
    }
    var resigned = parsed
    if resigned.terms.consumer.signingKey == FuzzCollaboration.consumer.signingKey.verifyingKey.hex {
        try? resigned.sign(as: .consumer, with: FuzzCollaboration.consumer.signingKey)
    }
    if resigned.terms.provider?.signingKey == FuzzCollaboration.provider.signingKey.verifyingKey.hex {
        try? resigned.sign(as: .provider, with: FuzzCollaboration.provider.signingKey)
    }
    if let v = try? resigned.verified(now: FuzzCollaboration.now) { checkVerified(v, resigned) }
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
/// `FuzzAgreement --write-seeds <dir>` writes the seed corpus: the fixed agreement signed by both,
/// by the consumer only, by neither, and an expired copy (unsigned: the harness signs it);
/// otherwise replays the inputs named.
@main enum Replay {
    static func main() {
        let args = CommandLine.arguments
        if args.count == 3, args[1] == "--write-seeds" {
            let full = FuzzCollaboration.signed
            var half = full
            half.signatures.provider = nil
            var none = full
            none.signatures = .init()
            var expired = none
            expired.terms.expiresAt = "2025-12-31T23:59:59Z"
            for (name, doc) in [
                ("signed.json", full), ("consumer-signed-only.json", half), ("unsigned.json", none),
                ("expired-unsigned.json", expired),
            ] {
                _ = FileManager.default.createFile(atPath: "\(args[2])/\(name)", contents: doc.json())
            }
            print("FuzzAgreement: wrote 4 seed agreements to \(args[2])")
            exit(0)
        }
        replayMain("FuzzAgreement", fuzzOne)
    }
}
#endif
