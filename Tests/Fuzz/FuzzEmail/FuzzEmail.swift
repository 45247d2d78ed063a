// libFuzzer harness: the email normalizer (Identifiers.Normalizer) on arbitrary bytes.
// The first byte picks the rules, the rest is the value; invariants in FuzzSupport/NormalizerHarness.swift.
import FuzzSupport
import Identifiers

func fuzzOne(_ data: [UInt8]) { fuzzNormalizer(data, as: .email) }

#if CLEANROOM_FUZZING
/// libFuzzer's entry point: runs one input through `fuzzOne`; always returns 0 (a broken invariant
/// stops the process instead).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(fuzzInput(data, size))
    return 0
}
#else
@main enum Replay { static func main() { replayMain("FuzzEmail", fuzzOne) } }
#endif
