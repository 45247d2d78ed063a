import Foundation
import RistrettoPSI
import Testing

/// Known-answer vectors from `Protocol/vectors/rfc-ristretto255-h2g-oprf.json` (each block keeps
/// its RFC and upstream source). Loaded relative to this file so `swift test` needs no resources.
enum Vectors {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let file: VectorFile = {
        let url = packageRoot.appendingPathComponent("Protocol/vectors/rfc-ristretto255-h2g-oprf.json")
        do {
            return try JSONDecoder().decode(VectorFile.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load \(url.path): \(error)")
        }
    }()

    static func bytes(_ hex: String) -> [UInt8] {
        guard let b = Hex.decode(hex) else { fatalError("bad hex in vector file") }
        return b
    }
}

struct VectorFile: Decodable {
    struct ExpandBlock: Decodable {
        struct Test: Decodable, CustomTestStringConvertible, Sendable {
            let msg_ascii: String
            let msg: String
            let len_in_bytes: Int
            let DST_prime: String
            let msg_prime: String
            let uniform_bytes: String
            var testDescription: String { "msg=\"\(msg_ascii.prefix(16))…\" len=\(len_in_bytes)" }
        }
        let DST: String
        let tests: [Test]
    }
    struct Multiple: Decodable, Sendable, CustomTestStringConvertible {
        let k: Int
        let encoding: String
        var testDescription: String { "\(k)·B" }
    }
    struct Invalid: Decodable, Sendable, CustomTestStringConvertible {
        let category: String
        let encoding: String
        var testDescription: String { "\(category): \(encoding.prefix(12))…" }
    }
    struct MapVector: Decodable, Sendable, CustomTestStringConvertible {
        let input: String
        let output: String
        var testDescription: String { "map(\(input.prefix(12))…)" }
    }
    struct Equivalent: Decodable, Sendable {
        let inputs: [String]
        let output: String
    }
    struct H2G: Decodable, Sendable, CustomTestStringConvertible {
        let mode_byte: Int
        let DST: String
        let msg: String
        let output: String
        var testDescription: String { "mode \(mode_byte) msg=\(msg.prefix(12))" }
    }
    struct OPRFMode: Decodable, Sendable {
        struct Vector: Decodable, Sendable {
            let title: String
            let Input: HexList
            let Blind: HexList
            let BlindedElement: HexList
            let EvaluationElement: HexList
            let Output: HexList
        }
        let mode: String
        let mode_byte: Int
        let HashToGroup_DST: String
        let skSm: String
        let vectors: [Vector]
    }
    struct Block<V: Decodable & Sendable>: Decodable, Sendable { let vectors: [V] }
    struct MapBlock: Decodable {
        let vectors: [MapVector]
        let equivalent_inputs: Equivalent
    }
    struct OPRFBlock: Decodable { let modes: [OPRFMode] }

    let expand_message_xmd_sha512: ExpandBlock
    let ristretto255_generator_multiples: Block<Multiple>
    let ristretto255_invalid_encodings: Block<Invalid>
    let ristretto255_one_way_map: MapBlock
    let hash_to_ristretto255_rfc9497_inputs: Block<H2G>
    let oprf_ristretto255_sha512: OPRFBlock
}

/// One RFC 9497 OPRF evaluation (batched vectors are split into their items).
struct OPRFCase: Sendable, CustomTestStringConvertible {
    let mode: String
    let hashToGroupDST: String
    let skSm: String
    let title: String
    let input: String
    let blind: String
    let blindedElement: String
    let evaluationElement: String
    let output: String
    var testDescription: String { "\(mode) \(title) [\(input.prefix(10))]" }

    /// RFC 9497 mode 0 (OPRF) and mode 1 (VOPRF) share Blind, Evaluate and Finalize (the VOPRF
    /// proof is not part of this protocol); POPRF's tweaked key is out of scope.
    static let all: [OPRFCase] = Vectors.file.oprf_ristretto255_sha512.modes
        .filter { $0.mode_byte == 0 || $0.mode_byte == 1 }
        .flatMap { mode in
            mode.vectors.flatMap { v -> [OPRFCase] in
                v.Input.items.indices.map { i in
                    OPRFCase(
                        mode: mode.mode, hashToGroupDST: mode.HashToGroup_DST, skSm: mode.skSm, title: v.title,
                        input: v.Input.items[i], blind: v.Blind.items[i], blindedElement: v.BlindedElement.items[i],
                        evaluationElement: v.EvaluationElement.items[i], output: v.Output.items[i])
                }
            }
        }
}

/// A vector field that is one hex string, or a list of them for batched vectors.
struct HexList: Decodable, Sendable {
    let items: [String]
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) { items = [one] } else { items = try c.decode([String].self) }
    }
}
