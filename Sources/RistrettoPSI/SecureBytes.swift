internal import CSodium

/// A fixed-size buffer for secret bytes that is locked in memory where the OS allows it and
/// zeroed with `sodium_memzero` when released.
///
/// Contract: the buffer never appears in `description`, `debugDescription` or reflection; it is
/// neither `Equatable` nor `Codable`. Compare two buffers with ``constantTimeEquals(_:)``.
/// Thread-safety: immutable after initialisation, so it can be shared across threads.
/// - SeeAlso: `Protocol/SPEC.md` §"Secrets in memory".
public final class SecureBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    private let pointer: UnsafeMutableRawPointer
    /// The number of secret bytes held.
    public let count: Int
    private let locked: Bool

    /// Allocates `count` bytes and lets `initializer` fill them in place, so the secret is never
    /// held in an ordinary Swift array that would not be zeroed.
    public init<E: Error>(count: Int, initializer: (UnsafeMutableRawBufferPointer) throws(E) -> Void) throws(E) {
        _ = Sodium.ready
        precondition(count > 0, "SecureBytes needs a positive size")
        let p = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        p.initializeMemory(as: UInt8.self, repeating: 0, count: count)
        // Best effort: mlock can fail under RLIMIT_MEMLOCK; the bytes are still zeroed on release.
        let locked = sodium_mlock(p, count) == 0
        do {
            try initializer(UnsafeMutableRawBufferPointer(start: p, count: count))
        } catch {
            // Clean up here, before any stored property is set: a class initializer that throws
            // after full initialisation would also run deinit, and free the buffer twice.
            sodium_memzero(p, count)
            if locked { _ = sodium_munlock(p, count) }
            p.deallocate()
            throw error
        }
        self.pointer = p
        self.count = count
        self.locked = locked
    }

    /// Copies `bytes` into a new secure buffer. The caller remains responsible for zeroing its own copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(count: bytes.count) { $0.copyMemory(from: bytes) }
    }

    /// Copies the bytes and zeroes the source array, so no second copy of the secret survives.
    public convenience init(consuming bytes: inout [UInt8]) {
        self.init(count: bytes.count) { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
        SecureBytes.zero(&bytes)
    }

    deinit {
        sodium_memzero(pointer, count)
        if locked { _ = sodium_munlock(pointer, count) }
        pointer.deallocate()
    }

    /// Gives read access to the secret for the duration of `body`.
    /// - Warning: do not copy the bytes out of `body` into ordinary memory.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Write access for this module's own secret state (``BufferedRandom``'s key and keystream),
    /// which changes in place and must never pass through ordinary memory.
    func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
        body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Constant-time equality (`sodium_memcmp`); different lengths compare unequal.
    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        guard count == other.count else { return false }
        return sodium_memcmp(pointer, other.pointer, count) == 0
    }

    /// Zeroes an ordinary byte array in a way the optimiser cannot remove.
    public static func zero(_ bytes: inout [UInt8]) {
        _ = Sodium.ready
        bytes.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress { sodium_memzero(base, buffer.count) }
        }
    }

    /// Gives the size only; the bytes are shown as `redacted`.
    public var description: String { "SecureBytes(\(count) bytes, redacted)" }
    /// Same as ``description``, so debugger output never shows the secret.
    public var debugDescription: String { description }
    /// Reflection shows only the size, under the label `redacted`.
    public var customMirror: Mirror { Mirror(self, children: ["redacted": count], displayStyle: .struct) }
}
