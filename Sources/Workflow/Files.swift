import Activation
import CMalloc
import Foundation
import RistrettoPSI

#if canImport(Glibc)
import Glibc
#endif

/// Errors at the edges (files, directories, destinations), with stable codes.
/// - SeeAlso: `Protocol/SPEC.md` §10 (the `workflow.*` rows).
public struct WorkflowError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Stable error codes; the raw values are the `workflow.*` rows of `Protocol/SPEC.md` §10.
    public enum Code: String, Sendable {
        /// A file or directory could not be read, written or created (atomic writes leave nothing partial).
        case io = "workflow.io"
        /// A file does not exist.
        case notFound = "workflow.not_found"
        /// Refusing to overwrite (a message, a state file, an identity key, a delivered run).
        case alreadyExists = "workflow.already_exists"
        /// Not an identity file, or the wrong party's.
        case keyFile = "workflow.key_file"
        /// A missing column mapping.
        case input = "workflow.input"
        /// A destination the agreement does not support or that is malformed (including a manifest there
        /// that does not parse, or that names an object outside the run).
        case destination = "workflow.destination"
        /// An S3 retry found a killed attempt's objects but its own differ, so it may not write a manifest
        /// and cannot read whether one exists; nothing written (SPEC §12.8).
        case deliveryUnconfirmed = "workflow.delivery_unconfirmed"
        /// The scratch directory's file system lacks the space a step certainly needs (checked
        /// before any input body is read; nothing written, a run ID not used).
        case diskSpace = "workflow.disk_space"
    }
    /// The stable code.
    public let code: Code
    /// A human-readable reason naming the file and the rule (never an identifier, key or credential).
    public let reason: String
    /// An error for `code`; `reason` must not contain an identifier, key or credential.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }
    /// The code's raw value, then the reason.
    public var description: String { "\(code.rawValue): \(reason)" }
    /// Equal when the codes are: callers and tests match on the stable code, the reason is context.
    public static func == (a: WorkflowError, b: WorkflowError) -> Bool { a.code == b.code }
}

