import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
@testable import S3Delivery

/// The HTTP client over libcurl (opened with `dlopen`), against ``FaultProxy`` answering on
/// loopback by itself: what goes on the wire, what comes back, and the failures another attempt
/// cannot mend. No S3 server needed; the S3 suites drive the same client against two.
/// - SeeAlso: `Protocol/SPEC.md` §12 "HTTP".
@Suite("HTTP client over libcurl", .serialized)
struct HTTPClientTests {
    /// Nothing listens on the discard port of loopback.
    static let nowhere = URL(string: "http://127.0.0.1:9")!

    func server(_ answers: [FaultProxy.Fault]) throws -> FaultProxy {
        try FaultProxy(upstream: Self.nowhere, rules: answers.map { .init(times: 1, fault: $0) { _, _ in true } })
    }

    static func head(_ request: [UInt8]) -> [String] {
        let text = String(decoding: request, as: UTF8.self)
        return text.components(separatedBy: "\r\n\r\n")[0].components(separatedBy: "\r\n")
    }

    @Test func statusHeadersAndBodyComeBack() throws {
        let body = "<Error><Code>NoSuchKey</Code></Error>"
        let s = try server([.respond(404, body: body)])
        defer { s.stop() }
        let r = try HTTPClient(timeout: 5).send(method: "GET", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
        #expect(r.status == 404)
        #expect(r.headers["content-type"] == "text/xml")
        #expect(r.headers["content-length"] == String(body.utf8.count))
        #expect(r.body == Array(body.utf8))
    }

    /// The request carries exactly the given headers and body: no `Expect: 100-continue` (a
    /// server that ignores it would stall each upload a second), no `Accept`, a Content-Length.
    @Test(arguments: ["PUT", "POST"])
    func bodyAndHeadersGoOutAsGiven(method: String) throws {
        let s = try server([.respond(200, body: "")])
        defer { s.stop() }
        let payload = Array(repeating: UInt8(ascii: "x"), count: 3 << 20) + Array("end".utf8)
        let r = try HTTPClient(timeout: 5).send(method: method, url: s.url.appendingPathComponent("b/k"),
                                                headers: [("Host", "127.0.0.1:\(s.port)"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                                                          ("Content-Type", "application/octet-stream")],
                                                body: payload)
        #expect(r.status == 200)
        let sent = try #require(s.received.first)
        let head = Self.head(sent)
        #expect(head[0] == "\(method) /b/k HTTP/1.1")
        #expect(head.contains("x-amz-content-sha256: UNSIGNED-PAYLOAD"))
        #expect(head.contains("Content-Type: application/octet-stream"))
        #expect(head.contains("Content-Length: \(payload.count)"))
        #expect(!head.contains { $0.lowercased().hasPrefix("expect:") })
        #expect(!head.contains { $0.lowercased().hasPrefix("accept:") })
        #expect(head.filter { $0.lowercased().hasPrefix("host:") } == ["Host: 127.0.0.1:\(s.port)"])
        #expect(Array(sent.suffix(payload.count)) == payload)
    }

    @Test func headAndDeleteSendNoBody() throws {
        let s = try server([.raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"e\"\r\nConnection: close\r\n\r\n".utf8)),
                            .respond(204, body: "")])
        defer { s.stop() }
        let client = HTTPClient(timeout: 5)
        let h = try client.send(method: "HEAD", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
        #expect(h.status == 200 && h.body.isEmpty && h.headers["etag"] == "\"e\"")
        let d = try client.send(method: "DELETE", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
        #expect(d.status == 204)
        let heads = s.received.map { Self.head($0) }
        #expect(heads.map { $0[0] } == ["HEAD /b/k HTTP/1.1", "DELETE /b/k HTTP/1.1"])
        #expect(s.received.allSatisfy { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\n") }, "no body after the head")
    }

    /// An interim `100 Continue` does not leak its headers into the answer; a name sent twice
    /// keeps both values (RFC 9110 §5.3).
    @Test func interimAnswerAndRepeatedHeaders() throws {
        let raw = "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\nHTTP/1.1 200 OK\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        let s = try server([.raw(Array(raw.utf8))])
        defer { s.stop() }
        let r = try HTTPClient(timeout: 5).send(method: "GET", url: s.url, headers: [], body: [])
        #expect(r.status == 200)
        #expect(r.headers["x-interim"] == nil)
        #expect(r.headers["x-amz-meta-a"] == "1, 2")
        #expect(r.body == Array("ok".utf8))
    }

    @Test func refusedConnectionIsARetryableTransportFailure() throws {
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 2).send(method: "GET", url: Self.nowhere, headers: [], body: [])
        }
        #expect(e?.kind == .transport)
        #expect(e?.reason.isEmpty == false)
    }

