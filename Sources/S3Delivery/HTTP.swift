internal import CCurl
import Foundation

/// One HTTP exchange's answer.
struct HTTPResponse: Sendable {
    let status: Int
    /// Lowercased names; a name sent more than once has its values joined with ", " (RFC 9110 §5.3).
    let headers: [String: String]
    let body: [UInt8]
}

/// A failure with no HTTP status: refused, reset, timed out, lost (retryable), or one that another
/// attempt cannot mend (no libcurl on this machine, an answer larger than any S3 answer we ask for).
struct TransportFailure: Error, Sendable {
    enum Kind: Sendable {
        /// Refused, reset, timed out, lost: worth another attempt.
        case transport
        /// libcurl could not be loaded, or the CA bundle named by `AWS_CA_BUNDLE` could not be
        /// read: a machine's configuration, not the network.
        case unavailable
        /// The answer's body is larger than ``HTTPClient/maxResponseBytes``.
        case tooLarge
        /// The server's TLS certificate did not verify against the trusted CAs: the same server
        /// would be refused again, so no retry (a wrong endpoint, or an intercepting proxy whose CA
        /// is not in `AWS_CA_BUNDLE`).
        case untrusted
    }
    let reason: String
    var kind: Kind = .transport

    /// The error for a failure another attempt cannot mend (it would meet the same machine or
    /// the same server), with its stable code; nil for one worth retrying.
    func permanentError(_ operation: String) -> AWSError? {
        switch kind {
        case .transport: nil
        case .unavailable: AWSError(.configuration, "\(operation): \(reason)")
        case .tooLarge: AWSError(.responseMalformed, "\(operation): \(reason)")
        case .untrusted: AWSError(.network, "\(operation): \(reason)")
        }
    }
}

/// One HTTP exchange at a time per calling thread, over libcurl opened with `dlopen` on first use.
///
/// Why libcurl directly rather than URLSession: FoundationNetworking links libcurl, so the loader
/// mapped libcurl and the 28 libraries it needs into every process, those holding a party's secret scalar
/// included (≈ 5 MiB resident each, BENCHMARKS.md "libcurl only where S3 is used"); here only a
/// process that sends an S3 or STS request loads it. Why whole bodies are enough: no request
/// body is larger than one multipart part or one object under the multipart threshold, and
/// downloads are asked for in ranges, so memory stays bounded without a streaming client (an
/// answer larger than ``maxResponseBytes`` is refused, not buffered). Headers pass through as
/// given (`Host`, `If-None-Match`, `If-Match`, `Range`, `x-amz-*`); libcurl adds no `Accept` and no
/// `Expect: 100-continue`. Redirects are not followed, only http and https are spoken, TLS peers
/// and host names are verified (libcurl's defaults, set explicitly), HTTP/1.1 as S3 speaks it.
/// Easy handles are pooled, so connections are reused between requests.
/// - SeeAlso: `Protocol/SPEC.md` §12 "HTTP".
final class HTTPClient: Sendable {
    let timeout: TimeInterval
    /// The largest answer body accepted: S3 answers carry at most one range
    /// (``S3Client/defaultRangeSize``) or one small object (a manifest, an XML document).
    let maxResponseBytes: Int
    let libraryPath: String
    /// A PEM file of CA certificates trusted instead of the system's (`AWS_CA_BUNDLE`, as the AWS
    /// CLI and SDKs read it: an intercepting proxy's CA, a private endpoint's); nil: the system's.
    let caBundle: String?
    private let pool = HandlePool()

    /// - Parameters:
    ///   - timeout: connecting, and the longest stretch with no byte moving; a whole exchange
    ///     may take four times as long (as URLSession's request and resource timeouts did).
    ///   - maxResponseBytes: the largest answer body accepted (64 MiB by default).
    ///   - libraryPath: what `dlopen` opens (tests name a missing one).
    ///   - caBundle: CA certificates to trust instead of the system's (``caBundle``).
    init(
        timeout: TimeInterval, maxResponseBytes: Int = 64 << 20, libraryPath: String = Curl.defaultPath,
        caBundle: String? = nil
    ) {
        self.timeout = Self.clamped(timeout)
        self.maxResponseBytes = maxResponseBytes
        self.libraryPath = libraryPath
        self.caBundle = caBundle
    }

