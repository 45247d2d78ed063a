import Foundation
import RistrettoPSI

/// A bucket and key prefix, from `s3://bucket/prefix`.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public let bucket: String
    /// No leading or trailing slash; may be empty.
    public let prefix: String
    public init(bucket: String, prefix: String) throws(AWSError) {
        // DNS-compatible bucket names (S3 "Bucket naming rules"), so virtual-hosted URLs are valid.
        guard (3...63).contains(bucket.count), bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }),
              bucket.first!.isLetter || bucket.first!.isNumber else {
            throw AWSError(.configuration, "'\(bucket)' is not a valid S3 bucket name")
        }
        let p = prefix.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        guard !p.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw AWSError(.configuration, "an S3 prefix may not contain . or .. segments")
        }
        self.bucket = bucket; self.prefix = p
    }
    /// Parses `s3://bucket[/prefix]`.
    public init(uri: String) throws(AWSError) {
        guard uri.hasPrefix("s3://") else { throw AWSError(.configuration, "'\(uri)' is not an s3:// URI") }
        let rest = uri.dropFirst(5)
        let bucket = rest.prefix { $0 != "/" }
        try self.init(bucket: String(bucket), prefix: String(rest.dropFirst(bucket.count)))
    }
    /// `prefix/components…`.
    public func key(_ components: String...) -> String { ([prefix] + components).filter { !$0.isEmpty }.joined(separator: "/") }
    public var description: String { prefix.isEmpty ? "s3://\(bucket)" : "s3://\(bucket)/\(prefix)" }
}

/// S3 REST calls signed with SigV4 (S3 rules). Writes only: PutObject, CreateMultipartUpload,
/// UploadPart, CompleteMultipartUpload, AbortMultipartUpload. The coordinator holds only this
/// type for the provider's bucket, so it cannot issue a GET, a LIST or a DeleteObject there (the
/// only `DELETE` it can send is AbortMultipartUpload, which names an upload ID and deletes no
/// object).
/// - SeeAlso: `Protocol/SPEC.md` §12.4 "S3 writes".
public struct S3Writer: Sendable {
    public let endpoints: AWSEndpoints
    public let bucket: String
    let http: AWSHTTP
    let credentials: any CredentialProvider
    /// Objects larger than this go up as multipart uploads.
    public let multipartThreshold: Int
    /// Every part but the last is exactly this size (S3's minimum is 5 MiB).
    public let partSize: Int
    /// Parts uploaded at once.
    public let parallelParts: Int
    public static let minimumPartSize = 5 * 1024 * 1024

    public init(endpoints: AWSEndpoints, bucket: String, http: AWSHTTP, credentials: any CredentialProvider,
                multipartThreshold: Int = 16 * 1024 * 1024, partSize: Int = 8 * 1024 * 1024, parallelParts: Int = 4) {
        self.endpoints = endpoints; self.bucket = bucket; self.http = http; self.credentials = credentials
        self.partSize = max(partSize, Self.minimumPartSize)
        self.multipartThreshold = max(multipartThreshold, self.partSize)
        self.parallelParts = max(1, parallelParts)
    }