    /// Larger than the limit: refused whether the size is announced (Content-Length) or only
    /// seen while the body arrives (no length, read to the end of the connection).
    @Test(arguments: [true, false])
    func answerLargerThanTheLimitIsRefused(announced: Bool) throws {
        let body = String(repeating: "z", count: 5000)
        let raw = "HTTP/1.1 200 OK\r\n" + (announced ? "Content-Length: \(body.utf8.count)\r\n" : "") + "Connection: close\r\n\r\n" + body
        let s = try server([.raw(Array(raw.utf8)), .raw(Array(raw.utf8))])
        defer { s.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 5, maxResponseBytes: 4096).send(method: "GET", url: s.url, headers: [], body: [])
        }
        #expect(e?.kind == .tooLarge)
        #expect(e?.reason.contains("4096") == true)
        // At the limit exactly is accepted.
        let r = try HTTPClient(timeout: 5, maxResponseBytes: 5000).send(method: "GET", url: s.url, headers: [], body: [])
        #expect(r.body.count == 5000)
    }

    @Test func missingLibraryNamesThePackage() throws {
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 1, libraryPath: "libcurl-not-installed.so.4").send(method: "GET", url: Self.nowhere, headers: [], body: [])
        }
        #expect(e?.kind == .unavailable)
        #expect(e?.reason.contains("libcurl-not-installed.so.4") == true)
        #expect(e?.reason.contains("apt-get install libcurl4") == true)
    }

    /// Failures another attempt cannot mend stop at the first attempt, with their own codes;
    /// transport failures are retried.
    @Test(arguments: [(TransportFailure.Kind.unavailable, AWSError.Code.configuration, 1),
                      (.tooLarge, .responseMalformed, 1),
                      (.transport, .network, 3)])
    func retriesOnlyWhatAnotherAttemptCanMend(kind: TransportFailure.Kind, code: AWSError.Code, attempts: Int) throws {
        let http = AWSHTTP(timeout: 1, retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.001, maxDelay: 0.001))
        var made = 0
        let e = #expect(throws: AWSError.self) {
            _ = try http.withRetries(operation: "GetObject k") { _ throws(AWSError) in
                made += 1
                return .transport(TransportFailure(reason: "why", kind: kind))
            }
        }
        #expect(e?.code == code)
        #expect(e?.reason.hasPrefix("GetObject k") == true)
        #expect(made == attempts)
    }

    /// Connections are reused across requests (one easy handle pool per client): a server that
    /// keeps the connection open sees the second request on the same connection.
    @Test func requestsAfterTheFirstReuseTheConnection() throws {
        let server = try KeepAliveServer(answers: 3)
        defer { server.stop() }
        let client = HTTPClient(timeout: 5)
        for _ in 0..<3 {
            let r = try client.send(method: "GET", url: URL(string: "http://127.0.0.1:\(server.port)/x")!, headers: [], body: [])
            #expect(r.body == Array("k".utf8))
        }
        #expect(server.connections == 1)
    }
}

/// A loopback server that keeps connections open: it answers every bodiless request with
/// `200 k` and counts the connections it accepted.
final class KeepAliveServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var accepted = 0
    var connections: Int { lock.lock(); defer { lock.unlock() }; return accepted }

    init(answers: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0, listen(fd, 8) == 0 else { close(fd); throw POSIXError(.EADDRINUSE) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = UInt16(bigEndian: bound.sin_port)
        listener = fd
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                lock.lock(); accepted += 1; lock.unlock()
                Thread { Self.serve(c, answers: answers) }.start()
            }
        }.start()
    }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    private static func serve(_ c: Int32, answers: Int) {
        defer { close(c) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var left = answers
        while left > 0 {
            let n = read(c, &chunk, chunk.count)
            if n <= 0 { return }
            pending += chunk[0..<n]
            while let end = FaultProxy.find([13, 10, 13, 10], in: pending), left > 0 {
                pending.removeFirst(end + 4)
                left -= 1
                let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk".utf8)
                _ = answer.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }
}
