import Foundation
import RistrettoPSI

/// A bucket and key prefix, from `s3://bucket/prefix`.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    /// The bucket name, valid under S3's naming rules for general purpose buckets (``bucketNameProblem(_:)``).
    public let bucket: String
    /// No leading or trailing slash; may be empty.
    public let prefix: String
    /// Checks the bucket name and normalises the prefix (empty segments, leading and trailing
    /// slashes dropped).
    /// - Throws: `.configuration` naming the rule, for a bucket name S3 would refuse
    ///   (``bucketNameProblem(_:)``) or a prefix with a `.` or `..` segment.
    public init(bucket: String, prefix: String) throws(AWSError) {
        if let problem = Self.bucketNameProblem(bucket) {
            throw AWSError(.configuration, "'\(bucket)' is not a valid S3 bucket name: \(problem)")
        }
        let p = prefix.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        guard !p.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw AWSError(.configuration, "an S3 prefix may not contain . or .. segments")
        }
        self.bucket = bucket
        self.prefix = p
    }
    /// The first of S3's naming rules for general purpose buckets that `name` breaks, or nil: so a
    /// bad name is refused when the agreement or the command is read, with the rule, not later by
    /// S3 (or by a TLS name check of a virtual-hosted URL). Rules from the Amazon S3 User Guide,
    /// "General purpose bucket naming rules".
    public static func bucketNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        func isAlnum(_ b: UInt8) -> Bool { (0x61...0x7a).contains(b) || (0x30...0x39).contains(b) }
        guard (3...63).contains(bytes.count) else { return "it must be 3 to 63 characters long" }
        guard bytes.allSatisfy({ isAlnum($0) || $0 == 0x2e || $0 == 0x2d }) else {
            return "only lowercase letters, digits, '.' and '-' are allowed"
        }
        guard isAlnum(bytes.first!), isAlnum(bytes.last!) else { return "it must begin and end with a letter or digit" }
        guard !name.contains("..") else { return "it must not contain two adjacent periods" }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count == 4, labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) && $0.count <= 3 }) {
            return "it must not be formatted as an IP address"
        }
        for reserved in ["xn--", "sthree-", "amzn-s3-demo-"] where name.hasPrefix(reserved) {
            return "the prefix '\(reserved)' is reserved"
        }
        for reserved in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] where name.hasSuffix(reserved) {
            return "the suffix '\(reserved)' is reserved"
        }
        return nil
    }

    /// Parses `s3://bucket[/prefix]`.
    public init(uri: String) throws(AWSError) {
        guard uri.hasPrefix("s3://") else { throw AWSError(.configuration, "'\(uri)' is not an s3:// URI") }
        let rest = uri.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        try self.init(bucket: String(bucket), prefix: String(rest.dropFirst(bucket.count)))
    }
    /// `prefix/components…`.
    public func key(_ components: String...) -> String {
        ([prefix] + components).filter { !$0.isEmpty }.joined(separator: "/")
    }
    /// `s3://bucket`, or `s3://bucket/prefix`.
    public var description: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }
}

/// S3 REST calls signed with SigV4 (S3 rules). Writes only: PutObject, CreateMultipartUpload,
/// UploadPart, CompleteMultipartUpload, AbortMultipartUpload. The coordinator holds only this
/// type for the provider's bucket, so it cannot issue a GET, a LIST or a DeleteObject there (the
/// only `DELETE` it can send is AbortMultipartUpload, which names an upload ID and deletes no
/// object).
/// - SeeAlso: `Protocol/SPEC.md` §12.4 "S3 writes".
public struct S3Writer: Sendable {
    /// Where the requests go, and the region they are signed for.
    public let endpoints: AWSEndpoints
    /// The bucket every object is written into.
    public let bucket: String
    let http: AWSHTTP
    let credentials: any CredentialProvider
    /// Objects larger than this go up as multipart uploads.
    public let multipartThreshold: Int
    /// Every part but the last is exactly this size (S3's minimum is 5 MiB).
    public let partSize: Int
    /// Parts uploaded at once.
    public let parallelParts: Int
    /// S3's minimum size for every part but the last (5 MiB); a smaller `partSize` is raised to it.
    public static let minimumPartSize = 5 * 1024 * 1024

