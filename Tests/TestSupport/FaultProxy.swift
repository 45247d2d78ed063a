import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP proxy that injects faults between the S3 client and the real S3 server.
///
/// Each request is read whole (honouring `Expect: 100-continue`), matched against the rules in
/// order, and either answered by the proxy (an error status, a reset) or forwarded upstream with
/// `Connection: close`, the answer read to EOF and relayed (or dropped, or delayed). One request
/// per connection. Only 127.0.0.1; every loop is bounded by the rules' `times`.
public final class FaultProxy: @unchecked Sendable {
    /// What the proxy does to a request a rule matches, instead of forwarding it as it is.
    public enum Fault: Sendable {
        /// Answer with this status and S3 error code, without forwarding.
        case status(Int, code: String)
        /// Close the connection with a TCP reset before forwarding anything.
        case reset
        /// Forward (the server applies the request), then reset instead of answering.
        case lostResponse
        /// Wait, then forward and answer: a slow server.
        case delay(TimeInterval)
        /// Answer with this status and body (a stand-in for a call the server cannot serve).
        case respond(Int, body: String)
        /// Answer with these bytes exactly, then close (status line and headers included): the
        /// HTTP client's tests shape answers no S3 server would.
        case raw([UInt8])
    }
    /// A fault for the requests `matches` accepts, the first `times` of them.
    public struct Rule: Sendable {
        /// Whether the rule applies to a request, given its method and request-line target (path and query).
        public let matches: @Sendable (_ method: String, _ target: String) -> Bool
        /// What to do to a matching request.
        public let fault: Fault
        /// How many more matching requests get the fault; the proxy counts down its own copy of the rule.
        public var times: Int
        /// A rule for the first `times` requests `matches` accepts.
        public init(
            times: Int = 1, fault: Fault, matches: @escaping @Sendable (_ method: String, _ target: String) -> Bool
        ) {
            self.times = times
            self.fault = fault
            self.matches = matches
        }
    }