    deinit { pool.drain() }

    /// Sends the request and waits for the whole response. Blocking: call it from a thread that
    /// may block (the CLI's, a Dispatch worker's), never from a Swift concurrency task.
    func send(method: String, url: URL, headers: [(name: String, value: String)], body: [UInt8])
        throws(TransportFailure) -> HTTPResponse
    {
        let curl = try Curl.opened(libraryPath)
        guard let handle = pool.take(curl) else {
            throw TransportFailure(reason: "libcurl could not create a transfer (out of memory)")
        }
        defer { pool.give(handle, curl) }
        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl.freeList(list) }
        // libcurl reads "Name:" as "remove Name" and "Name;" as "send Name empty"; the removals
        // keep libcurl from adding headers of its own (a POST's form Content-Type included).
        var removals = ["Expect:", "Accept:"]
        if !headers.contains(where: { $0.name.lowercased() == "content-type" }) { removals.append("Content-Type:") }
        for line in headers.map({ $0.value.isEmpty ? "\($0.name);" : "\($0.name): \($0.value)" }) + removals {
            guard let l = curl.append(list, line) else {
                throw TransportFailure(reason: "libcurl could not hold the request's headers (out of memory)")
            }
            list = l
        }
        let transfer = Transfer(limit: maxResponseBytes, bodyExpected: method != "HEAD")
        let result: CURLcode = body.withUnsafeBytes { raw in
            transfer.upload = raw
            defer { transfer.upload = UnsafeRawBufferPointer(start: nil, count: 0) }
            let user = Unmanaged.passUnretained(transfer).toOpaque()
            let set = Options(curl: curl, handle: handle)
            set.string(CURLOPT_URL, url.absoluteString)
            set.long(CURLOPT_NOSIGNAL, 1)
            set.string(CURLOPT_PROTOCOLS_STR, "http,https", optional: true)
            set.long(CURLOPT_FOLLOWLOCATION, 0)
            set.long(CURLOPT_SSL_VERIFYPEER, 1)
            set.long(CURLOPT_SSL_VERIFYHOST, 2)
            if let caBundle {
                // Instead of the system's CAs, as the AWS CLI reads AWS_CA_BUNDLE: Debian's libcurl
                // also trusts the hashed directory /etc/ssl/certs (CURLOPT_CAPATH) unless told not to.
                set.string(CURLOPT_CAINFO, caBundle)
                set.none(CURLOPT_CAPATH)
            }
            set.long(CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1)
            let seconds = timeout
            let ms = Int((seconds * 1000).rounded(.up))
            set.long(CURLOPT_CONNECTTIMEOUT_MS, ms)
            set.long(CURLOPT_TIMEOUT_MS, ms * 4)
            set.long(CURLOPT_LOW_SPEED_LIMIT, 1)
            set.long(CURLOPT_LOW_SPEED_TIME, max(1, Int(seconds.rounded(.up))))
            set.list(CURLOPT_HTTPHEADER, list)
            set.callback(CURLOPT_WRITEFUNCTION, Transfer.receiveBody)
            set.pointer(CURLOPT_WRITEDATA, user)
            set.callback(CURLOPT_HEADERFUNCTION, Transfer.receiveHeader)
            set.pointer(CURLOPT_HEADERDATA, user)
            set.pointer(CURLOPT_ERRORBUFFER, transfer.errorBuffer)
            switch method {
            case "GET":
                set.long(CURLOPT_HTTPGET, 1)
            case "HEAD":
                set.long(CURLOPT_NOBODY, 1)
            case "PUT":
                set.long(CURLOPT_UPLOAD, 1)
                set.offset(CURLOPT_INFILESIZE_LARGE, raw.count)
            case "POST":
                set.long(CURLOPT_POST, 1)
                set.offset(CURLOPT_POSTFIELDSIZE_LARGE, raw.count)
            default:
                set.string(CURLOPT_CUSTOMREQUEST, method)
                if raw.count > 0 {
                    set.long(CURLOPT_UPLOAD, 1)
                    set.offset(CURLOPT_INFILESIZE_LARGE, raw.count)
                }
            }
            set.callback(CURLOPT_READFUNCTION, Transfer.sendBody)
            set.pointer(CURLOPT_READDATA, user)
            set.seek(CURLOPT_SEEKFUNCTION, Transfer.rewind)
            set.pointer(CURLOPT_SEEKDATA, user)
            if let refused = set.refused { return refused }
            return withExtendedLifetime(transfer) { cr_curl_easy_perform(curl.api, handle) }
        }
        if transfer.overLimit {
            throw TransportFailure(
                reason: "the answer's body is larger than \(maxResponseBytes) bytes", kind: .tooLarge)
        }
        switch result {
        case CURLE_OK: break
        case CURLE_PEER_FAILED_VERIFICATION:
            throw TransportFailure(
                reason: "the server's TLS certificate is not trusted (\(transfer.errorMessage)); "
                    + "if an intercepting proxy or a private CA is expected, name its certificates in AWS_CA_BUNDLE",
                kind: .untrusted)
        case CURLE_SSL_CACERT_BADFILE:
            throw TransportFailure(
                reason: "the CA bundle \(caBundle ?? "of the system") could not be read (\(transfer.errorMessage))",
                kind: .unavailable)
        default:
            throw TransportFailure(reason: curl.describe(result, detail: transfer.errorMessage))
        }
        var status = 0
        _ = cr_curl_getinfo_long(curl.api, handle, CURLINFO_RESPONSE_CODE, &status)
        guard status > 0 else { throw TransportFailure(reason: "no HTTP response") }
        return HTTPResponse(status: status, headers: transfer.headers, body: transfer.body)
    }

    /// The per-request timeout, in seconds, within what libcurl's millisecond options hold (a day
    /// at most; NaN and infinities included, which the environment may spell).
    static func clamped(_ timeout: TimeInterval) -> TimeInterval {
        guard timeout.isFinite else { return timeout.isNaN ? 30 : (timeout > 0 ? 86_400 : 0.1) }
        return min(max(timeout, 0.1), 86_400)
    }

    /// What one transfer's callbacks read from and write to; libcurl calls them on the thread
    /// that runs `curl_easy_perform`, so no lock is needed.
    private final class Transfer {
        let limit: Int
        /// False for HEAD, whose Content-Length is the object's size, not a body on its way.
        let bodyExpected: Bool
        var upload = UnsafeRawBufferPointer(start: nil, count: 0)
        var sent = 0
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        var overLimit = false
        let errorBuffer: UnsafeMutableRawPointer

        init(limit: Int, bodyExpected: Bool) {
            self.limit = limit
            self.bodyExpected = bodyExpected
            errorBuffer = .allocate(byteCount: Int(CURL_ERROR_SIZE), alignment: 1)
            errorBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(CURL_ERROR_SIZE))
        }
        deinit { errorBuffer.deallocate() }

        var errorMessage: String {
            String(cString: errorBuffer.assumingMemoryBound(to: CChar.self)).trimmingCharacters(
                in: .whitespacesAndNewlines)
        }

        static func of(_ user: UnsafeMutableRawPointer?) -> Transfer {
            Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
        }

        /// Returning anything but the count given makes libcurl stop with `CURLE_WRITE_ERROR`.
        static let receiveBody: cr_curl_data_callback = { data, size, count, user in
            let t = of(user)
            let n = size * count
            guard t.body.count + n <= t.limit else {
                t.overLimit = true
                return 0
            }
            // Without a Content-Length, start at 16 KiB: an STS answer (its secret key inside)
            // then arrives into one allocation, not a chain of freed, unzeroed copies.
            if t.body.capacity == 0 { t.body.reserveCapacity(max(n, 16 << 10)) }
            if n > 0, let data { t.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n)) }
            return n
        }

        /// One header line per call, the status line included; a new status line (after an
        /// interim `100 Continue`) starts the set over.
        static let receiveHeader: cr_curl_data_callback = { data, size, count, user in
            let t = of(user)
            let n = size * count
            guard n > 0, let data else { return n }
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: n), as: UTF8.self)
            if line.hasPrefix("HTTP/") {
                t.headers = [:]
                return n
            }
            guard let colon = line.firstIndex(of: ":") else { return n }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            t.headers[name] = t.headers[name].map { "\($0), \(value)" } ?? value
            if name == "content-length", t.bodyExpected, let length = Int(value), length >= 0 {
                // An answer announced larger than the limit is refused before its body arrives;
                // one that fits is received into one allocation (no copies left behind by growth).
                guard length <= t.limit else {
                    t.overLimit = true
                    return 0
                }
                t.body.reserveCapacity(length)
            }
            return n
        }

        /// libcurl rewinds the body to send the request again on a fresh connection (a pooled one
        /// the server had closed); only a rewind to a point within the body is possible.
        static let rewind: cr_curl_seek_callback = { user, offset, origin in
            let t = of(user)
            // CURL_SEEKFUNC_CANTSEEK
            guard origin == SEEK_SET, offset >= 0, Int(offset) <= t.upload.count else { return 2 }
            t.sent = Int(offset)
            return 0  // CURL_SEEKFUNC_OK
        }

        static let sendBody: cr_curl_data_callback = { buffer, size, count, user in
            let t = of(user)
            let n = min(size * count, t.upload.count - t.sent)
            if n > 0, let buffer, let base = t.upload.baseAddress {
                UnsafeMutableRawPointer(buffer).copyMemory(from: base + t.sent, byteCount: n)
                t.sent += n
            }
            return n
        }
    }

    /// Sets one transfer's options, remembering the first one libcurl refused.
    private final class Options {
        let curl: Curl
        let handle: UnsafeMutableRawPointer
        private(set) var refused: CURLcode?
        init(curl: Curl, handle: UnsafeMutableRawPointer) {
            self.curl = curl
            self.handle = handle
        }

        private func check(_ r: CURLcode, optional: Bool = false) {
            if r != CURLE_OK && refused == nil && !(optional && r == CURLE_UNKNOWN_OPTION) { refused = r }
        }
        func long(_ o: CURLoption, _ v: Int) { check(cr_curl_setopt_long(curl.api, handle, o, v)) }
        func offset(_ o: CURLoption, _ v: Int) { check(cr_curl_setopt_off(curl.api, handle, o, curl_off_t(v))) }
        /// `optional`: an option older libcurls do not know (the protocols list, 7.85) is not an error.
        func string(_ o: CURLoption, _ v: String, optional: Bool = false) {
            check(cr_curl_setopt_string(curl.api, handle, o, v), optional: optional)
        }
        func pointer(_ o: CURLoption, _ v: UnsafeMutableRawPointer) {
            check(cr_curl_setopt_pointer(curl.api, handle, o, v))
        }
        /// A string option set to NULL: libcurl's way to turn it off (CURLOPT_CAPATH: the built-in directory).
        func none(_ o: CURLoption) { check(cr_curl_setopt_string(curl.api, handle, o, nil)) }
        func list(_ o: CURLoption, _ v: UnsafeMutablePointer<curl_slist>?) {
            check(cr_curl_setopt_slist(curl.api, handle, o, v))
        }
        func callback(_ o: CURLoption, _ v: cr_curl_data_callback) {
            check(cr_curl_setopt_callback(curl.api, handle, o, v))
        }
        func seek(_ o: CURLoption, _ v: cr_curl_seek_callback) { check(cr_curl_setopt_seek(curl.api, handle, o, v)) }
    }

    /// Idle easy handles: each keeps its connections, DNS and TLS session caches between requests.
    private final class HandlePool: @unchecked Sendable {
        private let lock = NSLock()
        private var idle: [(UnsafeMutableRawPointer, Curl)] = []
        static let keep = 16

        func take(_ curl: Curl) -> UnsafeMutableRawPointer? {
            lock.lock()
            let h = idle.popLast()
            lock.unlock()
            return h?.0 ?? cr_curl_easy_init(curl.api)
        }

        func give(_ handle: UnsafeMutableRawPointer, _ curl: Curl) {
            cr_curl_easy_reset(curl.api, handle)
            lock.lock()
            if idle.count < Self.keep {
                idle.append((handle, curl))
                lock.unlock()
                return
            }
            lock.unlock()
            cr_curl_easy_cleanup(curl.api, handle)
        }

        func drain() {
            lock.lock()
            let all = idle
            idle = []
            lock.unlock()
            for (h, curl) in all { cr_curl_easy_cleanup(curl.api, h) }
        }
    }
}

