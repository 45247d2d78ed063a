import Foundation
import RistrettoPSI

/// The coordinator's Ed25519 key file: the 32-byte seed as 64 hex characters and a newline,
/// created with mode 0600 and never overwritten.
///
/// Contract: the seed passes through arrays that are zeroed before return; refuses to read a file
/// that group or others may read (as `ssh` does). Errors never contain key material.
/// - SeeAlso: `Protocol/AUDIT_LOG.md` §"Coordinator key".
public enum CoordinatorKeyFile {
    /// Writes `key`'s seed to a new file at `path` with mode 0600.
    /// - Throws: `.io` if the file exists or cannot be written.
    public static func write(_ key: SigningKey, to path: String) throws(AuditLogError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw AuditLogError(.io, "cannot create key file '\(path)' (it may already exist): errno \(errno)")
        }
        defer { close(fd) }
        // Hex-encode straight into a byte array that is zeroed below (no String copy of the seed).
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8](repeating: 0, count: 2 * SigningKey.seedByteCount + 1)
        key.withSeed { seed in
            for (i, b) in seed.enumerated() {
                text[2 * i] = digits[Int(b >> 4)]
                text[2 * i + 1] = digits[Int(b & 0x0f)]
            }
        }
        text[text.count - 1] = 0x0a
        defer { SecureBytes.zero(&text) }
        let written = text.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        guard written == text.count, fsync(fd) == 0 else {
            throw AuditLogError(.io, "cannot write key file '\(path)': errno \(errno)")
        }
    }

    /// Reads a key file written by ``write(_:to:)``.
    /// - Throws: `.io` when unreadable; `.invalidKey` when group/other-readable or not 64 hex characters.
    public static func read(from path: String) throws(AuditLogError) -> SigningKey {
        var st = stat()
        guard stat(path, &st) == 0 else { throw AuditLogError(.io, "cannot read key file '\(path)': errno \(errno)") }
        guard st.st_mode & 0o077 == 0 else {
            throw AuditLogError(.invalidKey, "key file '\(path)' is accessible by group or others; chmod 600 it")
        }
        guard var data = FileManager.default.contents(atPath: path).map({ [UInt8]($0) }) else {
            throw AuditLogError(.io, "cannot read key file '\(path)'")
        }
        defer { SecureBytes.zero(&data) }
        while let last = data.last, last == 0x0a || last == 0x0d || last == 0x20 { data.removeLast() }
        guard data.count == 64, var seed = decodeHex(data) else {
            throw AuditLogError(.invalidKey, "key file '\(path)' must hold a 32-byte Ed25519 seed as 64 hex characters")
        }
        defer { SecureBytes.zero(&seed) }
        do {
            return try seed.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> SigningKey in
                try SigningKey(seed: raw)
            }
        } catch {
            throw AuditLogError(.invalidKey, "key file '\(path)' does not hold a usable Ed25519 seed")
        }
    }

    /// Hex decoding straight from bytes, so no `String` copy of the seed is left unzeroed.
    private static func decodeHex(_ text: [UInt8]) -> [UInt8]? {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out = [UInt8](repeating: 0, count: text.count / 2)
        for i in 0..<out.count {
            guard let hi = nibble(text[2 * i]), let lo = nibble(text[2 * i + 1]) else {
                SecureBytes.zero(&out)
                return nil
            }
            out[i] = hi << 4 | lo
        }
        return out
    }
}
