// libFuzzer harness: the strict ristretto255 element decoders (RistrettoPSI.RistrettoElement and
// ElementBatch, RFC 9496 §4.3.1 with the identity rejected) on arbitrary bytes.
//
// Invariants checked on every input:
// - a decoded element re-encodes to exactly the input bytes, and through hex too;
// - (P·s)·s⁻¹ = P for a fixed scalar s, and P·s decodes strictly again;
// - the batch decoder agrees with the single decoder record by record: it fails exactly when some
//   32-byte record fails, names the first such record's index and the same rule, and otherwise
//   holds the input bytes in order.
import FuzzSupport
import RistrettoPSI

/// A fixed scalar (7) and its inverse, so a crash input replays identically.
let scalar: Scalar = {
    var bytes = [UInt8](repeating: 0, count: Scalar.byteCount)
    bytes[0] = 7
    return try! Scalar(consumingCanonicalBytes: &bytes)
}()
let inverse = try! scalar.inverted()

func single(_ bytes: [UInt8]) -> Result<RistrettoElement, CryptoError> {
    do throws(CryptoError) { return .success(try RistrettoElement(validating: bytes)) } catch { return .failure(error) }
}

func fuzzOne(_ data: [UInt8]) {
    let size = RistrettoElement.byteCount
    if data.count == size, case .success(let element) = single(data) {
        invariant(element.bytes == data, "a decoded element re-encodes to other bytes")
        invariant((try? RistrettoElement(hex: element.hex)) == element, "hex round trip changed the element")
        do {
            let blinded = try element.multiplied(by: scalar)
            let decoded = try RistrettoElement(validating: blinded.bytes)
            invariant(decoded == blinded, "P·s does not decode strictly")
            let unblinded = try blinded.multiplied(by: inverse)
            invariant(unblinded == element, "(P·s)·s⁻¹ ≠ P")
        } catch {
            invariant(false, "scalar multiplication of a valid element failed: \(error)")
        }
    }

    let batch: Result<ElementBatch, CryptoError>
    do throws(CryptoError) { batch = .success(try ElementBatch(validating: data)) } catch { batch = .failure(error) }
    guard data.count % size == 0 else {
        guard case .failure(let error) = batch, error.code == .invalidLength else {
            invariant(false, "a batch of \(data.count) bytes was not refused for its length")
            return
        }
        return
    }
    var firstBad: (Int, CryptoError)?
    for i in 0..<(data.count / size) {
        if case .failure(let error) = single(Array(data[i * size..<(i + 1) * size])) {
            firstBad = (i, error)
            break
        }
    }
    switch (batch, firstBad) {
    case (.success(let b), nil):
        invariant(b.count == data.count / size, "batch holds \(b.count) elements for \(data.count) bytes")
        for i in 0..<b.count {
            invariant(b[i].bytes == Array(data[i * size..<(i + 1) * size]), "batch element \(i) changed")
        }
    case (.failure(let error), (let index, let expected)?):
        invariant(
            error.index == index,
            "batch names element \(error.index.map(String.init) ?? "none"), first invalid is \(index)")
        invariant(error.code == expected.code, "batch and single decoders name different rules")
    case (.success, (let index, _)?):
        invariant(false, "batch accepted invalid element \(index)")
    case (.failure(let error), nil):
        invariant(false, "batch refused valid elements: \(error)")
    }
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
@main enum Replay { static func main() { replayMain("FuzzElement", fuzzOne) } }
#endif
