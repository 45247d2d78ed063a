import Foundation
import RistrettoPSI

/// An HTTP request as SigV4 sees it.
///
/// `path` and `query` are exactly what goes on the wire (percent-encoded; no `?`). Header names
/// keep their case here; the canonical form lowercases them.
public struct SigV4Request: Sendable {
    /// The HTTP method, as sent.
    public var method: String
    /// The path as sent, percent-encoded.
    public var path: String
    /// The query as sent, percent-encoded, without the `?`.
    public var query: String
    /// The headers in the order given; `sign` drops any `Authorization` and `X-Amz-Date`, then appends its own.
    public var headers: [(name: String, value: String)]
    /// Lowercase hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    public var payloadSHA256: String
    /// Takes the parts as given. Signing adds no `Host`: put it among `headers` to have it signed.
    public init(
        method: String, path: String, query: String = "", headers: [(name: String, value: String)],
        payloadSHA256: String
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payloadSHA256 = payloadSHA256
    }
    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// AWS Signature Version 4, written as its three documented stages: canonical request → string to
/// sign → signature, each a pure function tested on its own against the AWS test suite.
///
/// Contract: a value type; the clock is injected so tests pin the time. Thread-safe.
/// - SeeAlso: `Protocol/SPEC.md` §12.1 "SigV4"; AWS "Create a signed AWS API request";
///   S3 API Reference "Signature Calculations for the Authorization Header".
public struct SigV4Signer: Sendable {
    /// Which service's canonicalisation rules apply.
    public enum Rules: Sendable, Equatable {
        /// Every service but S3: the path is normalised (RFC 3986 dot segments, no empty segments)
        /// when `normalizePath`, then URI-encoded again (so an encoded `%20` becomes `%2520`).
        case generic(normalizePath: Bool)
        /// S3: the path is used exactly as sent (no normalisation, encoded once, by the caller),
        /// and `x-amz-content-sha256` is always sent and signed.
        case s3
    }

    /// The algorithm name that opens the string to sign and the `Authorization` header.
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// Hex SHA-256 of the empty string: the payload hash of a request without a body.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The region in the credential scope.
    public let region: String
    /// The service in the credential scope (`s3`, `sts`…).
    public let service: String
    /// The service's canonicalisation rules.
    public let rules: Rules
    let clock: @Sendable () -> Date

    /// A signer for one region and service; `clock` dates every signature (tests pin it).
    public init(region: String, service: String, rules: Rules, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.region = region
        self.service = service
        self.rules = rules
        self.clock = clock
    }

    // MARK: Stage 1: canonical request

    /// The canonical request and the signed-headers list (`host;x-amz-date`).
    public static func canonicalRequest(_ r: SigV4Request, rules: Rules) -> (text: String, signedHeaders: String) {
        let path: String
        switch rules {
        case .s3: path = r.path.isEmpty ? "/" : r.path
        case .generic(let normalize):
            path = uriEncode(normalize ? normalizedPath(r.path) : (r.path.isEmpty ? "/" : r.path), keepSlash: true)
        }
        var grouped: [String: [String]] = [:]
        var order: [String] = []
        for h in r.headers {
            let name = h.name.lowercased()
            if grouped[name] == nil { order.append(name) }
            grouped[name, default: []].append(trimmedValue(h.value))
        }
        let names = order.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let headers = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        let text = [r.method, path, canonicalQuery(r.query), headers, signed, r.payloadSHA256].joined(separator: "\n")
        return (text, signed)
    }

    // MARK: Stage 2: string to sign

    /// `AWS4-HMAC-SHA256 \n <amz-date> \n <scope> \n hex(SHA-256(canonical request))`.
    public static func stringToSign(canonicalRequest: String, amzDate: String, scope: String) -> String {
        [algorithm, amzDate, scope, Hex.encode(SHA256.hash(Array(canonicalRequest.utf8)))].joined(separator: "\n")
    }

    /// `<yyyymmdd>/<region>/<service>/aws4_request`.
    public static func scope(date: String, region: String, service: String) -> String {
        "\(date)/\(region)/\(service)/aws4_request"
    }

    // MARK: Stage 3: signature

    /// hex(HMAC(kSigning, string to sign)) with kSigning = HMAC chain over date, region, service,
    /// `aws4_request`, starting from `"AWS4" ‖ secret`. Intermediate keys are zeroed.
    public static func signature(
        stringToSign: String, credentials: AWSCredentials, date: String, region: String, service: String
    ) -> String {
        let secret = credentials.secretAccessKey
        let seed = SecureBytes(count: secret.count + 4) { dst in
            dst.copyBytes(from: Array("AWS4".utf8))
            secret.withUnsafeBytes { s in UnsafeMutableRawBufferPointer(rebasing: dst[4...]).copyMemory(from: s) }
        }
        var k = seed.withUnsafeBytes { key in Array(date.utf8).withUnsafeBytes { HMACSHA256.authenticate($0, key: key) }
        }
        for part in [region, service, "aws4_request"] {
            var next = HMACSHA256.authenticate(Array(part.utf8), key: k)
            SecureBytes.zero(&k)
            k = next
            SecureBytes.zero(&next)
        }
        defer { SecureBytes.zero(&k) }
        return Hex.encode(HMACSHA256.authenticate(Array(stringToSign.utf8), key: k))
    }

    // MARK: Whole request

