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
        /// Stable error codes; the raw values are the ones listed in `Protocol/SPEC.md` §10.
        public enum Code: String, Sendable {
            /// Not one valid gzip member: bad header or CRC, truncated, or followed by trailing bytes.
            case corrupt = "gzip.corrupt"
            /// Inflating would produce more than the caller's output limit.
            case tooLarge = "gzip.too_large"
            /// zlib failed to initialise or to finish compressing.
            case failure = "gzip.failure"
        }
        /// The stable code.
        public let code: Code
        /// A human-readable reason naming the rule that failed.
        public let reason: String
        /// Creates an error with a stable `code` and a `reason` for people.
        public init(code: Code, reason: String) {
            self.code = code
            self.reason = reason
        }
        /// The code's raw value followed by the reason.
        public var description: String { "\(code.rawValue): \(reason)" }
        /// Compares codes only, so callers can match on a code whatever the reason.
        public static func == (a: Error, b: Error) -> Bool { a.code == b.code }
    }

    /// gzip-compresses `input` at the default level.
    public static func compress(_ input: [UInt8]) throws(Gzip.Error) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16 selects the gzip wrapper.
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else {
            throw Error(code: .failure, reason: "deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 32)
        let produced: Int = try input.withUnsafeBufferPointer {
            (src: UnsafeBufferPointer<UInt8>) throws(Gzip.Error) -> Int in
            try out.withUnsafeMutableBufferPointer {
                (dst: inout UnsafeMutableBufferPointer<UInt8>) throws(Gzip.Error) -> Int in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
                stream.avail_in = UInt32(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = UInt32(dst.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else {
                    throw Error(code: .failure, reason: "deflate did not finish")
                }
                return dst.count - Int(stream.avail_out)
            }
        }
        out.removeSubrange(produced...)
        return out
    }

    /// A streaming gzip compressor: input is fed in pieces and compressed output comes back as it
    /// becomes available, so a large object is compressed without holding it whole.
    ///
    /// Contract: the bytes of all ``compress(_:)`` results followed by ``finish()`` equal
    /// ``Gzip/compress(_:)`` of the concatenated input, however it is split (same level, window and
    /// header: no file name, mtime 0; zlib decides blocks from its own buffers, not from the calls),
    /// so a streamed delivery object is byte-identical to one compressed whole. After `finish()` the
    /// compressor is spent. Not thread-safe (one stream, one owner).
    /// - SeeAlso: `Protocol/SPEC.md` §9 "Bounded memory".
    public final class Compressor {
        // zlib's state points back at its z_stream, so the stream lives at a fixed address.
        private let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        private var finished = false
        private var out = [UInt8](repeating: 0, count: 1 << 16)

        /// A compressor with the same settings as ``Gzip/compress(_:)``.
        /// - Throws: `gzip.failure` when zlib cannot initialise the stream.
        public init() throws(Gzip.Error) {
            stream.initialize(to: z_stream())
            guard
                deflateInit2_(
                    stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                    ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
            else {
                stream.deallocate()
                throw Error(code: .failure, reason: "deflateInit2 failed")
            }
        }

        deinit {
            deflateEnd(stream)
            stream.deallocate()
        }

        /// Compresses `input`; returns the compressed bytes produced so far (often none).
        public func compress(_ input: UnsafeRawBufferPointer) throws(Gzip.Error) -> [UInt8] {
            precondition(!finished, "the compressor is finished")
            guard input.count > 0 else { return [] }
            return try run(input, flush: Z_NO_FLUSH)
        }

        /// Compresses `input` (an array).
        public func compress(_ input: [UInt8]) throws(Gzip.Error) -> [UInt8] {
            let r: Result<[UInt8], Gzip.Error> = input.withUnsafeBytes { b in
                Result { () throws(Gzip.Error) in try compress(b) }
            }
            return try r.get()
        }

        /// Ends the stream: returns the remaining compressed bytes and the gzip trailer.
        public func finish() throws(Gzip.Error) -> [UInt8] {
            precondition(!finished, "the compressor is finished")
            finished = true
            return try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH)
        }

        private func run(_ input: UnsafeRawBufferPointer, flush: Int32) throws(Gzip.Error) -> [UInt8] {
            var produced: [UInt8] = []
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.pointee.avail_in = UInt32(input.count)
            while true {
                let (rc, n, full) = out.withUnsafeMutableBufferPointer { o -> (Int32, Int, Bool) in
                    stream.pointee.next_out = o.baseAddress
                    stream.pointee.avail_out = UInt32(o.count)
                    let rc = deflate(stream, flush)
                    return (rc, o.count - Int(stream.pointee.avail_out), stream.pointee.avail_out == 0)
                }
                produced.append(contentsOf: out[0..<n])
                if flush == Z_FINISH {
                    if rc == Z_STREAM_END { break }
                    guard rc == Z_OK || rc == Z_BUF_ERROR else {
                        throw Error(code: .failure, reason: "deflate failed (\(rc))")
                    }
                } else {
                    guard rc == Z_OK || rc == Z_BUF_ERROR else {
                        throw Error(code: .failure, reason: "deflate failed (\(rc))")
                    }
                    // All input consumed and room left in the output: deflate holds the rest.
                    if stream.pointee.avail_in == 0 && !full { break }
                }
            }
            stream.pointee.next_in = nil
            return produced
        }
    }

    /// Decompresses one gzip member of at most `limit` bytes of output.
    public static func decompress(_ input: [UInt8], limit: Int) throws(Gzip.Error) -> [UInt8] {
        let inflater = try Inflater(limit: limit)
        var out = [UInt8]()
        do {
            try input.withUnsafeBytes { src in try inflater.feed(src) { out.append(contentsOf: $0) } }
        } catch let e as Gzip.Error { throw e } catch {
            throw Error(code: .failure, reason: "\(error)")  // unreachable: appending does not throw
        }
        try inflater.finish()
        return out
    }

    /// Inflates one gzip member fed in pieces, handing the output on in pieces of at most 64 KiB,
    /// so a large object is decompressed without holding it or its output.
    ///
    /// Contract: the same rules as ``Gzip/decompress(_:limit:)``: more than `limit` bytes of output
    /// throw `gzip.too_large` before the piece that crosses the bound is handed on; bytes after the
    /// member's end, a bad header or CRC throw `gzip.corrupt`; ``finish()`` throws `gzip.corrupt`
    /// when the member has not ended (truncated). Errors thrown by the output closure are
    /// rethrown unchanged. Not thread-safe: one stream, fed in order.
    /// - SeeAlso: `Protocol/SPEC.md` §6 round 6, §9 "Bounded memory".
    public final class Inflater {
        private var stream = z_stream()
        private var chunk = [UInt8](repeating: 0, count: 1 << 16)
        private var produced = 0
        private var ended = false
        /// The most output bytes this inflater hands on before throwing `gzip.too_large`.
        public let limit: Int

        /// An inflater for one gzip member (the gzip wrapper only, no zlib or raw deflate) whose
        /// output may total at most `limit` bytes.
        /// - Throws: `gzip.failure` when zlib cannot initialise the stream.
        public init(limit: Int) throws(Gzip.Error) {
            self.limit = limit
            // windowBits 15 + 16: the gzip wrapper only (no zlib or raw deflate).
            guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw Error(code: .failure, reason: "inflateInit2 failed")
            }
        }

        deinit { inflateEnd(&stream) }

        /// Bytes of output so far.
        public var outputCount: Int { produced }

        /// Feeds compressed bytes; `output` receives every inflated piece in order.
        public func feed(_ input: UnsafeRawBufferPointer, _ output: (UnsafeRawBufferPointer) throws -> Void) throws {
            guard input.count > 0 else { return }
            if ended { throw Error(code: .corrupt, reason: "trailing bytes after the gzip stream") }
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = UInt32(input.count)
            defer {
                stream.next_in = nil
                stream.avail_in = 0
            }
            while true {
                let (rc, n, full) = chunk.withUnsafeMutableBufferPointer { c -> (Int32, Int, Bool) in
                    stream.next_out = c.baseAddress
                    stream.avail_out = UInt32(c.count)
                    let rc = inflate(&stream, Z_NO_FLUSH)
                    return (rc, c.count - Int(stream.avail_out), stream.avail_out == 0)
                }
                // Z_BUF_ERROR with no output and no input left only means "feed me more".
                guard rc == Z_OK || rc == Z_STREAM_END || (rc == Z_BUF_ERROR && n == 0 && stream.avail_in == 0) else {
                    throw Error(code: .corrupt, reason: "not a valid gzip stream")
                }
                guard produced + n <= limit else {
                    throw Error(code: .tooLarge, reason: "decompressed size exceeds \(limit) bytes")
                }
                produced += n
                if n > 0 { try chunk.withUnsafeBytes { try output(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
                if rc == Z_STREAM_END {
                    ended = true
                    guard stream.avail_in == 0 else {
                        throw Error(code: .corrupt, reason: "trailing bytes after the gzip stream")
                    }
                    return
                }
                if stream.avail_in == 0 && !full { return }
            }
        }

        /// Checks that the member ended (its CRC and length were verified by zlib).
        public func finish() throws(Gzip.Error) {
            guard ended else { throw Error(code: .corrupt, reason: "gzip stream is truncated") }
        }
    }
}
