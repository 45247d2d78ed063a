import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange over URLSession (FoundationNetworking, libcurl underneath on Linux).
///
/// Why URLSession is enough here: no body is larger than one multipart part or one object under
/// the multipart threshold (read from the object's content just before it is sent), and
/// downloads are asked for in ranges, so a `Data` body per request keeps memory bounded without a
/// streaming client; custom headers (`Host`, `If-None-Match`, `If-Match`, `Range`, `x-amz-*`) pass
/// through unchanged; status, headers and body of error responses are all visible. A shared
/// ephemeral session with no cache keeps conditional headers from being answered locally.
struct HTTPResponse: Sendable {
    let status: Int
    /// Lowercased names.
    let headers: [String: String]
    let body: [UInt8]
}

/// A transport-level failure (no HTTP status): refused, reset, timed out, lost.
struct TransportFailure: Error, Sendable {
    let reason: String
}

final class HTTPClient: Sendable {
    let session: URLSession
    let timeout: TimeInterval

    init(timeout: TimeInterval) {
        let c = URLSessionConfiguration.ephemeral
        c.requestCachePolicy = .reloadIgnoringLocalCacheData
        c.urlCache = nil
        c.timeoutIntervalForRequest = timeout
        c.timeoutIntervalForResource = timeout * 4
        c.httpMaximumConnectionsPerHost = 8
        session = URLSession(configuration: c)
        self.timeout = timeout
    }

    deinit { session.finishTasksAndInvalidate() }

    /// Sends the request and waits for the whole response. Blocking: call it from a thread that
    /// may block (the CLI's, a Dispatch worker's), never from a Swift concurrency task.
    func send(method: String, url: URL, headers: [(name: String, value: String)], body: [UInt8]) throws(TransportFailure) -> HTTPResponse {
        var req = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        req.httpMethod = method
        for h in headers { req.setValue(h.value, forHTTPHeaderField: h.name) }
        if !body.isEmpty || method == "PUT" || method == "POST" { req.httpBody = Data(body) }
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let task = session.dataTask(with: req) { data, response, error in
            if let error {
                box.set(.failure(TransportFailure(reason: (error as NSError).localizedDescription)))
            } else if let http = response as? HTTPURLResponse {
                var hs: [String: String] = [:]
                for (k, v) in http.allHeaderFields { hs[String(describing: k).lowercased()] = String(describing: v) }
                box.set(.success(HTTPResponse(status: http.statusCode, headers: hs, body: data.map { Array($0) } ?? [])))
            } else {
                box.set(.failure(TransportFailure(reason: "no HTTP response")))
            }
            done.signal()
        }
        task.resume()
        done.wait()
        return try box.get()
    }

    private final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<HTTPResponse, TransportFailure> = .failure(TransportFailure(reason: "no answer"))
        func set(_ v: Result<HTTPResponse, TransportFailure>) { lock.lock(); value = v; lock.unlock() }
        func get() throws(TransportFailure) -> HTTPResponse {
            lock.lock(); defer { lock.unlock() }
            return try value.get()
        }
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
        while let open = rest.range(of: "<\(tag)>"), let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            out.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return out
    }

    /// The byte range of the first element's text, so secrets can be copied straight into
    /// zeroing memory without an intermediate String.
    static func firstRange(_ tag: String, in body: [UInt8]) -> Range<Int>? {
        let open = Array("<\(tag)>".utf8), close = Array("</\(tag)>".utf8)
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
