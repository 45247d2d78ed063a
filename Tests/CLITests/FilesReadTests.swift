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

/// A write cleans up the temporaries that killed writers to the same file left behind, and only
/// those: a live writer's, another host's, and other files' temporaries stay.
@Suite("Stale temporaries")
struct StaleTemporaryTests {
    /// The PID of a process that has exited (and been reaped).
    static func deadPID() throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        return p.processIdentifier
    }

    @Test(arguments: ["writeAtomically", "FileMessageSink"])
    func killedWritersTemporariesAreRemoved(_ writer: String) throws {
        let dir = NSTemporaryDirectory() + "cleanroom-stale-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = dir + "/m.crm"
        // The host tag as the writer computes it: read it off a temporary name it would use.
        let sample = (try #require(Self.temporaryName(target)) as NSString).lastPathComponent
        let tag = sample.dropFirst(".m.crm.tmp-".count).prefix { $0 != "-" }
        let dead = try Self.deadPID()
        let stale = ".m.crm.tmp-\(tag)-\(dead)-aaaaaaaa"
        let live = ".m.crm.tmp-\(tag)-\(getpid())-bbbbbbbb"
        let otherHost = ".m.crm.tmp-00000000-\(dead)-cccccccc"
        let otherFile = ".n.crm.tmp-\(tag)-\(dead)-dddddddd"
        for n in [stale, live, otherHost, otherFile] {
            #expect(FileManager.default.createFile(atPath: "\(dir)/\(n)", contents: Data([1, 2, 3])))
        }
        #expect(sample.hasPrefix(".m.crm.tmp-\(tag)-\(getpid())-"))
        if writer == "writeAtomically" {
            try Files.writeAtomically([9, 9], to: target, exclusive: true)
        } else {
            let sink = try FileMessageSink(path: target)
            try sink.begin(headerLength: 1)
            try sink.finish(header: [7], signature: [8])
        }
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        #expect(left == Set(["m.crm", live, otherHost, otherFile]), "\(left)")
    }

    static func temporaryName(_ target: String) -> String? {
        // A FileMessageSink abandoned at once shows the name format without writing anything.
        guard let sink = try? FileMessageSink(path: target) else { return nil }
        defer { sink.abandon() }
        return Mirror(reflecting: sink).children.first { $0.label == "tmp" }?.value as? String
    }
}
