import Foundation
import Gzip
import Testing

@Suite("gzip")
struct GzipTests {
    @Test func roundTripAndDeterminism() throws {
        let text = Array(String(repeating: "aud_0123,loyalty,Gold members\n", count: 5000).utf8)
        let z = try Gzip.compress(text)
        #expect(z.count < text.count / 10)
        #expect(z[0] == 0x1f && z[1] == 0x8b, "gzip magic")
        #expect(try Gzip.compress(text) == z, "deterministic output")
        #expect(try Gzip.decompress(z, limit: text.count) == text)
        #expect(try Gzip.decompress(try Gzip.compress([]), limit: 0) == [])
    }

    /// The streaming compressor's output equals the one-shot output however the input is split,
    /// on compressible text and on incompressible bytes (more output than one internal buffer).
    @Test("streamed compression equals one-shot compression", arguments: [1, 7, 4096, 65_536, 1 << 20])
    func streamedEqualsOneShot(_ piece: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let text = Array((0..<20_000).map { "aud_\($0),loyalty,Gold members\n" }.joined().utf8)
        let noise = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for input in [text, noise, []] {
            let c = try Gzip.Compressor()
            var out: [UInt8] = []
            var i = 0
            while i < input.count {
                let n = min(piece, input.count - i)
                out += try c.compress(Array(input[i..<(i + n)]))
                i += n
            }
            out += try c.finish()
            #expect(out == (try Gzip.compress(input)))
            #expect(try Gzip.decompress(out, limit: input.count) == input)
        }
    }

    @Test func refusesCorruptTruncatedTrailingAndOversized() throws {
        let z = try Gzip.compress(Array(repeating: 65, count: 100_000))
        #expect(throws: Gzip.Error(code: .tooLarge, reason: "")) { try Gzip.decompress(z, limit: 1000) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) {
            try Gzip.decompress(Array(z.dropLast(10)), limit: 1 << 20)
        }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(z + [0], limit: 1 << 20) }
        var flipped = z
        flipped[flipped.count - 3] ^= 0xff  // inside the CRC32/ISIZE trailer
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(flipped, limit: 1 << 20) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) {
            try Gzip.decompress(Array("not gzip".utf8), limit: 1 << 20)
        }
    }

    /// Feeds `z` to an inflater in pieces of `piece` bytes and gathers the output.
    static func inflate(_ z: [UInt8], limit: Int, piece: Int) throws -> [UInt8] {
        let inflater = try Gzip.Inflater(limit: limit)
        var out: [UInt8] = []
        var i = 0
        while i < z.count {
            let end = min(z.count, i + piece)
            try z[i..<end].withUnsafeBytes { try inflater.feed($0) { out.append(contentsOf: $0) } }
            i = end
        }
        try inflater.finish()
        return out
    }

    /// The streamed inflater gives the same bytes however the input is cut, and its output
    /// pieces never exceed 64 KiB (what a streamed open holds).
    @Test(arguments: [1, 7, 4096, 65_536, 1 << 20])
    func inflaterMatchesDecompressInAnyPieces(_ piece: Int) throws {
        var text: [UInt8] = []
        for i in 0..<40_000 { text += Array("aud_\(i),loyalty,Gold members \(i % 97)\n".utf8) }
        let z = try Gzip.compress(text)
        #expect(try Self.inflate(z, limit: text.count, piece: piece) == text)
        let inflater = try Gzip.Inflater(limit: text.count)
        var largest = 0
        try z.withUnsafeBytes { try inflater.feed($0) { largest = max(largest, $0.count) } }
        try inflater.finish()
        #expect(largest <= 1 << 16)
        #expect(inflater.outputCount == text.count)
    }

    /// The bound, truncation and trailing bytes are refused when streamed as when whole; the
    /// bound is checked before a piece crossing it is handed on.
    @Test(arguments: [1, 1000, 1 << 20])
    func inflaterRefusesLikeDecompress(_ piece: Int) throws {
        let z = try Gzip.compress(Array(repeating: 65, count: 100_000))
        #expect(throws: Gzip.Error(code: .tooLarge, reason: "")) { try Self.inflate(z, limit: 1000, piece: piece) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) {
            try Self.inflate(Array(z.dropLast(10)), limit: 1 << 20, piece: piece)
        }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) {
            try Self.inflate(z + [0], limit: 1 << 20, piece: piece)
        }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Self.inflate([], limit: 1 << 20, piece: piece) }
        var flipped = z
        flipped[flipped.count - 3] ^= 0xff
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) {
            try Self.inflate(flipped, limit: 1 << 20, piece: piece)
        }
        let bomb = try Gzip.Inflater(limit: 1000)
        var handedOn = 0
        #expect(throws: Gzip.Error(code: .tooLarge, reason: "")) {
            try z.withUnsafeBytes { try bomb.feed($0) { handedOn += $0.count } }
        }
        #expect(handedOn <= 1000, "no byte past the bound reaches the reader")
    }

    /// Interoperates with the system's gzip tool when it is installed.
    @Test func readableByGunzip() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/gzip") else { return }
        let text = Array("member,segment\nM1,gold\n".utf8)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("x.csv.gz")
        try Data(try Gzip.compress(text)).write(to: f)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-t", f.path]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
    }
}