    /// Sends nothing yet. Sizes are clamped: `partSize` to at least ``minimumPartSize``,
    /// `multipartThreshold` to at least the part size, `parallelParts` to at least 1. `credentials`
    /// is asked again before every attempt, so a refreshing provider keeps long uploads signed.
    public init(
        endpoints: AWSEndpoints, bucket: String, http: AWSHTTP, credentials: any CredentialProvider,
        multipartThreshold: Int = 16 * 1024 * 1024, partSize: Int = 8 * 1024 * 1024, parallelParts: Int = 4
    ) {
        self.endpoints = endpoints
        self.bucket = bucket
        self.http = http
        self.credentials = credentials
        self.partSize = max(partSize, Self.minimumPartSize)
        self.multipartThreshold = max(multipartThreshold, self.partSize)
        self.parallelParts = max(1, parallelParts)
    }

    var signer: SigV4Signer { SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock) }

    /// How an object write ended.
    public enum WriteResult: Sendable, Equatable {
        /// The object was written, and this call saw the service's answer saying so.
        case written
        /// A retry after a lost response found the object present: our earlier attempt applied it.
        /// (The coordinator may not read the bucket to compare; the manifest's SHA-256 lets the
        /// provider check.)
        case writtenByEarlierAttempt
    }

    /// Writes one object, never overwriting: PutObject with `If-None-Match: *`, or a multipart
    /// upload above ``multipartThreshold``. Throws ``AWSError/Code/alreadyExists`` when the object
    /// was there before this call.
    public func put(key: String, bytes: [UInt8], contentType: String = "application/octet-stream") throws(AWSError)
        -> WriteResult
    {
        if bytes.count > multipartThreshold {
            let reader = BodyReaderLock { offset, buffer in
                bytes.withUnsafeBytes {
                    buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + buffer.count)]))
                }
            }
            do {
                return try multipart(key: key, size: bytes.count, sha256: nil, contentType: contentType, reader: reader)
                // unreachable: the array reader does not throw
            } catch let e as AWSError { throw e } catch { throw AWSError(.requestFailed, "\(key): \(error)") }
        }
        let digest = SHA256.hash(bytes)
        let headers: [(name: String, value: String)] = [
            ("Content-Type", contentType), ("If-None-Match", "*"),
            ("x-amz-checksum-sha256", Data(digest).base64EncodedString()),
        ]
        let (r, ambiguous) = try send(
            "PutObject \(key)", method: "PUT", key: key, query: "", headers: headers, body: bytes,
            payloadSHA256: Hex.encode(digest))
        return try conditionalResult("PutObject \(key)", r, ambiguous: ambiguous)
    }

    /// Reads an upload's body in pieces: fills the whole `buffer` with the bytes at `offset`, or
    /// throws. Called from more than one thread (parts go up in parallel), never at once: the
    /// writer serialises the calls.
    public typealias BodyReader = @Sendable (_ offset: Int, _ buffer: UnsafeMutableRawBufferPointer) throws -> Void

    /// Writes one object of `size` bytes read in pieces through `read`, never holding it whole:
    /// up to ``multipartThreshold`` it is read once and sent as one PutObject (its SHA-256 in
    /// `x-amz-checksum-sha256`, `If-None-Match: *`); above, as a multipart upload whose parts are
    /// read as they are sent, so at most ``parallelParts`` parts are in memory. A part that is
    /// retried is read again and must hash as it did the first time.
    ///
    /// - Parameters:
    ///   - key: the object key, not URI-encoded (it is encoded once here, `/` kept).
    ///   - size: the object's length in bytes, not negative (a precondition); `read` is asked for
    ///     exactly these bytes.
    ///   - sha256: when given, the SHA-256 the bytes read must have: checked before
    ///     PutObject, and over the parts in order before CompleteMultipartUpload, so an object is
    ///     never committed with bytes other than the ones its caller hashed.
    ///   - contentType: the object's `Content-Type`.
    ///   - read: fills each piece of the body; see ``BodyReader``.
    /// - Returns: ``WriteResult/writtenByEarlierAttempt`` when a retry found the write its lost
    ///   answer had made, else ``WriteResult/written``.
    /// - Throws: what `read` throws (the upload is aborted); ``AWSError/Code/bodyChanged`` when the
    ///   bytes read do not match `sha256` or a retried part reads differently; the errors of
    ///   ``put(key:bytes:contentType:)``.
    /// - SeeAlso: `Protocol/SPEC.md` §12.4 "S3 writes".
    public func put(
        key: String, size: Int, sha256: [UInt8]? = nil, contentType: String = "application/octet-stream",
        read: @escaping BodyReader
    ) throws -> WriteResult {
        precondition(size >= 0)
        let reader = BodyReaderLock(read)
        if size > multipartThreshold {
            return try multipart(key: key, size: size, sha256: sha256, contentType: contentType, reader: reader)
        }
        var body = [UInt8](repeating: 0, count: size)
        if size > 0 { try body.withUnsafeMutableBytes { try reader.read(0, $0) } }
        if let sha256, SHA256.hash(body) != sha256 {
            throw AWSError(
                .bodyChanged,
                "PutObject \(key): the bytes read do not match their expected SHA-256; nothing was written")
        }
        return try put(key: key, bytes: body, contentType: contentType)
    }

    /// Serialises a ``BodyReader``'s calls (a scratch file's reader is not safe to call at once).
    final class BodyReaderLock: @unchecked Sendable {
        private let lock = NSLock()
        private let body: BodyReader
        init(_ body: @escaping BodyReader) { self.body = body }
        func read(_ offset: Int, _ buffer: UnsafeMutableRawBufferPointer) throws {
            lock.lock()
            defer { lock.unlock() }
            try body(offset, buffer)
        }
    }

    /// A 2xx is written; a 412 after an attempt whose answer was lost is our own earlier write;
    /// a 412 on a first answer means the object was there before.
    func conditionalResult(_ op: String, _ r: HTTPResponse, ambiguous: Bool) throws(AWSError) -> WriteResult {
        if (200..<300).contains(r.status) { return .written }
        let e = AWSHTTP.failure(op, r)
        if e.code == .alreadyExists && ambiguous { return .writtenByEarlierAttempt }
        throw e
    }

    /// Multipart: create, upload parts in parallel (each read when its turn comes and signed with
    /// its SHA-256), complete with the part list under `If-None-Match: *`; abort on any failure so
    /// no unfinished upload is left.
    func multipart(key: String, size: Int, sha256: [UInt8]?, contentType: String, reader: BodyReaderLock) throws
        -> WriteResult
    {
        let op = "CreateMultipartUpload \(key)"
        let (created, _) = try send(
            op, method: "POST", key: key, query: "uploads=", headers: [("Content-Type", contentType)],
            body: [], payloadSHA256: SigV4Signer.emptySHA256)
        guard (200..<300).contains(created.status) else { throw AWSHTTP.failure(op, created) }
        guard let uploadID = XMLText.first("UploadId", in: created.body) else {
            throw AWSError(.responseMalformed, "\(op): no UploadId")
        }
        let q = "uploadId=\(SigV4Signer.uriEncode(uploadID, keepSlash: false))"
        do {
            let count = (size + partSize - 1) / partSize
            let etags = try uploadParts(
                key: key, size: size, count: count, sha256: sha256, uploadQuery: q, reader: reader)
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, e) in etags.enumerated() {
                xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(XMLText.escape(e))</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let body = Array(xml.utf8)
            let cop = "CompleteMultipartUpload \(key)"
            let (r, ambiguous) = try send(
                cop, method: "POST", key: key, query: q,
                headers: [("If-None-Match", "*"), ("Content-Type", "application/xml")],
                body: body, payloadSHA256: Hex.encode(SHA256.hash(body)))
            // S3 can answer 200 with an <Error> body for CompleteMultipartUpload.
            if r.status == 200, XMLText.first("Code", in: r.body) != nil, XMLText.first("Location", in: r.body) == nil {
                throw AWSHTTP.failure(cop, HTTPResponse(status: 500, headers: r.headers, body: r.body))
            }
            // NoSuchUpload: our lost completion applied
            if r.status == 404 && ambiguous { return .writtenByEarlierAttempt }
            return try conditionalResult(cop, r, ambiguous: ambiguous)
        } catch {
            abort(key: key, uploadQuery: q)
            throw error
        }
    }

    /// Reads the parts in order on the calling thread (feeding the whole object's SHA-256) and
    /// sends each from a worker, at most ``parallelParts`` at once: the only parts in memory.
    func uploadParts(key: String, size: Int, count: Int, sha256: [UInt8]?, uploadQuery: String, reader: BodyReaderLock)
        throws -> [String]
    {
        let results = PartResults(count: count)
        let group = DispatchGroup()
        let slots = DispatchSemaphore(value: parallelParts)
        let writer = self
        var whole = SHA256.Hasher()
        var readFailure: (any Error)?
        for i in 0..<count {
            if results.failed { break }
            slots.wait()
            let offset = i * partSize
            var bytes = [UInt8](repeating: 0, count: min(size, offset + partSize) - offset)
            do { try bytes.withUnsafeMutableBytes { try reader.read(offset, $0) } } catch {
                slots.signal()
                readFailure = error
                results.stop()
                break
            }
            whole.update(bytes)
            let part = PartBody(bytes)
            group.enter()
            DispatchQueue.global().async {
                defer {
                    slots.signal()
                    group.leave()
                }
                if results.failed { return }
                let op = "UploadPart \(i + 1)/\(count) \(key)"
                do throws(AWSError) {
                    let (r, _) = try writer.send(
                        op, method: "PUT", key: key, query: "partNumber=\(i + 1)&\(uploadQuery)", headers: [],
                        payloadSHA256: part.sha256Hex
                    ) { attempt throws(AWSError) in
                        try part.bytes(attempt: attempt, op: op) { b in try reader.read(offset, b) }
                    }
                    guard (200..<300).contains(r.status) else { throw AWSHTTP.failure(op, r) }
                    guard let etag = r.headers["etag"] else { throw AWSError(.responseMalformed, "\(op): no ETag") }
                    results.set(i, .success(etag))
                } catch { results.set(i, .failure(error)) }
                part.release()
            }
        }
        group.wait()
        if let readFailure { throw readFailure }
        let etags = try results.get()
        if let sha256, whole.finalize() != sha256 {
            throw AWSError(
                .bodyChanged,
                "CompleteMultipartUpload \(key): the parts read do not match the object's expected SHA-256; nothing was committed"
            )
        }
        return etags
    }

    /// One part's bytes while it is being sent: the first attempt sends what was read; a retry
    /// reads the part again (a lost answer may come long after the first read) and refuses bytes
    /// that no longer hash to the SHA-256 the request is signed with.
    final class PartBody: @unchecked Sendable {
        private var held: [UInt8]
        let size: Int
        let sha256Hex: String
        init(_ bytes: [UInt8]) {
            held = bytes
            size = bytes.count
            sha256Hex = Hex.encode(SHA256.hash(bytes))
        }
        func bytes(attempt: Int, op: String, read: (UnsafeMutableRawBufferPointer) throws -> Void) throws(AWSError)
            -> [UInt8]
        {
            if attempt == 0 { return held }
            held = []
            var again = [UInt8](repeating: 0, count: size)
            do { try again.withUnsafeMutableBytes { try read($0) } } catch {
                throw AWSError(.bodyChanged, "\(op): the part cannot be read again for a retry (\(error))")
            }
            guard Hex.encode(SHA256.hash(again)) == sha256Hex else {
                throw AWSError(.bodyChanged, "\(op): the part read again for a retry differs from the first read")
            }
            held = again
            return again
        }
        func release() { held = [] }
    }

    /// Best effort: an abort that fails leaves the upload to the bucket's lifecycle rule (the
    /// README's set-up adds `AbortIncompleteMultipartUpload`).
    func abort(key: String, uploadQuery: String) {
        _ = try? send(
            "AbortMultipartUpload \(key)", method: "DELETE", key: key, query: uploadQuery, headers: [], body: [],
            payloadSHA256: SigV4Signer.emptySHA256)
    }

    /// One signed request with retries; fresh credentials per attempt, refreshed once more when the
    /// service says the token expired. Returns the final answer and whether an earlier attempt's
    /// answer was lost (so a conditional failure may be our own write).
    func send(
        _ op: String, method: String, key: String, query: String, headers: [(name: String, value: String)],
        body: [UInt8],
        payloadSHA256: String
    ) throws(AWSError) -> (HTTPResponse, ambiguous: Bool) {
        try send(op, method: method, key: key, query: query, headers: headers, payloadSHA256: payloadSHA256) {
            _ throws(AWSError) in body
        }
    }

    /// As ``send(_:method:key:query:headers:body:payloadSHA256:)``, the body produced per attempt
    /// (`attempt` counts every attempt of this call from 0), so a retried part can be read again.
    func send(
        _ op: String, method: String, key: String, query: String, headers: [(name: String, value: String)],
        payloadSHA256: String, body: (_ attempt: Int) throws(AWSError) -> [UInt8]
    ) throws(AWSError) -> (HTTPResponse, ambiguous: Bool) {
        let (url, path, host) = endpoints.objectURL(
            bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: query)
        let signer = self.signer
        var expiredOnce = false
        var attempts = 0
        while true {
            let (r, _, lost) = try http.withRetries(operation: op) { _ throws(AWSError) in
                let b = try body(attempts)
                attempts += 1
                return http.attempt(
                    method: method, url: url, path: path, query: query, host: host, headers: headers, body: b,
                    payloadSHA256: payloadSHA256, signer: signer, credentials: try credentials.credentials())
            }
            let code = XMLText.first("Code", in: r.body)
            if !expiredOnce, r.status == 400 || r.status == 403,
                code == "ExpiredToken" || code == "TokenRefreshRequired"
            {
                expiredOnce = true
                (credentials as? AssumedRoleCredentials)?.invalidate()
                continue
            }
            return (r, lost)
        }
    }

    final class PartResults: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [Result<String, AWSError>?]
        private var stopped = false
        private var anyFailed = false
        init(count: Int) { values = Array(repeating: nil, count: count) }
        var failed: Bool {
            lock.lock()
            defer { lock.unlock() }
            return anyFailed || stopped
        }
        /// No more parts will be sent (reading one failed): the workers still queued give up.
        func stop() {
            lock.lock()
            stopped = true
            lock.unlock()
        }
        func set(_ i: Int, _ r: Result<String, AWSError>) {
            lock.lock()
            values[i] = r
            if case .failure = r { anyFailed = true }
            lock.unlock()
        }
        func get() throws(AWSError) -> [String] {
            lock.lock()
            defer { lock.unlock() }
            var out: [String] = []
            for v in values {
                switch v {
                case .success(let e): out.append(e)
                case .failure(let e): throw e
                case nil: throw AWSError(.requestFailed, "a part was not uploaded (an earlier part failed)")
                }
            }
            return out
        }
    }
}