/// File helpers: atomic, durable writes so no partial output is ever visible under a final name.
public enum Files {
    /// Reads a whole file.
    public static func read(_ path: String) throws(WorkflowError) -> [UInt8] {
        // Read straight into the array (not through `Data`, which would hold a second copy of a
        // message file that can be hundreds of megabytes).
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw WorkflowError(.notFound, "\(path): no such file") }
            throw WorkflowError(.io, "\(path): cannot be read")
        }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw WorkflowError(.io, "\(path): cannot be read") }
        // One byte more than the size, so end of file is seen without growing; grows only if the
        // file grew (or has no size, like a pipe).
        var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 0) + 1)
        var n = 0
        while true {
            if n == out.count { out.append(contentsOf: repeatElement(0, count: max(out.count, 4096))) }
            let r = out.withUnsafeMutableBytes { b in Glibc.read(fd, b.baseAddress! + n, b.count - n) }
            if r < 0 {
                if errno == EINTR { continue }
                throw WorkflowError(.io, "\(path): cannot be read")
            }
            if r == 0 { break }
            n += r
        }
        out.removeLast(out.count - n)
        return out
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it, then renames it into place and
    /// fsyncs the directory. `mode` applies from creation, so a private file is never world-readable.
    /// - Parameters:
    ///   - bytes: the whole content.
    ///   - path: the final name; its directory is created if missing.
    ///   - mode: the file's permissions, from creation.
    ///   - exclusive: refuse to replace an existing file (the file is then linked, not renamed,
    ///     into place, so of two writers only one wins).
    /// - Throws: `workflow.already_exists` when `exclusive` and `path` exists; `workflow.io` when the
    ///   directory, the write, the sync or the final link or rename fails. The temporary file is
    ///   removed on any error, so nothing partial is visible under `path`.
    public static func writeAtomically(
        _ bytes: UnsafeRawBufferPointer, to path: String, mode: mode_t = 0o644, exclusive: Bool = false
    ) throws(WorkflowError) {
        try writeAtomically(to: path, mode: mode, exclusive: exclusive) { emit throws(WorkflowError) in try emit(bytes)
        }
    }

    /// As ``writeAtomically(_:to:mode:exclusive:)-(UnsafeRawBufferPointer,_,_,_)``, with the
    /// content produced in pieces by `produce` (each piece passed to `emit` is written at once), so
    /// a large message is streamed to disk instead of first being concatenated in memory.
    public static func writeAtomically(
        to path: String, mode: mode_t = 0o644, exclusive: Bool = false,
        _ produce: (_ emit: (UnsafeRawBufferPointer) throws(WorkflowError) -> Void) throws(WorkflowError) -> Void
    ) throws(WorkflowError) {
        let dir = (path as NSString).deletingLastPathComponent
        try makeDirectory(dir.isEmpty ? "." : dir)
        if exclusive && FileManager.default.fileExists(atPath: path) {
            throw WorkflowError(.alreadyExists, "\(path) already exists; refusing to overwrite it")
        }
        let tmp = temporaryName(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WorkflowError(.io, "\(path): cannot create (\(String(cString: strerror(errno))))") }
        var ok = true
        var err: Int32 = 0
        do throws(WorkflowError) {
            try produce { bytes throws(WorkflowError) in
                guard ok else { return }
                var off = 0
                while off < bytes.count {
                    let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
                    if n <= 0 {
                        if errno == EINTR { continue }
                        ok = false
                        err = errno
                        return
                    }
                    off += n
                }
            }
        } catch {
            close(fd)
            unlink(tmp)
            throw error
        }
        if ok && fsync(fd) != 0 {
            ok = false
            err = errno
        }
        close(fd)
        guard ok else {
            unlink(tmp)
            throw WorkflowError(.io, "\(path): write failed (\(String(cString: strerror(err)))); nothing was written")
        }
        if exclusive {
            // link(2) fails if the target exists, so two writers cannot both win.
            guard link(tmp, path) == 0 else {
                let e = errno
                unlink(tmp)
                throw WorkflowError(
                    e == EEXIST ? .alreadyExists : .io,
                    "\(path): \(e == EEXIST ? "already exists; refusing to overwrite it" : String(cString: strerror(e)))"
                )
            }
            unlink(tmp)
        } else if rename(tmp, path) != 0 {
            let e = errno
            unlink(tmp)
            throw WorkflowError(.io, "\(path): rename failed (\(String(cString: strerror(e))))")
        }
        syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// The hidden temporary name a write to `path` uses: `.<name>.tmp-<host>-<pid>-<random>`,
    /// beside `path` (same file system, so the final link/rename is atomic). Removes first the
    /// temporaries of earlier writes to `path` that a killed process left behind.
    static func temporaryName(for path: String) -> String {
        removeStaleTemporaries(for: path)
        let dir = (path as NSString).deletingLastPathComponent
        return (dir.isEmpty ? "." : dir) + "/" + temporaryPrefix(for: path)
            + "\(getpid())-\(Hex.encode(SecureRandom.bytes(4)))"
    }

    /// `.<name>.tmp-<host>-`: the host part (a hash of the host name) keeps a shared exchange
    /// directory's writers on other machines out of ``removeStaleTemporaries(for:)``, whose
    /// process-liveness test only means something on this host.
    static func temporaryPrefix(for path: String) -> String {
        ".\((path as NSString).lastPathComponent).tmp-\(hostTag)-"
    }

    static let hostTag: String = {
        var name = [CChar](repeating: 0, count: 256)
        _ = gethostname(&name, name.count - 1)
        let bytes = name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return Hex.encode(Array(SHA256.hash(bytes).prefix(4)))
    }()

    /// Deletes the temporaries of writes to `path` made on this host by processes that no longer
    /// exist (killed mid-write: `kill -9`, power loss). A live writer's file is never touched.
    /// Why: such a file is never read, but it holds a partial message or delivery object and
    /// would otherwise stay forever.
    public static func removeStaleTemporaries(for path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        let prefix = temporaryPrefix(for: path)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir.isEmpty ? "." : dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
            if kill(pid, 0) == -1 && errno == ESRCH {
                unlink((dir.isEmpty ? "." : dir) + "/" + name)
            }
        }
    }

    /// As ``writeAtomically(_:to:mode:exclusive:)-(UnsafeRawBufferPointer,_,_,_)``, from an array.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, exclusive: Bool = false)
        throws(WorkflowError)
    {
        let r: Result<Void, WorkflowError> = bytes.withUnsafeBytes { b in
            Result { () throws(WorkflowError) in try writeAtomically(b, to: path, mode: mode, exclusive: exclusive) }
        }
        try r.get()
    }

    /// Creates a directory and its parents.
    public static func makeDirectory(_ path: String, mode: Int = 0o755) throws(WorkflowError) {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: mode])
        } catch {
            throw WorkflowError(.io, "\(path): cannot create directory")
        }
    }

    /// Raises this process's soft limit on open files to its hard limit and returns the new
    /// soft limit. A step holds one descriptor per spill partition or shuffle bucket at once: up
    /// to 256 per set (`SpillBudget`), `set bytes / 32 MiB` for sets above 8 GiB (≈ 790 for
    /// round 3 at 100M × 100M with member IDs: 531 buckets and 256 partitions), near a common
    /// default soft limit of 1024; the hard limit (often far higher) is the
    /// administrator's, so raising the soft one needs no privilege and changes nothing else.
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".
    @discardableResult
    public static func raiseOpenFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return -1 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Caps glibc's malloc at 2 arenas unless the environment chose (`MALLOC_ARENA_MAX`, or
    /// `GLIBC_TUNABLES` naming `arena_max`). By default every worker thread of the group
    /// arithmetic gets an arena of its own (up to 8 per core), and what a batch frees there stays
    /// resident: 3–4 MiB of a 100k coordinator's peak. The hot loops do not allocate, so sharing
    /// one arena among the workers costs no measurable time (BENCHMARKS.md "Fewer resident pages").
    /// Call it before any thread starts.
    public static func limitMallocArenas() {
        let env = ProcessInfo.processInfo.environment
        if env["MALLOC_ARENA_MAX"] != nil || env["GLIBC_TUNABLES"]?.contains("arena_max") == true { return }
        _ = mallopt(M_ARENA_MAX, 2)
    }

    static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// Overwrites a file's bytes with zeros, syncs, then unlinks it: used for run state holding a scalar.
    public static func shred(_ path: String) {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        if fd >= 0 {
            var st = stat()
            if fstat(fd, &st) == 0 && st.st_size > 0 {
                let zeros = [UInt8](repeating: 0, count: Int(st.st_size))
                _ = zeros.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                fsync(fd)
            }
            close(fd)
        }
        unlink(path)
    }
}