    var signer: SigV4Signer { SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock) }

    /// How an object write ended.
    public enum WriteResult: Sendable, Equatable {
        case written
        /// A retry after a lost response found the object present: our earlier attempt applied it.
        /// (The coordinator may not read the bucket to compare; the manifest's SHA-256 lets the
        /// provider check.)
        case writtenByEarlierAttempt
    }

    /// Writes one object, never overwriting: PutObject with `If-None-Match: *`, or a multipart
    /// upload above ``multipartThreshold``. Throws ``AWSError/Code/alreadyExists`` when the object
    /// was there before this call.
    public func put(key: String, bytes: [UInt8], contentType: String = "application/octet-stream") throws(AWSError) -> WriteResult {
        if bytes.count > multipartThreshold { return try multipart(key: key, bytes: bytes, contentType: contentType) }
        let digest = SHA256.hash(bytes)
        let headers: [(name: String, value: String)] = [
            ("Content-Type", contentType), ("If-None-Match", "*"),
            ("x-amz-checksum-sha256", Data(digest).base64EncodedString()),
        ]
        let (r, ambiguous) = try send("PutObject \(key)", method: "PUT", key: key, query: "", headers: headers, body: bytes,
                                      payloadSHA256: Hex.encode(digest))
        return try conditionalResult("PutObject \(key)", r, ambiguous: ambiguous)
    }

    /// A 2xx is written; a 412 after an attempt whose answer was lost is our own earlier write;
    /// a 412 on a first answer means the object was there before.
    func conditionalResult(_ op: String, _ r: HTTPResponse, ambiguous: Bool) throws(AWSError) -> WriteResult {
        if (200..<300).contains(r.status) { return .written }
        let e = AWSHTTP.failure(op, r)
        if e.code == .alreadyExists && ambiguous { return .writtenByEarlierAttempt }
        throw e
    }

    /// Multipart: create, upload parts in parallel (each signed with its SHA-256), complete with
    /// the part list under `If-None-Match: *`; abort on any failure so no unfinished upload is left.
    func multipart(key: String, bytes: [UInt8], contentType: String) throws(AWSError) -> WriteResult {
        let op = "CreateMultipartUpload \(key)"
        let (created, _) = try send(op, method: "POST", key: key, query: "uploads=", headers: [("Content-Type", contentType)],
                                    body: [], payloadSHA256: SigV4Signer.emptySHA256)
        guard (200..<300).contains(created.status) else { throw AWSHTTP.failure(op, created) }
        guard let uploadID = XMLText.first("UploadId", in: created.body) else { throw AWSError(.responseMalformed, "\(op): no UploadId") }
        let q = "uploadId=\(SigV4Signer.uriEncode(uploadID, keepSlash: false))"
        do throws(AWSError) {
            let count = (bytes.count + partSize - 1) / partSize
            let etags = try uploadParts(key: key, bytes: bytes, count: count, uploadQuery: q)
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for (i, e) in etags.enumerated() { xml += "<Part><PartNumber>\(i + 1)</PartNumber><ETag>\(XMLText.escape(e))</ETag></Part>" }
            xml += "</CompleteMultipartUpload>"
            let body = Array(xml.utf8)
            let cop = "CompleteMultipartUpload \(key)"
            let (r, ambiguous) = try send(cop, method: "POST", key: key, query: q, headers: [("If-None-Match", "*"), ("Content-Type", "application/xml")],
                                          body: body, payloadSHA256: Hex.encode(SHA256.hash(body)))
            // S3 can answer 200 with an <Error> body for CompleteMultipartUpload.
            if r.status == 200, XMLText.first("Code", in: r.body) != nil, XMLText.first("Location", in: r.body) == nil {
                throw AWSHTTP.failure(cop, HTTPResponse(status: 500, headers: r.headers, body: r.body))
            }
            if r.status == 404 && ambiguous { return .writtenByEarlierAttempt } // NoSuchUpload: our lost completion applied
            return try conditionalResult(cop, r, ambiguous: ambiguous)
        } catch {
            abort(key: key, uploadQuery: q)
            throw error
        }
    }

    func uploadParts(key: String, bytes: [UInt8], count: Int, uploadQuery: String) throws(AWSError) -> [String] {
        let results = PartResults(count: count)
        let group = DispatchGroup()
        let slots = DispatchSemaphore(value: parallelParts)
        let writer = self
        for i in 0..<count {
            if results.failed { break }
            slots.wait()
            group.enter()
            let slice = Array(bytes[(i * partSize)..<min(bytes.count, (i + 1) * partSize)])
            DispatchQueue.global().async {
                defer { slots.signal(); group.leave() }
                if results.failed { return }
                let op = "UploadPart \(i + 1)/\(count) \(key)"
                do throws(AWSError) {
                    let (r, _) = try writer.send(op, method: "PUT", key: key, query: "partNumber=\(i + 1)&\(uploadQuery)", headers: [],
                                                 body: slice, payloadSHA256: Hex.encode(SHA256.hash(slice)))
                    guard (200..<300).contains(r.status) else { throw AWSHTTP.failure(op, r) }
                    guard let etag = r.headers["etag"] else { throw AWSError(.responseMalformed, "\(op): no ETag") }
                    results.set(i, .success(etag))
                } catch { results.set(i, .failure(error)) }
            }
        }
        group.wait()
        return try results.get()
    }

    /// Best effort: an abort that fails leaves the upload to the bucket's lifecycle rule (the
    /// README's set-up adds `AbortIncompleteMultipartUpload`).
    func abort(key: String, uploadQuery: String) {
        _ = try? send("AbortMultipartUpload \(key)", method: "DELETE", key: key, query: uploadQuery, headers: [], body: [],
                      payloadSHA256: SigV4Signer.emptySHA256)
    }

    /// One signed request with retries; fresh credentials per attempt, refreshed once more when the
    /// service says the token expired. Returns the final answer and whether an earlier attempt's
    /// answer was lost (so a conditional failure may be our own write).
    func send(_ op: String, method: String, key: String, query: String, headers: [(name: String, value: String)], body: [UInt8],
              payloadSHA256: String) throws(AWSError) -> (HTTPResponse, ambiguous: Bool) {
        let (url, path, host) = endpoints.objectURL(bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: query)
        let signer = self.signer
        var expiredOnce = false
        while true {
            let (r, _, lost) = try http.withRetries(operation: op) { _ throws(AWSError) in
                http.attempt(method: method, url: url, path: path, query: query, host: host, headers: headers, body: body,
                             payloadSHA256: payloadSHA256, signer: signer, credentials: try credentials.credentials())
            }
            let code = XMLText.first("Code", in: r.body)
            if !expiredOnce, r.status == 400 || r.status == 403, code == "ExpiredToken" || code == "TokenRefreshRequired" {
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
        private var anyFailed = false
        init(count: Int) { values = Array(repeating: nil, count: count) }
        var failed: Bool { lock.lock(); defer { lock.unlock() }; return anyFailed }
        func set(_ i: Int, _ r: Result<String, AWSError>) {
            lock.lock(); values[i] = r
            if case .failure = r { anyFailed = true }
            lock.unlock()
        }
        func get() throws(AWSError) -> [String] {
            lock.lock(); defer { lock.unlock() }
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
    public let endpoints: AWSEndpoints
    public let bucket: String
    let http: AWSHTTP
    let credentials: any CredentialProvider
    public init(endpoints: AWSEndpoints, bucket: String, http: AWSHTTP, credentials: any CredentialProvider) {
        self.endpoints = endpoints; self.bucket = bucket; self.http = http; self.credentials = credentials
    }

    public func get(key: String) throws(AWSError) -> [UInt8] {
        let op = "GetObject \(key)"
        let (url, path, host) = endpoints.objectURL(bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: "")
        let signer = SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock)
        let (r, _, _) = try http.withRetries(operation: op) { _ throws(AWSError) in
            http.attempt(method: "GET", url: url, path: path, query: "", host: host, headers: [], body: [],
                         payloadSHA256: SigV4Signer.emptySHA256, signer: signer, credentials: try credentials.credentials())
        }
        guard (200..<300).contains(r.status) else { throw AWSHTTP.failure(op, r) }
        return r.body
    }

    /// HeadObject: whether `key` exists. S3 answers 404 for a missing key only to a caller
    /// allowed to list the prefix; otherwise 403, which is thrown (`aws.s3.access_denied`), never
    /// taken for "absent".
    public func exists(key: String) throws(AWSError) -> Bool {
        let op = "HeadObject \(key)"
        let (url, path, host) = endpoints.objectURL(bucket: bucket, encodedKey: SigV4Signer.uriEncode(key, keepSlash: true), query: "")
        let signer = SigV4Signer(region: endpoints.region, service: "s3", rules: .s3, clock: http.clock)
        let (r, _, _) = try http.withRetries(operation: op) { _ throws(AWSError) in
            http.attempt(method: "HEAD", url: url, path: path, query: "", host: host, headers: [], body: [],
                         payloadSHA256: SigV4Signer.emptySHA256, signer: signer, credentials: try credentials.credentials())
        }
        if (200..<300).contains(r.status) { return true }
        if r.status == 404 { return false }
        throw AWSHTTP.failure(op, r)
    }
}
