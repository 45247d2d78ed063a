import Activation
import Foundation
import RistrettoPSI

#if canImport(Glibc)
import Glibc
#endif

// File-backed implementations of the rounds' streaming seams (Activation's `ByteSource`,
// `MessageSink`, `ScratchSpace`): what lets a step read, write and spill a large set without
// holding it. - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".

/// A file opened for reading, read with `pread` (the descriptor stays open, so a file replaced
/// under the same name mid-step is not followed; a file changed in place is caught by the
/// reader's per-pass checksum).
public final class FileSource: ByteSource, @unchecked Sendable {
    let fd: Int32
    /// The path the file was opened at (named in errors).
    public let path: String
    /// The file's size when it was opened.
    public let size: Int

    /// Opens `path` for reading.
    /// - Throws: `workflow.not_found` when it does not exist; `workflow.io` when it cannot be opened
    ///   or is not a regular file.
    public init(path: String) throws(WorkflowError) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw WorkflowError(.notFound, "\(path): no such file") }
            throw WorkflowError(.io, "\(path): cannot be read")
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(fd)
            throw WorkflowError(.io, "\(path): not a regular file")
        }
        self.fd = fd
        self.path = path
        self.size = Int(st.st_size)
    }

    deinit { Glibc.close(fd) }

    /// Fills the whole `buffer` from `offset`.
    /// - Throws: `workflow.io` when a read fails or the file ends first (it shrank).
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        try Self.preadAll(fd, buffer, at: offset, failure: "\(path): read failed or the file shrank while being read")
    }

    /// Fills `buffer` from `offset` (retrying short reads and EINTR); `failure` names the file.
    static func preadAll(
        _ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int, failure: @autoclosure () -> String
    ) throws(WorkflowError) {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw WorkflowError(.io, failure()) }
            done += n
        }
    }
}

/// A message streamed to a hidden temporary file beside `path`: the header's place is reserved,
/// the body appended through a buffer, then the header written at offset 0 (`pwrite`), the
/// signature appended, the file fsynced and linked to `path` only if nothing is there (so no
/// partial message is ever visible under its name, and a message is written once).
public final class FileMessageSink: MessageSink, @unchecked Sendable {
    /// The message's final name: nothing is there until ``finish(header:signature:)`` links it.
    public let path: String
    let tmp: String
    let mode: mode_t
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var offset = 0
    private var finished = false
    static let bufferSize = 1 << 20

    /// Creates the hidden temporary file beside `path`, with `mode` from creation (first removing
    /// the temporaries that dead writers to `path` left on this host).
    /// - Throws: `workflow.already_exists` when `path` exists; `workflow.io` when the file cannot be
    ///   created.
    public init(path: String, mode: mode_t = 0o644) throws(WorkflowError) {
        self.path = path
        self.mode = mode
        let dir = (path as NSString).deletingLastPathComponent
        try Files.makeDirectory(dir.isEmpty ? "." : dir)
        if FileManager.default.fileExists(atPath: path) {
            throw WorkflowError(.alreadyExists, "\(path) already exists; refusing to overwrite it")
        }
        tmp = Files.temporaryName(for: path)
        fd = Glibc.open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WorkflowError(.io, "\(path): cannot create (\(String(cString: strerror(errno))))") }
        buffer.reserveCapacity(Self.bufferSize)
    }

    deinit { if !finished { abandon() } }

    /// Leaves the first `headerLength` bytes for the header; the body is written after them.
    public func begin(headerLength: Int) throws {
        offset = headerLength
    }

    /// Appends body bytes through a 1 MiB buffer (a piece of at least 1 MiB is written directly).
    /// - Throws: `workflow.io` when a write fails.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAt(bytes)
            return
        }
        buffer.append(contentsOf: bytes)
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAt($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAt(_ bytes: UnsafeRawBufferPointer) throws {
        try Self.pwriteAll(fd, bytes, at: offset, path: path)
        offset += bytes.count
    }

    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String)
        throws(WorkflowError)
    {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw WorkflowError(
                    .io, "\(path): write failed (\(String(cString: strerror(errno)))); nothing was written")
            }
            done += n
        }
    }

    /// Writes the rest of the body, the signature after it and the header at offset 0, fsyncs, links
    /// the file to `path` only if nothing is there, then syncs the directory.
    /// - Throws: `workflow.already_exists` when `path` exists by then; `workflow.io` when a write,
    ///   the sync or the link fails. On any error the temporary file is removed.
    public func finish(header: [UInt8], signature: [UInt8]) throws {
        do {
            try flush()
            try signature.withUnsafeBytes { try writeAt($0) }
            try header.withUnsafeBytes { try Self.pwriteAll(fd, $0, at: 0, path: path) }
            guard fsync(fd) == 0 else {
                throw WorkflowError(
                    .io, "\(path): write failed (\(String(cString: strerror(errno)))); nothing was written")
            }
            Glibc.close(fd)
            fd = -1
            // link(2) fails if the target exists, so two writers cannot both win.
            guard link(tmp, path) == 0 else {
                let e = errno
                throw WorkflowError(
                    e == EEXIST ? .alreadyExists : .io,
                    "\(path): \(e == EEXIST ? "already exists; refusing to overwrite it" : String(cString: strerror(e)))"
                )
            }
        } catch {
            abandon()
            throw error
        }
        unlink(tmp)
        finished = true
        let dir = (path as NSString).deletingLastPathComponent
        Files.syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Closes and removes the temporary file, so nothing appears at `path` (also on deinit without
    /// a finish).
    public func abandon() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        unlink(tmp)
        buffer = []
        finished = true
    }
}

