import Dispatch
import Foundation

/// A column of valid ristretto255 elements stored as contiguous 32-byte records, with batch
/// operations that spread the group arithmetic over every core.
///
/// Contract: every record is a canonical, non-identity encoding (the batch is only built from
/// ``RistrettoElement`` values, the strict batch decoder, hash-to-group, or scalar
/// multiplication). Order is meaningful: it is the order of the message file it came from.
/// Batch operations are deterministic in their output order whatever the number of threads.
/// - SeeAlso: `Protocol/SPEC.md` §"Blinding" and §"Message layout".
public struct ElementBatch: Sendable, RandomAccessCollection, Equatable {
    /// Contiguous encodings, 32 bytes each.
    private(set) var storage: [UInt8]

    /// Always 0: positions are record numbers in file order.
    public var startIndex: Int { 0 }
    /// The number of records.
    public var endIndex: Int { storage.count / RistrettoElement.byteCount }

    /// An empty batch.
    public init() { storage = [] }

    /// A batch of the given elements, in order.
    public init<S: Sequence>(_ elements: S) where S.Element == RistrettoElement {
        storage = []
        storage.reserveCapacity(elements.underestimatedCount * RistrettoElement.byteCount)
        for e in elements { e.withUnsafeBytes { storage.append(contentsOf: $0) } }
    }

    private init(storage: [UInt8]) { self.storage = storage }

    /// The element at `position`, built from its record without re-validating it (every record
    /// is already valid); traps when `position` is out of range.
    public subscript(position: Int) -> RistrettoElement {
        precondition(position >= 0 && position < count, "element index out of range")
        return storage.withUnsafeBytes { raw in
            let start = position * RistrettoElement.byteCount
            return RistrettoElement(
                trustedBytes: UnsafeRawBufferPointer(rebasing: raw[start..<start + RistrettoElement.byteCount]))
        }
    }

    /// Strictly decodes a run of 32-byte records (RFC 9496 §4.3.1, identity rejected), in parallel.
    /// - Throws: the ``CryptoError`` of the first invalid record, with its ``CryptoError/index``.
    public init(validating bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        try Self.validateAll(bytes)
        storage = Array(bytes)
    }

    private static func validateAll(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        let size = RistrettoElement.byteCount
        guard bytes.count % size == 0 else {
            throw CryptoError(.invalidLength, "element data is \(bytes.count) bytes, not a multiple of \(size)")
        }
        let n = bytes.count / size
        let firstBad = Parallel.firstFailure(count: n) { i throws(CryptoError) in
            try RistrettoElement.validate(UnsafeRawBufferPointer(rebasing: bytes[i * size..<(i + 1) * size]))
        }
        if let (index, error) = firstBad { throw error.at(index: index) }
    }

    /// Strictly decodes records held in an array; see ``init(validating:)-(UnsafeRawBufferPointer)``.
    /// The batch shares the array's buffer (copy on write) instead of copying it, so decoding a
    /// message's elements costs no second copy of them.
    public init(validating bytes: [UInt8]) throws(CryptoError) {
        try bytes.withBytes { raw throws(CryptoError) in try Self.validateAll(raw) }
        storage = bytes
    }

    /// Hashes each message to the group under `hasher`'s tag, in parallel, keeping order.
    public static func hashing(_ messages: [[UInt8]], with hasher: HashToGroup) throws(CryptoError) -> ElementBatch {
        try map(count: messages.count) { i, out throws(CryptoError) in
            try messages[i].withBytes { m throws(CryptoError) in try hasher.hash(m, into: out) }
        }
    }

    /// Hashes each message with the tagless ``CompatibilityHash``, in parallel, keeping order.
    public static func compatibilityHashing(_ messages: [[UInt8]]) throws(CryptoError) -> ElementBatch {
        try map(count: messages.count) { i, out throws(CryptoError) in
            try messages[i].withBytes { m throws(CryptoError) in try CompatibilityHash.hash(m, into: out) }
        }
    }

    /// Every element multiplied by `scalar` (blinding or re-blinding), in parallel, keeping order.
    public func multiplied(by scalar: Scalar) throws(CryptoError) -> ElementBatch {
        try storage.withBytes { src throws(CryptoError) in
            try ElementBatch.map(count: count) { i, out throws(CryptoError) in
                let e = src.baseAddress!.advanced(by: i * RistrettoElement.byteCount).assumingMemoryBound(
                    to: UInt8.self)
                guard RistrettoElement.scalarMultiply(into: out, element: e, scalar: scalar) == 0 else {
                    throw CryptoError(.primitiveFailure, "scalar multiplication produced the identity")
                }
            }
        }
    }

