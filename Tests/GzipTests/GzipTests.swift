import Foundation
import Testing
import Gzip

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

    @Test func refusesCorruptTruncatedTrailingAndOversized() throws {
        let z = try Gzip.compress(Array(repeating: 65, count: 100_000))
        #expect(throws: Gzip.Error(code: .tooLarge, reason: "")) { try Gzip.decompress(z, limit: 1000) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(Array(z.dropLast(10)), limit: 1 << 20) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(z + [0], limit: 1 << 20) }
        var flipped = z
        flipped[flipped.count - 3] ^= 0xff // inside the CRC32/ISIZE trailer
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(flipped, limit: 1 << 20) }
        #expect(throws: Gzip.Error(code: .corrupt, reason: "")) { try Gzip.decompress(Array("not gzip".utf8), limit: 1 << 20) }
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
