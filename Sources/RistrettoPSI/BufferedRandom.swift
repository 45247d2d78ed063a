internal import CSodium

/// A buffered CSPRNG for per-record draws (sealing nonces, shuffle indices): a ChaCha20 keystream
/// under a 256-bit key from libsodium's CSPRNG (`randombytes_buf`, i.e. `getrandom`), with fast
/// key erasure.
///
/// Why: libsodium 1.0.18's `randombytes_buf` and `randombytes_uniform` make one `getrandom`
/// system call per call, and the prepares and round 3 draw two or three values per record, so the
/// kernel round trips cost about 1 µs per record. This generator makes one call per instance.
///
/// Construction (Bernstein's "fast-key-erasure RNG"): the 32-byte key `k` comes from
/// `randombytes_buf`. Each refill computes `ChaCha20(k, nonce = 0)` over `32 + blockBytes` bytes;
/// the first 32 bytes replace `k` at once (the old key is overwritten) and are wiped from the
/// block, the other `blockBytes` are served in order, each byte wiped as it is handed out. A key
/// encrypts exactly one keystream, so the fixed nonce is never reused under a key. Whoever reads
/// this object's memory later learns the current key and the unread bytes only: nothing it has
/// already produced (forward secrecy), and nothing another instance produces.
///
/// Contract: the key and the unread keystream live in ``SecureBytes`` (locked where the OS allows
/// it, zeroed on release, redacted descriptions). Not thread-safe: one instance per thread or per
/// batch (it is deliberately not `Sendable`), so the hot loop takes no lock.
/// - SeeAlso: `Protocol/SPEC.md` §3.3 "Randomness"; D. J. Bernstein, "Fast-key-erasure random-number
///   generators" (2017).
public final class BufferedRandom: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// Keystream bytes served per refill (after the 32 that become the next key).
    static let blockBytes = 1024
    static let keyBytes = 32
    /// ChaCha20's 8-byte nonce, fixed: every key encrypts one keystream only.
    static let nonce = [UInt8](repeating: 0, count: 8)
    /// key (32) ‖ block (32 + blockBytes): the block's first 32 bytes are the next key, then output.
    private let state: SecureBytes
    private var position: Int

    /// A generator keyed from the operating system's CSPRNG (one `randombytes_buf` call).
    public init() {
        _ = Sodium.ready
        state = SecureBytes(count: Self.keyBytes + Self.keyBytes + Self.blockBytes) { s in
            randombytes_buf(s.baseAddress!, Self.keyBytes)
        }
        position = 0
        refill()
    }

    private var end: Int { Self.keyBytes + Self.keyBytes + Self.blockBytes }

    /// The next key and `blockBytes` of output from the current key, then the key is replaced.
    private func refill() {
        state.withUnsafeMutableBytes { s in
            let key = s.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let block = key + Self.keyBytes
            _ = crypto_stream_chacha20(block, UInt64(Self.keyBytes + Self.blockBytes), Self.nonce, key)
            key.update(from: block, count: Self.keyBytes)
            sodium_memzero(block, Self.keyBytes)
        }
        position = Self.keyBytes + Self.keyBytes
    }

    /// Fills `buffer` with random bytes, wiping each byte from the generator as it is served.
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < buffer.count {
            if position == end { refill() }
            let n = min(buffer.count - done, end - position)
            state.withUnsafeMutableBytes { s in
                (buffer.baseAddress! + done).copyMemory(from: s.baseAddress! + position, byteCount: n)
                sodium_memzero(s.baseAddress! + position, n)
            }
            position += n
            done += n
        }
    }

    /// `count` random bytes.
    public func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// A uniformly random 32-bit value.
    public func next32() -> UInt32 {
        var r: UInt32 = 0
        withUnsafeMutableBytes(of: &r) { fill($0) }
        return r
    }

    /// A uniformly random 64-bit value.
    public func next64() -> UInt64 {
        var r: UInt64 = 0
        withUnsafeMutableBytes(of: &r) { fill($0) }
        return r
    }

    /// A uniform integer in `0..<upperBound` without modulo bias: values below `2^32 mod upperBound`
    /// are rejected, as `randombytes_uniform` does. `upperBound < 2` gives 0.
    public func uniform(_ upperBound: UInt32) -> UInt32 {
        guard upperBound >= 2 else { return 0 }
        let min = (0 &- upperBound) % upperBound
        while true {
            let r = next32()
            if r >= min { return r % upperBound }
        }
    }

    /// A uniform index in `0..<upperBound` (any positive `Int`), by rejection sampling as ``uniform(_:)``.
    public func index(below upperBound: Int) -> Int {
        precondition(upperBound > 0)
        if upperBound <= Int(UInt32.max) { return Int(uniform(UInt32(upperBound))) }
        let bound = UInt64(upperBound)
        let min = (0 &- bound) % bound
        while true {
            let r = next64()
            if r >= min { return Int(r % bound) }
        }
    }

    /// Tests only (through `@testable`): a copy of the whole state, to check what is wiped.
    func stateForTesting() -> [UInt8] {
        state.withUnsafeBytes { Array($0) }
    }

    /// Names the construction only; the key and keystream are shown as `redacted`.
    public var description: String { "BufferedRandom(ChaCha20 fast-key-erasure, state redacted)" }
    /// Same as ``description``, so debugger output never shows the state.
    public var debugDescription: String { description }
    /// Reflection shows `redacted` in place of the state.
    public var customMirror: Mirror { Mirror(self, children: ["state": "redacted"], displayStyle: .class) }
}
