import Foundation
import Testing
import Workflow

/// `Files.read` reads straight into one array (no `Data` copy), so a message file costs its size
/// once in memory (SPEC §9 "Bounded memory"); the bytes and the error codes stay as before.
@Suite("Files.read")
struct FilesReadTests {
    static let sizes = [0, 1, 4095, 4096, 4097, 1 << 20]

    @Test(arguments: sizes)
    func readsExactlyTheFile(_ size: Int) throws {
        let dir = NSTemporaryDirectory() + "cleanroom-read-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let path = dir + "/f.bin"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        #expect(try Files.read(path) == bytes)
    }

    @Test func missingFileIsNotFoundAndDirectoryIsIO() throws {
        let dir = NSTemporaryDirectory() + "cleanroom-read-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: WorkflowError(.notFound, "")) { try Files.read(dir + "/missing") }
        #expect(throws: WorkflowError(.io, "")) { try Files.read(dir) }
    }
}