/// libcurl, opened once per process (per path) on the first request, and never closed: its
/// global state must outlive every handle.
final class Curl: @unchecked Sendable {
    /// Debian's `libcurl4` (OpenSSL flavour), the library `libcurl4-openssl-dev` builds against.
    static let defaultPath = "libcurl.so.4"
    /// The function table, written once before ``opened(_:)`` returns it and then only read, by
    /// any thread; never freed, as the library is never closed.
    let api: UnsafePointer<cr_curl_api>
    let version: String

    private init(api: cr_curl_api) {
        let table = UnsafeMutablePointer<cr_curl_api>.allocate(capacity: 1)
        table.initialize(to: api)
        self.api = UnsafePointer(table)
        version = String(cString: cr_curl_version(self.api))
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var opened: [String: Result<Curl, TransportFailure>] = [:]

    /// The library at `path`, opened and globally initialized the first time (under a lock, as
    /// `curl_global_init` requires); a failure is remembered and thrown again.
    static func opened(_ path: String) throws(TransportFailure) -> Curl {
        lock.lock()
        defer { lock.unlock() }
        if let known = opened[path] { return try known.get() }
        let result = open(path)
        opened[path] = result
        return try result.get()
    }

    private static func open(_ path: String) -> Result<Curl, TransportFailure> {
        var api = cr_curl_api()
        var message = [CChar](repeating: 0, count: 512)
        guard cr_curl_open(&api, path, &message, message.count) == 0 else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let why = text.isEmpty ? "unknown reason" : text
            return .failure(
                TransportFailure(
                    reason:
                        "S3 and STS requests need libcurl, and \(path) could not be loaded (\(why)); on Debian: apt-get install libcurl4",
                    kind: .unavailable))
        }
        let curl = Curl(api: api)
        let rc = cr_curl_global_init(curl.api, Int(CURL_GLOBAL_DEFAULT))
        guard rc == CURLE_OK else {
            return .failure(
                TransportFailure(
                    reason: "libcurl \(curl.version) did not initialize: \(curl.describe(rc, detail: ""))",
                    kind: .unavailable))
        }
        return .success(curl)
    }

