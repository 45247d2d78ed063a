internal import CZlib

/// gzip (RFC 1952) through zlib, for delivery objects the agreement asks to compress.
///
/// Contract: ``compress(_:)`` is deterministic (no file name, mtime 0), so a delivery's SHA-256 is
/// reproducible. ``decompress(_:limit:)`` accepts exactly one gzip member, refuses trailing bytes,
/// and stops at `limit` output bytes so a hostile object cannot exhaust memory.
/// - SeeAlso: `Protocol/SPEC.md` §6 round 5 "Delivery".
public enum Gzip {
    /// Errors with stable codes (`gzip.*`), listed in `Protocol/SPEC.md` §10.
    public struct Error: Swift.Error, Equatable, Sendable, CustomStringConvertible {
        public enum Code: String, Sendable { case corrupt = "gzip.corrupt", tooLarge = "gzip.too_large", failure = "gzip.failure" }
        public let code: Code
        public let reason: String
        public init(code: Code, reason: String) { self.code = code; self.reason = reason }
        public var description: String { "\(code.rawValue): \(reason)" }
        public static func == (a: Error, b: Error) -> Bool { a.code == b.code }
    }

    /// gzip-compresses `input` at the default level.
    public static func compress(_ input: [UInt8]) throws(Gzip.Error) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16 selects the gzip wrapper.
        guard deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Error(code: .failure, reason: "deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 32)
        let produced: Int = try input.withUnsafeBufferPointer { (src: UnsafeBufferPointer<UInt8>) throws(Gzip.Error) -> Int in
            try out.withUnsafeMutableBufferPointer { (dst: inout UnsafeMutableBufferPointer<UInt8>) throws(Gzip.Error) -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
                stream.avail_in = UInt32(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = UInt32(dst.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { throw Error(code: .failure, reason: "deflate did not finish") }
                return dst.count - Int(stream.avail_out)
            }
        }
        out.removeSubrange(produced...)
        return out
    }

    /// Decompresses one gzip member of at most `limit` bytes of output.
    public static func decompress(_ input: [UInt8], limit: Int) throws(Gzip.Error) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Error(code: .failure, reason: "inflateInit2 failed")
        }
        defer { inflateEnd(&stream) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        try input.withUnsafeBufferPointer { (src: UnsafeBufferPointer<UInt8>) throws(Gzip.Error) in
            stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
            stream.avail_in = UInt32(src.count)
            while true {
                let (rc, n) = chunk.withUnsafeMutableBufferPointer { c -> (Int32, Int) in
                    stream.next_out = c.baseAddress
                    stream.avail_out = UInt32(c.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    return (rc, c.count - Int(stream.avail_out))
                }
                guard rc == Z_OK || rc == Z_STREAM_END else { throw Error(code: .corrupt, reason: "not a valid gzip stream") }
                guard out.count + n <= limit else { throw Error(code: .tooLarge, reason: "decompressed size exceeds \(limit) bytes") }
                out.append(contentsOf: chunk[0..<n])
                if rc == Z_STREAM_END { break }
                if n == 0 && stream.avail_in == 0 { throw Error(code: .corrupt, reason: "gzip stream is truncated") }
            }
            guard stream.avail_in == 0 else { throw Error(code: .corrupt, reason: "trailing bytes after the gzip stream") }
        }
        return out
    }
}