    /// Adds `X-Amz-Date`, `X-Amz-Security-Token` (signed, unless `omitSessionToken`: then added
    /// after signing, as some services want), `x-amz-content-sha256` (always under S3 rules, else when
    /// `signPayloadHeader`) and `Authorization`.
    public func sign(
        _ r: SigV4Request, credentials: AWSCredentials, omitSessionToken: Bool = false,
        signPayloadHeader: Bool = false
    ) -> SigV4Request {
        var r = r
        let now = clock()
        let amzDate = Self.amzDate(now)
        let day = String(amzDate.prefix(8))
        r.headers.removeAll { ["authorization", "x-amz-date"].contains($0.name.lowercased()) }
        r.headers.append(("X-Amz-Date", amzDate))
        if rules == .s3 || signPayloadHeader, r.header("x-amz-content-sha256") == nil {
            r.headers.append(("x-amz-content-sha256", r.payloadSHA256))
        }
        let token = credentials.sessionTokenHeader()
        if let token, !omitSessionToken { r.headers.append(("X-Amz-Security-Token", token)) }
        let (canonical, signed) = Self.canonicalRequest(r, rules: rules)
        let scope = Self.scope(date: day, region: region, service: service)
        let sts = Self.stringToSign(canonicalRequest: canonical, amzDate: amzDate, scope: scope)
        let sig = Self.signature(
            stringToSign: sts, credentials: credentials, date: day, region: region, service: service)
        if let token, omitSessionToken { r.headers.append(("X-Amz-Security-Token", token)) }
        r.headers.append(
            (
                "Authorization",
                "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signed), Signature=\(sig)"
            ))
        return r
    }

    /// Query-string signing (a presigned request): the `X-Amz-*` parameters go in the query, the
    /// signature last; the headers given are the signed ones. CleanRoom does not hand out presigned
    /// URLs; this mode exists so the whole AWS test suite can be replayed.
    public func presign(_ r: SigV4Request, credentials: AWSCredentials, expires: Int, omitSessionToken: Bool = false)
        -> SigV4Request
    {
        var r = r
        let amzDate = Self.amzDate(clock())
        let day = String(amzDate.prefix(8))
        let scope = Self.scope(date: day, region: region, service: service)
        let signed = Set(r.headers.map { $0.name.lowercased() }).sorted().joined(separator: ";")
        var params = [
            ("X-Amz-Algorithm", Self.algorithm), ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            ("X-Amz-Date", amzDate), ("X-Amz-SignedHeaders", signed), ("X-Amz-Expires", String(expires)),
        ]
        let token = credentials.sessionTokenHeader()
        if let token, !omitSessionToken { params.append(("X-Amz-Security-Token", token)) }
        func encoded(_ ps: [(String, String)]) -> String {
            ps.map { "\(Self.uriEncode($0.0, keepSlash: false))=\(Self.uriEncode($0.1, keepSlash: false))" }.joined(
                separator: "&")
        }
        r.query = [r.query, encoded(params)].filter { !$0.isEmpty }.joined(separator: "&")
        let (canonical, _) = Self.canonicalRequest(r, rules: rules)
        let sig = Self.signature(
            stringToSign: Self.stringToSign(canonicalRequest: canonical, amzDate: amzDate, scope: scope),
            credentials: credentials, date: day, region: region, service: service)
        if let token, omitSessionToken { r.query += "&" + encoded([("X-Amz-Security-Token", token)]) }
        r.query += "&X-Amz-Signature=\(sig)"
        return r
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func amzDate(_ d: Date) -> String {
        var t = time_t(d.timeIntervalSince1970.rounded(.down))
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
    }

    // MARK: Encoding rules

    /// RFC 3986 percent-encoding of every byte outside `A–Z a–z 0–9 - . _ ~` (and `/` when
    /// `keepSlash`), uppercase hex: SigV4's `UriEncode`.
    public static func uriEncode(_ s: String, keepSlash: Bool) -> String {
        uriEncode(bytes: Array(s.utf8), keepSlash: keepSlash)
    }

    static func uriEncode(bytes: [UInt8], keepSlash: Bool) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in bytes {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where keepSlash: out.append(b)
            default: out += [UInt8(ascii: "%"), hex[Int(b >> 4)], hex[Int(b & 0x0f)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func percentDecode(_ s: Substring) -> [UInt8] {
        let u = Array(s.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "%"), i + 2 < u.count,
                let v = Hex.decode(String(decoding: u[(i + 1)...(i + 2)], as: UTF8.self))
            {
                out.append(v[0])
                i += 3
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return out
    }

    /// Removes `.` and `..` segments and empty segments; keeps a trailing slash.
    static func normalizedPath(_ p: String) -> String {
        var out: [Substring] = []
        for seg in p.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." {
                _ = out.popLast()
                continue
            }
            out.append(seg)
        }
        var r = "/" + out.joined(separator: "/")
        if p.hasSuffix("/") && r != "/" { r += "/" }
        return r
    }

    /// Parameters decoded, re-encoded strictly, sorted by name then value; `k` becomes `k=`.
    static func canonicalQuery(_ q: String) -> String {
        guard !q.isEmpty else { return "" }
        let pairs = q.split(separator: "&", omittingEmptySubsequences: true).map { item -> (String, String) in
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let k = uriEncode(bytes: percentDecode(kv[0]), keepSlash: false)
            let v = kv.count > 1 ? uriEncode(bytes: percentDecode(kv[1]), keepSlash: false) : ""
            return (k, v)
        }
        return pairs.sorted { a, b in
            a.0 == b.0
                ? Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8))
                : Array(a.0.utf8).lexicographicallyPrecedes(Array(b.0.utf8))
        }
        .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Trims the value and collapses runs of spaces/tabs/line breaks to one space.
    static func trimmedValue(_ v: String) -> String {
        v.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }
}