    func append(_ list: UnsafeMutablePointer<curl_slist>?, _ line: String) -> UnsafeMutablePointer<curl_slist>? {
        cr_curl_slist_append(api, list, line)
    }

    /// Frees a header list, zeroing each line first: one may be a session token.
    func freeList(_ list: UnsafeMutablePointer<curl_slist>?) {
        var node = list
        while let n = node {
            if let s = n.pointee.data { memset(s, 0, strlen(s)) }
            node = n.pointee.next
        }
        cr_curl_slist_free_all(api, list)
    }

    func describe(_ code: CURLcode, detail: String) -> String {
        let general = String(cString: cr_curl_easy_strerror(api, code))
        return detail.isEmpty ? general : "\(general): \(detail)"
    }
}

/// The few XML elements S3 and STS answers carry, without a full XML parser: the text of the
/// first `<tag>…</tag>`, entities decoded.
enum XMLText {
    static func first(_ tag: String, in body: [UInt8]) -> String? {
        all(tag, in: body).first
    }

    static func all(_ tag: String, in body: [UInt8]) -> [String] {
        let s = String(decoding: body, as: UTF8.self)
        var out: [String] = []
        var rest = s[...]
        while let open = rest.range(of: "<\(tag)>"),
            let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex)
        {
            out.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// The byte range of the first element's text, so secrets can be copied straight into
    /// zeroing memory without an intermediate String.
    static func firstRange(_ tag: String, in body: [UInt8]) -> Range<Int>? {
        let open = Array("<\(tag)>".utf8)
        let close = Array("</\(tag)>".utf8)
        guard let a = find(open, in: body, from: 0) else { return nil }
        let start = a + open.count
        guard let b = find(close, in: body, from: start) else { return nil }
        return start..<b
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