    /// Strictly decodes a run of 32-byte records and multiplies each by `scalar`, in one pass and
    /// in parallel: the re-blinding of rounds 3 and 4.
    ///
    /// Contract: accepts exactly the records ``init(validating:)-(UnsafeRawBufferPointer)`` accepts
    /// and throws the same ``CryptoError`` (with its index) for the first one it refuses. Why fused:
    /// `crypto_scalarmult_ristretto255` decodes its input anyway (and fails on an invalid one), so a
    /// separate `crypto_core_ristretto255_is_valid_point` pass decodes every element twice, about
    /// 7 % of the round's cost (measured by `cleanroom-bench`, re-blind vs decode). The cheap
    /// checks that libsodium 1.0.18 lacks (top bit, identity) run first in Swift; a failing
    /// multiplication is re-checked with the full decoder to name the rule, and a valid element
    /// whose product is the identity (impossible for a non-zero scalar in a prime-order group) is a
    /// `primitiveFailure`, as in ``multiplied(by:)``.
    /// - SeeAlso: `Protocol/SPEC.md` §6 rounds 3 and 4; RFC 9496 §4.3.1.
    public static func multiplying(validating bytes: UnsafeRawBufferPointer, by scalar: Scalar) throws(CryptoError)
        -> ElementBatch
    {
        let size = RistrettoElement.byteCount
        guard bytes.count % size == 0 else {
            throw CryptoError(.invalidLength, "element data is \(bytes.count) bytes, not a multiple of \(size)")
        }
        return try map(count: bytes.count / size) { i, out throws(CryptoError) in
            let record = UnsafeRawBufferPointer(rebasing: bytes[i * size..<(i + 1) * size])
            guard RistrettoElement.isCanonicalFieldEncoding(record) else {
                try RistrettoElement.validate(record)
                return
            }
            let e = record.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if RistrettoElement.scalarMultiply(into: out, element: e, scalar: scalar) != 0 {
                try RistrettoElement.validate(record)
                throw CryptoError(.primitiveFailure, "scalar multiplication produced the identity")
            }
        }
    }

    /// Records held in an array; see ``multiplying(validating:by:)-(UnsafeRawBufferPointer,_)``.
    public static func multiplying(validating bytes: [UInt8], by scalar: Scalar) throws(CryptoError) -> ElementBatch {
        try bytes.withBytes { raw throws(CryptoError) in try multiplying(validating: raw, by: scalar) }
    }

    /// Shuffles the records in place with a uniform Fisher–Yates permutation drawn from a
    /// ``BufferedRandom`` keyed from libsodium's CSPRNG, so output position reveals nothing about
    /// input position.
    public mutating func shuffle() {
        var perm = Array(0..<count)
        let random = BufferedRandom()
        for i in stride(from: count - 1, to: 0, by: -1) {
            perm.swapAt(i, random.index(below: i + 1))
        }
        apply(permutation: perm)
    }

    /// Reorders so that new position `j` holds old record `permutation[j]`.
    public mutating func apply(permutation: [Int]) {
        precondition(permutation.count == count, "permutation size must equal the batch size")
        let size = RistrettoElement.byteCount
        var out = [UInt8](repeating: 0, count: storage.count)
        storage.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for (j, i) in permutation.enumerated() {
                    dst.baseAddress!.advanced(by: j * size).copyMemory(
                        from: src.baseAddress!.advanced(by: i * size), byteCount: size)
                }
            }
        }
        storage = out
    }

    /// Appends one element.
    public mutating func append(_ element: RistrettoElement) {
        element.withUnsafeBytes { storage.append(contentsOf: $0) }
    }

    /// Appends every element of another batch.
    public mutating func append(contentsOf other: ElementBatch) {
        storage.append(contentsOf: other.storage)
    }

    /// Read access to the contiguous 32-byte records, e.g. to write a message file.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// Builds a batch of `count` records by running `body(i, out)` for each index in parallel.
    private static func map(count: Int, _ body: (Int, UnsafeMutablePointer<UInt8>) throws(CryptoError) -> Void)
        throws(CryptoError) -> ElementBatch
    {
        let size = RistrettoElement.byteCount
        var out = [UInt8](repeating: 0, count: count * size)
        let failure = out.withUnsafeMutableBytes { dst in
            Parallel.firstFailure(count: count) { i throws(CryptoError) in
                try body(i, dst.baseAddress!.advanced(by: i * size).assumingMemoryBound(to: UInt8.self))
            }
        }
        if let (index, error) = failure { throw error.at(index: index) }
        return ElementBatch(storage: out)
    }
}