    /// The loopback port the proxy listens on, chosen by the system.
    public let port: UInt16
    /// The proxy's base URL, to give the client as its S3 endpoint in place of the server's.
    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }
    let upstreamHost: String
    let upstreamPort: UInt16
    let listener: Int32
    let lock = NSLock()
    var rules: [Rule]
    /// (method, target, what happened) for each request, in order; written and read under `lock`
    /// only (the request threads append while a test may read ``actions``).
    private var log: [(method: String, target: String, action: String)] = []
    /// Each request's bytes as the client sent them (head and body), in order.
    private var receivedRequests: [[UInt8]] = []
    /// Each request's bytes as the client sent them (head and body), in order; a copy taken under the lock.
    public var received: [[UInt8]] {
        lock.lock()
        defer { lock.unlock() }
        return receivedRequests
    }

    /// Starts listening on 127.0.0.1 and accepting connections on a background thread.
    ///
    /// - Parameters:
    ///   - upstream: the real server; only its host and port (80 if absent) are used, and a host other
    ///     than `localhost` must be an IPv4 address.
    ///   - rules: tried in order for each request; the first that matches and has `times` left applies.
    /// - Throws: `POSIXError` when the listening socket cannot be made (``Loopback/listen(backlog:)``).
    public init(upstream: URL, rules: [Rule]) throws {
        upstreamHost = upstream.host ?? "127.0.0.1"
        upstreamPort = UInt16(upstream.port ?? 80)
        self.rules = rules
        (listener, port) = try Loopback.listen(backlog: 64)
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    /// Stops accepting; connections in flight finish on their own.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// What the proxy did, as one line per request.
    public var actions: [String] {
        lock.lock()
        defer { lock.unlock() }
        return log.map { "\($0.method) \($0.target) → \($0.action)" }
    }

    func acceptLoop() {
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 { return }
            let t = Thread { [self] in handle(c) }
            t.start()
        }
    }

    func nextFault(_ method: String, _ target: String) -> Fault? {
        lock.lock()
        defer { lock.unlock() }
        for i in rules.indices where rules[i].times > 0 && rules[i].matches(method, target) {
            rules[i].times -= 1
            return rules[i].fault
        }
        return nil
    }

    func record(_ method: String, _ target: String, _ action: String) {
        lock.lock()
        log.append((method, target, action))
        lock.unlock()
    }

    func handle(_ c: Int32) {
        defer { close(c) }
        guard let req = readRequest(c) else { return }
        lock.lock()
        receivedRequests.append(req.raw)
        lock.unlock()
        let fault = nextFault(req.method, req.target)
        switch fault {
        case .status(let status, let code)?:
            record(req.method, req.target, "\(status) \(code)")
            let body =
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>\(code)</Code><Message>injected by the fault proxy</Message></Error>"
            writeAll(
                c,
                Array(
                    "HTTP/1.1 \(status) Injected\r\nContent-Type: application/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                        .utf8))
        case .respond(let status, let body)?:
            record(req.method, req.target, "answered \(status)\(req.hasAuthorization ? "" : " (unsigned request)")")
            writeAll(
                c,
                Array(
                    "HTTP/1.1 \(status) Canned\r\nContent-Type: text/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
                        .utf8))
        case .raw(let bytes)?:
            record(req.method, req.target, "answered raw")
            writeAll(c, bytes)
        case .reset?:
            record(req.method, req.target, "reset")
            reset(c)
        case .lostResponse?:
            _ = forward(req.bytes)
            record(req.method, req.target, "applied, response lost")
            reset(c)
        case .delay(let s)?:
            record(req.method, req.target, "delayed \(s)s")
            Thread.sleep(forTimeInterval: s)
            if let r = forward(req.bytes) { writeAll(c, r) }
        case nil:
            record(req.method, req.target, "forwarded")
            if let r = forward(req.bytes) { writeAll(c, r) }
        }
    }

    /// SO_LINGER 0: close sends RST, as a crashed peer or a middlebox would.
    func reset(_ c: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }

    struct Request {
        let method: String
        let target: String
        let bytes: [UInt8]
        let hasAuthorization: Bool
        let raw: [UInt8]
    }

    func readRequest(_ c: Int32) -> Request? {
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        while headerEnd == nil {
            let n = read(c, &chunk, chunk.count)
            if n <= 0 { return nil }
            buf += chunk[0..<n]
            headerEnd = Self.find([13, 10, 13, 10], in: buf)
        }
        let head = String(decoding: buf[0..<headerEnd!], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        var length = 0
        var expect = false
        lines = lines.filter { line in
            let lower = line.lowercased()
            if lower.hasPrefix("content-length:") {
                length = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
            if lower.hasPrefix("expect:") {
                expect = true
                return false
            }
            if lower.hasPrefix("connection:") { return false }
            return true
        }
        let rawHead = Array(buf[0..<(headerEnd! + 4)])
        var body = Array(buf[(headerEnd! + 4)...])
        if expect && body.count < length { writeAll(c, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) }
        while body.count < length {
            let n = read(c, &chunk, chunk.count)
            if n <= 0 { return nil }
            body += chunk[0..<n]
        }
        let newHead =
            ([requestLine.joined(separator: " ")] + lines + ["Connection: close"]).joined(separator: "\r\n")
            + "\r\n\r\n"
        return Request(
            method: String(requestLine[0]), target: String(requestLine.count > 1 ? requestLine[1] : ""),
            bytes: Array(newHead.utf8) + body,
            hasAuthorization: lines.contains { $0.lowercased().hasPrefix("authorization:") },
            raw: rawHead + body)
    }

    func forward(_ bytes: [UInt8]) -> [UInt8]? {
        let u = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(u) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr(upstreamHost == "localhost" ? "127.0.0.1" : upstreamHost)
        addr.sin_port = upstreamPort.bigEndian
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(u, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard ok == 0 else { return nil }
        writeAll(u, bytes)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(u, &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return out
    }

    func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    /// The index of the first occurrence of `needle` in `hay`, or nil: where an HTTP head's CRLF CRLF
    /// starts. `needle` must not be empty.
    public static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count)
        where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}