/// GetObject with the bucket owner's own credentials: what `provider open` uses. Never given
/// to the coordinator.
public struct S3Reader: Sendable {
    /// Where the requests go, and the region they are signed for.
    public let endpoints: AWSEndpoints
    /// The bucket every object is read from.
    public let bucket: String
    let http: AWSHTTP
    let credentials: any CredentialProvider
    /// Sends nothing yet; `credentials` (the bucket owner's own) are asked before every attempt.
    public init(endpoints: AWSEndpoints, bucket: String, http: AWSHTTP, credentials: any CredentialProvider) {
        self.endpoints = endpoints
        self.bucket = bucket
        self.http = http
        self.credentials = credentials
    }

    /// GetObject in one request: for small objects (a manifest). An answer larger than 64 MiB is
    /// refused (`aws.response_malformed`, SPEC §12 "HTTP"); ``download(key:rangeSize:expect:write:)``
    /// reads an object of any size.
    public func get(key: String) throws(AWSError) -> [UInt8] {
        let op = "GetObject \(key)"
        let (url, path, host) = endpoints.objectURL(
            bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: "")
        let signer = SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock)
        let (r, _, _) = try http.withRetries(operation: op) { _ throws(AWSError) in
            http.attempt(
                method: "GET", url: url, path: path, query: "", host: host, headers: [], body: [],
                payloadSHA256: SigV4Signer.emptySHA256, signer: signer, credentials: try credentials.credentials())
        }
        guard (200..<300).contains(r.status) else { throw AWSHTTP.failure(op, r) }
        return r.body
    }

    /// Ranges a streamed download asks for.
    public static let defaultRangeSize = 8 * 1024 * 1024

    /// GetObject in ranges (`Range: bytes=a-b`) of at most `rangeSize` bytes, each retried on its
    /// own and handed to `write` in order, so the object is never held whole. Every range after
    /// the first carries `If-Match` with the first answer's ETag: an object replaced mid-download
    /// fails with ``AWSError/Code/objectChanged`` instead of mixing two versions.
    ///
    /// - Parameters:
    ///   - key: the object key, not URI-encoded (it is encoded once here, `/` kept).
    ///   - rangeSize: the most bytes asked for per request; must be positive (a precondition).
    ///   - expect: called once with the object's size (from `Content-Range`) before any
    ///     byte is handed on; it may throw to stop (e.g. a size other than a manifest says).
    ///   - write: receives the object's bytes in order, one answer at a time; the buffer is valid
    ///     only during the call. It may throw to stop.
    /// - Returns: the object's size.
    /// - Throws: what `expect` or `write` throw; ``AWSError`` as ``get(key:)``.
    /// - SeeAlso: `Protocol/SPEC.md` §12.4 "Reads".
    public func download(
        key: String, rangeSize: Int = defaultRangeSize, expect: (Int) throws -> Void = { _ in },
        write: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Int {
        precondition(rangeSize > 0)
        var offset = 0
        var total: Int?
        var etag: String?
        repeat {
            let op = "GetObject \(key) bytes \(offset)-"
            var headers = [(name: "Range", value: "bytes=\(offset)-\(offset + rangeSize - 1)")]
            if let etag { headers.append((name: "If-Match", value: etag)) }
            let r = try request(op, method: "GET", key: key, headers: headers)
            switch r.status {
            case 206:
                guard let cr = r.headers["content-range"], let (start, end, size) = Self.contentRange(cr),
                    start == offset,
                    end - start + 1 == r.body.count, total == nil || total == size
                else {
                    throw AWSError(
                        .responseMalformed, "\(op): the answer's Content-Range does not match the range asked for")
                }
                if total == nil {
                    try expect(size)
                    total = size
                    etag = r.headers["etag"]
                }
                try r.body.withUnsafeBytes { try write($0) }
                offset += r.body.count
            case 200 where offset == 0:
                // A server that ignores Range answers with the whole object.
                try expect(r.body.count)
                try r.body.withUnsafeBytes { try write($0) }
                return r.body.count
            case 416 where offset == 0:
                // S3 answers InvalidRange to any range of an empty object.
                let whole = try get(key: key)
                try expect(whole.count)
                try whole.withUnsafeBytes { try write($0) }
                return whole.count
            case 412 where etag != nil:
                throw AWSError(
                    .objectChanged, "\(op): the object changed while it was being read (its ETag no longer matches)")
            default:
                throw AWSHTTP.failure(op, r)
            }
        } while offset < total!
        return total!
    }

    /// `bytes <first>-<last>/<size>` → (first, last, size).
    static func contentRange(_ v: String) -> (Int, Int, Int)? {
        let t = v.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("bytes ") else { return nil }
        let parts = t.dropFirst(6).split(separator: "/")
        guard parts.count == 2, let size = Int(parts[1]) else { return nil }
        let se = parts[0].split(separator: "-")
        guard se.count == 2, let a = Int(se[0]), let b = Int(se[1]), a >= 0, b >= a, b < size else { return nil }
        return (a, b, size)
    }

    func request(_ op: String, method: String, key: String, headers: [(name: String, value: String)]) throws(AWSError)
        -> HTTPResponse
    {
        let (url, path, host) = endpoints.objectURL(
            bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: "")
        let signer = SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock)
        let (r, _, _) = try http.withRetries(operation: op) { _ throws(AWSError) in
            http.attempt(
                method: method, url: url, path: path, query: "", host: host, headers: headers, body: [],
                payloadSHA256: SigV4Signer.emptySHA256, signer: signer, credentials: try credentials.credentials())
        }
        return r
    }

    /// HeadObject: whether `key` exists. S3 answers 404 for a missing key only to a caller
    /// allowed to list the prefix; otherwise 403, which is thrown (`aws.s3.access_denied`), never
    /// taken for "absent".
    public func exists(key: String) throws(AWSError) -> Bool {
        let op = "HeadObject \(key)"
        let (url, path, host) = endpoints.objectURL(
            bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: "")
        let signer = SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock)
        let (r, _, _) = try http.withRetries(operation: op) { _ throws(AWSError) in
            http.attempt(
                method: "HEAD", url: url, path: path, query: "", host: host, headers: [], body: [],
                payloadSHA256: SigV4Signer.emptySHA256, signer: signer, credentials: try credentials.credentials())
        }
        if (200..<300).contains(r.status) { return true }
        if r.status == 404 { return false }
        throw AWSHTTP.failure(op, r)
    }
}