/// Scratch files in a private directory (mode 0700): each file is created mode 0600 and unlinked
/// at once, so it is never visible to another process and disappears with its descriptor, even
/// if the step is killed.
public final class DirectoryScratch: ScratchSpace, @unchecked Sendable {
    /// The private directory the files are created in.
    public let directory: String

    /// Scratch in `directory`, created (with its parents) mode 0700 if missing.
    /// - Throws: `workflow.io` when it cannot be created.
    public init(directory: String) throws(WorkflowError) {
        try Files.makeDirectory(directory, mode: 0o700)
        self.directory = directory
    }

    /// A new scratch file, created mode 0600 and unlinked at once: only its descriptor reaches it.
    /// - Throws: `workflow.io` when it cannot be created.
    public func makeFile() throws -> any ScratchFile {
        let name = "\(directory)/.scratch-\(getpid())-\(Hex.encode(SecureRandom.bytes(8)))"
        let fd = Glibc.open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw WorkflowError(.io, "\(directory): cannot create a scratch file (\(String(cString: strerror(errno))))")
        }
        unlink(name)
        return File(fd: fd, directory: directory)
    }

    /// One scratch file. Memory per file is small and fixed, whatever the set size (a step may
    /// hold hundreds of them open: one per partition or bucket, SPEC §9 "Bounded memory"): an
    /// append of at least ``directBytes`` (what the spilling algorithms hand over, having staged
    /// about 32 KiB of records themselves) goes straight to the file, and only smaller appends
    /// are gathered, in a buffer of ``bufferSize`` bytes allocated on the first small append and
    /// released when the file is read, so a partition file holds no buffer while it is filled
    /// and none once it is read: one staging layer, not two.
    final class File: ScratchFile {
        var fd: Int32
        let directory: String
        private(set) var size = 0
        private var buffer: [UInt8] = []
        static let bufferSize = 64 << 10
        /// Appends this large are written at once (a stager's pieces are ≈ 32 KiB).
        static let directBytes = 16 << 10

        init(fd: Int32, directory: String) {
            self.fd = fd
            self.directory = directory
        }
        deinit { remove() }

        func append(_ bytes: UnsafeRawBufferPointer) throws {
            if buffer.count + bytes.count > Self.bufferSize || (bytes.count >= Self.directBytes && !buffer.isEmpty) {
                try flush()
            }
            if bytes.count >= Self.directBytes {
                try FileMessageSink.pwriteAll(fd, bytes, at: size, path: directory)
                size += bytes.count
                return
            }
            // Exactly the buffer's size, so the array never grows past it.
            if buffer.capacity < Self.bufferSize { buffer.reserveCapacity(Self.bufferSize) }
            buffer.append(contentsOf: bytes)
            size += bytes.count
        }

        /// Bytes written to the file so far (the rest is in `buffer`).
        private var onDisk: Int { size - buffer.count }

        private func flush() throws {
            guard !buffer.isEmpty else { return }
            let at = onDisk
            try buffer.withUnsafeBytes { try FileMessageSink.pwriteAll(fd, $0, at: at, path: directory) }
            buffer.removeAll(keepingCapacity: true)
        }

        func read(at offset: Int, into out: UnsafeMutableRawBufferPointer) throws {
            precondition(offset >= 0 && offset + out.count <= size)
            if buffer.capacity > 0 {
                try flush()
                buffer = []
            }
            try FileSource.preadAll(fd, out, at: offset, failure: "\(directory): scratch file read failed")
        }

        /// Bytes of memory this file holds (its buffer's capacity), for the tests.
        var heldBytes: Int { buffer.capacity }

        func remove() {
            if fd >= 0 {
                Glibc.close(fd)
                fd = -1
            }
            buffer = []
        }
    }
}