/// Data-parallel loops over index ranges on every core.
public enum Parallel {
    /// The environment variable that caps the threads of batch operations (a positive integer).
    /// Used by `cleanroom-bench` to measure thread scaling, and by operators who share a machine.
    public static let threadsVariable = "CLEANROOM_THREADS"

    /// Threads used by batch operations: one per active core, or `CLEANROOM_THREADS` when it is a
    /// positive integer (read on every batch, so a benchmark can change it between runs).
    public static var workerCount: Int {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        guard let raw = getenv(threadsVariable), let n = Int(String(cString: raw)), n > 0 else { return cores }
        return n
    }

    /// How many contiguous ranges `count` items are split into across ``workerCount`` threads:
    /// one on one thread or for a small input (not worth a thread hop; a range keeps at least 64
    /// items to amortise scheduling), else up to 16 per thread. Many small ranges, not one per
    /// thread, because a thread that another thread of the process (a pipeline's reader) shares
    /// a core with falls behind: with 4 ranges per thread the last range of a call left the other
    /// core idle for up to a range's time at every call (measured: the prepares ran at 1.93 cores
    /// on their own); the ranges are handed out as threads free up, so the slow one takes fewer.
    static func rangeCount(_ count: Int) -> Int {
        let workers = workerCount
        return workers == 1 ? 1 : min(workers * 16, max(1, count / 64))
    }

    /// Runs `body` for every index in `0..<count`, split in contiguous chunks across cores, and
    /// returns the lowest failing index with its error (deterministic whatever the scheduling).
    static func firstFailure(count: Int, _ body: (Int) throws(CryptoError) -> Void) -> (Int, CryptoError)? {
        guard count > 0 else { return nil }
        let chunks = rangeCount(count)
        if chunks == 1 {
            for i in 0..<count {
                do throws(CryptoError) { try body(i) } catch { return (i, error) }
            }
            return nil
        }
        var failures = [(Int, CryptoError)?](repeating: nil, count: chunks)
        failures.withUnsafeMutableBufferPointer { slots in
            let slotsBox = UnsafeSendable(slots)
            withoutActuallyEscaping(body) { body in
                let bodyBox = UnsafeSendable(body)
                DispatchQueue.concurrentPerform(iterations: chunks) { c in
                    let lower = count * c / chunks
                    let upper = count * (c + 1) / chunks
                    for i in lower..<upper {
                        do throws(CryptoError) { try bodyBox.value(i) } catch {
                            slotsBox.value[c] = (i, error)
                            return
                        }
                    }
                }
            }
        }
        return failures.lazy.compactMap { $0 }.first
    }
}

extension Parallel {
    /// Runs `body` over contiguous ranges that together cover `0..<count`, on every core, split
    /// as ``firstFailure(count:_:)`` splits (inline on the calling thread when ``workerCount`` is 1
    /// or `count` is small). Each range is handed out once; `body` must touch only its range's memory.
    public static func forEachRange(count: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = rangeCount(count)
        if chunks == 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            let bodyBox = UnsafeSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                bodyBox.value((count * c / chunks)..<(count * (c + 1) / chunks))
            }
        }
    }

    /// One stage of a pipeline: `work` runs on a thread of its own from `init`, while the caller
    /// goes on with the next stage, and ``join()`` waits for its result (or rethrows its error).
    ///
    /// Contract: the work only sees what it captured (all `Sendable`); a dedicated thread, not a
    /// Dispatch worker, so the work (which may itself run `concurrentPerform`) never waits for a
    /// pool thread that callers blocked in `join` might hold. Join once or more: later joins
    /// return the same outcome. A job nobody joins still runs to completion and is then freed.
    public final class Job<Success: Sendable>: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        // Written once by the job's thread before `done` is signalled; read only after waiting on it.
        private var outcome: Result<Success, any Error>?
        private var joined = false

        /// Starts `work` on a new thread at once; the caller gets its outcome from ``join()``.
        public init(_ work: @escaping @Sendable () throws -> Success) {
            let thread = Thread { [self] in
                outcome = Result { try work() }
                done.signal()
            }
            thread.name = "cleanroom.pipeline"
            thread.start()
        }

        /// Waits for the work and returns its result or rethrows its error.
        /// Call from one thread (the one that started the job).
        public func join() throws -> Success {
            if !joined {
                done.wait()
                joined = true
            }
            return try outcome!.get()
        }
    }
}

/// Carries a value into `concurrentPerform`, where each chunk touches disjoint memory.
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