/// A ``ByteSource`` over a scratch file (an S3 object downloaded for one step).
public final class ScratchFileSource: ByteSource, @unchecked Sendable {
    let file: any ScratchFile
    /// A source over `file`, which it holds (a scratch file is deleted when the object goes).
    public init(_ file: any ScratchFile) { self.file = file }
    /// The scratch file's size.
    public var size: Int { file.size }
    /// Fills the whole `buffer` from `offset`.
    /// - Throws: `workflow.io` for a range past the end of the file; else the file's own read error.
    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset >= 0, offset + buffer.count <= file.size else {
            throw WorkflowError(.io, "read past the end of a scratch file")
        }
        try file.read(at: offset, into: buffer)
    }
}

/// An output file written in pieces to a hidden temporary file beside `path` (created with
/// `mode`), made visible only by ``commit()``: fsync, rename(2) over `path`, directory fsync.
/// ``abandon()`` (also on deinit without a commit) unlinks the temporary file, so after any error
/// nothing was written at `path`.
public final class AtomicOutputFile: OutputSink, @unchecked Sendable {
    /// The final name: nothing is written there before ``commit()``.
    public let path: String
    let tmp: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var done = false
    static let bufferSize = 1 << 20

    /// Creates the hidden temporary file beside `path`, with `mode` from creation (first removing
    /// the temporaries that dead writers to `path` left on this host).
    /// - Throws: `workflow.io` when the file cannot be created.
    public init(path: String, mode: mode_t = 0o644) throws(WorkflowError) {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        try Files.makeDirectory(dir.isEmpty ? "." : dir)
        // The shared temporary naming: a killed open's leftover is removed by the next write here.
        tmp = Files.temporaryName(for: path)
        fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WorkflowError(.io, "\(path): cannot create (\(String(cString: strerror(errno))))") }
    }

    deinit { if !done { abandon() } }

    /// Appends bytes through a 1 MiB buffer (a piece of at least 1 MiB is written directly); never
    /// after ``commit()`` or ``abandon()`` (a precondition).
    /// - Throws: `workflow.io` when a write fails.
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!done, "append after commit or abandon")
        if buffer.count + bytes.count > Self.bufferSize { try flush() }
        if bytes.count >= Self.bufferSize {
            try writeAll(bytes)
            return
        }
        if buffer.capacity < Self.bufferSize { buffer.reserveCapacity(Self.bufferSize) }
        buffer.append(contentsOf: bytes)
    }

    private func flush() throws(WorkflowError) {
        guard !buffer.isEmpty else { return }
        let r: Result<Void, WorkflowError> = buffer.withUnsafeBytes { b in
            Result { () throws(WorkflowError) in try writeAll(b) }
        }
        try r.get()
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws(WorkflowError) {
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw WorkflowError(
                    .io, "\(path): write failed (\(String(cString: strerror(errno)))); nothing was written")
            }
            off += n
        }
    }

    /// Writes what is buffered and fsyncs the temporary file, still invisible, so that a later
    /// ``commit()`` can only fail at the rename: for a file that must appear right after
    /// something else is published (a prepare's skip report).
    public func sync() throws(WorkflowError) {
        precondition(!done, "sync after commit or abandon")
        do throws(WorkflowError) {
            try flush()
            guard fsync(fd) == 0 else {
                throw WorkflowError(
                    .io, "\(path): write failed (\(String(cString: strerror(errno)))); nothing was written")
            }
        } catch {
            abandon()
            throw error
        }
    }

    /// Makes the file visible at `path` (replacing a file there).
    public func commit() throws(WorkflowError) {
        do throws(WorkflowError) {
            try flush()
            guard fsync(fd) == 0 else {
                throw WorkflowError(
                    .io, "\(path): write failed (\(String(cString: strerror(errno)))); nothing was written")
            }
            Glibc.close(fd)
            fd = -1
            guard rename(tmp, path) == 0 else {
                throw WorkflowError(.io, "\(path): rename failed (\(String(cString: strerror(errno))))")
            }
        } catch {
            abandon()
            throw error
        }
        done = true
        buffer = []
        let dir = (path as NSString).deletingLastPathComponent
        Files.syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Removes the temporary file; nothing appears at `path`.
    public func abandon() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
        if !done { unlink(tmp) }
        buffer = []
        done = true
    }
}
