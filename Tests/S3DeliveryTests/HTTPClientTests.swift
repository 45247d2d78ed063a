import Foundation
import TestSupport
import Testing

@testable import S3Delivery

#if canImport(Glibc)
import Glibc
#endif

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
        let r = try HTTPClient(timeout: 5).send(
            method: "GET", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
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
        let r = try HTTPClient(timeout: 5).send(
            method: method, url: s.url.appendingPathComponent("b/k"),
            headers: [
                ("Host", "127.0.0.1:\(s.port)"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                ("Content-Type", "application/octet-stream"),
            ],
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
        let s = try server([
            .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"e\"\r\nConnection: close\r\n\r\n".utf8)),
            .respond(204, body: ""),
        ])
        defer { s.stop() }
        let client = HTTPClient(timeout: 5)
        let h = try client.send(method: "HEAD", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
        #expect(h.status == 200 && h.body.isEmpty && h.headers["etag"] == "\"e\"")
        let d = try client.send(method: "DELETE", url: s.url.appendingPathComponent("b/k"), headers: [], body: [])
        #expect(d.status == 204)
        let heads = s.received.map { Self.head($0) }
        #expect(heads.map { $0[0] } == ["HEAD /b/k HTTP/1.1", "DELETE /b/k HTTP/1.1"])
        #expect(
            s.received.allSatisfy { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\n") },
            "no body after the head")
    }

    /// A HEAD's Content-Length is the object's size, not a body on its way: a size over the
    /// answer limit is an answer like any other (a round message's existence check on a large run).
    @Test func headOfALargeObjectIsNotRefused() throws {
        let s = try server([
            .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n".utf8))
        ])
        defer { s.stop() }
        let r = try HTTPClient(timeout: 5, maxResponseBytes: 4096).send(
            method: "HEAD", url: s.url, headers: [], body: [])
        #expect(r.status == 200 && r.headers["content-length"] == "100000000" && r.body.isEmpty)
    }

    /// An empty PUT still says `Content-Length: 0`; an empty header value is sent empty (libcurl
    /// would drop "Name:"); a POST without a Content-Type gets none (libcurl would add a form type).
    @Test func emptyBodiesAndValuesGoOutAsGiven() throws {
        let s = try server([.respond(200, body: ""), .respond(200, body: "")])
        defer { s.stop() }
        let client = HTTPClient(timeout: 5)
        _ = try client.send(method: "PUT", url: s.url, headers: [("x-amz-meta-empty", "")], body: [])
        _ = try client.send(method: "POST", url: s.url, headers: [], body: Array("a=b".utf8))
        let put = Self.head(s.received[0])
        let post = Self.head(s.received[1])
        #expect(put.contains("Content-Length: 0"))
        #expect(
            put.contains {
                $0.hasPrefix("x-amz-meta-empty:") && $0.dropFirst("x-amz-meta-empty:".count).allSatisfy { $0 == " " }
            }, "\(put)")
        #expect(s.received[0].count == Array(put.joined(separator: "\r\n").utf8).count + 4, "no body")
        #expect(!post.contains { $0.lowercased().hasPrefix("content-type:") }, "\(post)")
        #expect(post.contains("Content-Length: 3"))
    }

    @Test func chunkedAnswerIsReassembled() throws {
        let s = try server([
            .raw(
                Array(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                        .utf8))
        ])
        defer { s.stop() }
        let r = try HTTPClient(timeout: 5).send(method: "GET", url: s.url, headers: [], body: [])
        #expect(r.body == Array("hello world".utf8))
    }

    /// An interim `100 Continue` does not leak its headers into the answer; a name sent twice
    /// keeps both values (RFC 9110 §5.3).
    @Test func interimAnswerAndRepeatedHeaders() throws {
        let raw =
            "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\nHTTP/1.1 200 OK\r\nX-Amz-Meta-A: 1\r\nx-amz-meta-a: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
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

    enum Framing: String, CaseIterable { case contentLength, toTheEnd, chunked }

    /// Larger than the limit: refused whether the size is announced (Content-Length) or only
    /// seen while the body arrives (read to the end of the connection, or chunked).
    @Test(arguments: Framing.allCases)
    func answerLargerThanTheLimitIsRefused(framing: Framing) throws {
        let body = String(repeating: "z", count: 5000)
        let raw: String
        switch framing {
        case .contentLength: raw = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n" + body
        case .toTheEnd: raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body
        case .chunked:
            raw =
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + "9c4\r\n" + String(body.prefix(2500)) + "\r\n9c4\r\n" + String(body.prefix(2500)) + "\r\n0\r\n\r\n"
        }
        let s = try server([.raw(Array(raw.utf8)), .raw(Array(raw.utf8))])
        defer { s.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 5, maxResponseBytes: 4096).send(method: "GET", url: s.url, headers: [], body: [])
        }
        #expect(e?.kind == .tooLarge)
        #expect(e?.reason.contains("4096") == true)
        // At the limit exactly is accepted.
        let r = try HTTPClient(timeout: 5, maxResponseBytes: 5000).send(
            method: "GET", url: s.url, headers: [], body: [])
        #expect(r.body.count == 5000)
    }

    @Test func missingLibraryNamesThePackage() throws {
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 1, libraryPath: "libcurl-not-installed.so.4").send(
                method: "GET", url: Self.nowhere, headers: [], body: [])
        }
        #expect(e?.kind == .unavailable)
        #expect(e?.reason.contains("libcurl-not-installed.so.4") == true)
        #expect(e?.reason.contains("apt-get install libcurl4") == true)
    }

    /// Failures another attempt cannot mend stop at the first attempt, with their own codes;
    /// transport failures are retried.
    @Test(arguments: [
        (TransportFailure.Kind.unavailable, AWSError.Code.configuration, 1),
        (.tooLarge, .responseMalformed, 1),
        (.transport, .network, 3),
    ])
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
    /// keeps the connection open sees the later requests on the first connection.
    @Test func requestsAfterTheFirstReuseTheConnection() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let client = HTTPClient(timeout: 5)
        for _ in 0..<3 {
            let r = try client.send(method: "GET", url: server.url, headers: [], body: [])
            #expect(r.body == Array("k".utf8))
        }
        #expect(server.connections == 1)
    }

    /// A pooled connection the server closed just as it was reused: libcurl sends the request
    /// again on a fresh connection, which for an upload means rewinding its body (the seek
    /// callback); the request then succeeds in one attempt, the whole body sent again.
    @Test(arguments: ["PUT", "POST"])
    func uploadIsSentAgainWhenAReusedConnectionWasClosed(method: String) throws {
        let server = try LoopbackServer { connection, request in
            connection == 0 && request == 1 ? .closeAfterReading : .answer(LoopbackServer.ok)
        }
        defer { server.stop() }
        let client = HTTPClient(timeout: 5)
        _ = try client.send(method: "GET", url: server.url, headers: [], body: [])
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let r = try client.send(
            method: method, url: server.url, headers: [("Content-Type", "application/octet-stream")], body: payload)
        #expect(r.status == 200)
        #expect(server.connections == 2)
        let uploads = server.requests.filter { String(decoding: $0.bytes.prefix(4), as: UTF8.self).hasPrefix(method) }
        #expect(uploads.map(\.connection) == [0, 1])
        #expect(
            uploads.allSatisfy { Array($0.bytes.suffix(payload.count)) == payload },
            "each attempt carried the whole body")
    }

    /// Several threads sending through one client at once: each transfer gets its own handle
    /// from the pool (TSan runs this suite), and every answer is right.
    @Test func concurrentSendsShareOnePool() throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let client = HTTPClient(timeout: 10)
        let lock = NSLock()
        nonisolated(unsafe) var statuses: [Int] = []
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            let status = (try? client.send(method: "GET", url: server.url, headers: [], body: []))?.status ?? -1
            lock.lock()
            statuses.append(status)
            lock.unlock()
        }
        #expect(statuses == Array(repeating: 200, count: 16))
        #expect(server.connections <= 16)
    }

    /// A server that accepts the request and never answers: the attempt fails (retryably) once
    /// no byte has moved for the timeout, instead of hanging.
    @Test func silentServerTimesOut() throws {
        let server = try LoopbackServer { _, _ in .silent }
        defer { server.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 1).send(method: "GET", url: server.url, headers: [], body: [])
        }
        #expect(e?.kind == .transport)
    }

    /// Timeouts from the environment (`CLEANROOM_AWS_TIMEOUT_SECONDS` parses as a Double) stay
    /// within what libcurl's millisecond options hold: no trap on `inf`, `1e300` or `nan`.
    @Test(arguments: [
        (Double.infinity, 86_400.0), (1e300, 86_400), (-Double.infinity, 0.1), (-1, 0.1), (0, 0.1), (2.5, 2.5),
        (86_401, 86_400),
    ])
    func timeoutsAreClamped(given: Double, used: Double) throws {
        #expect(HTTPClient.clamped(given) == used)
        let server = try LoopbackServer()
        defer { server.stop() }
        #expect(
            try HTTPClient(timeout: given).send(method: "GET", url: server.url, headers: [], body: []).status == 200)
    }

    @Test func notANumberTimeoutIsTheDefault() {
        #expect(HTTPClient.clamped(.nan) == 30)
        #expect(HTTPClient(timeout: .nan).timeout == 30)
    }

    /// A library that opens but is not libcurl: the message keeps dlsym's reason (dlclose would
    /// have cleared it).
    @Test func wrongLibraryNamesTheMissingSymbol() throws {
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 1, libraryPath: "libz.so.1").send(
                method: "GET", url: Self.nowhere, headers: [], body: [])
        }
        #expect(e?.kind == .unavailable)
        #expect(e?.reason.contains("curl_global_init") == true, "\(e?.reason ?? "")")
    }

    /// The administration path (no retries) maps failures as the retrying one does.
    @Test func signedRequestWithoutLibcurlIsAConfigurationError() throws {
        let http = AWSHTTP(timeout: 1, retry: RetryPolicy(maxAttempts: 1), libraryPath: "libcurl-not-installed.so.4")
        let creds = try AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret", source: "test")
        let signer = SigV4Signer(
            region: "us-east-1", service: "iam", rules: .generic(normalizePath: true), clock: { Date() })
        let e = #expect(throws: AWSError.self) {
            _ = try http.signedRequest(method: "POST", url: Self.nowhere, path: "/", signer: signer, credentials: creds)
        }
        #expect(e?.code == .configuration)
    }
}

/// A loopback HTTP/1.1 server that keeps connections open and follows a script per request:
/// answer (and keep the connection), close right after reading it (a server that timed out an
/// idle connection just as it was reused), or stay silent until the client gives up.
final class LoopbackServer: @unchecked Sendable {
    enum Step: Sendable {
        case answer([UInt8])
        case closeAfterReading, silent
    }
    static let ok = Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk".utf8)

    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var accepted = 0
    private var seen: [(connection: Int, bytes: [UInt8])] = []
    var connections: Int {
        lock.lock()
        defer { lock.unlock() }
        return accepted
    }
    /// Every request read, with the index of the connection it came on.
    var requests: [(connection: Int, bytes: [UInt8])] {
        lock.lock()
        defer { lock.unlock() }
        return seen
    }
    var url: URL { URL(string: "http://127.0.0.1:\(port)/b/k")! }

    /// - Parameter script: the step for the `request`-th request (from 0) on the `connection`-th connection.
    /// - Throws: `POSIXError` when the listening socket cannot be made (``Loopback/listen(backlog:)``).
    init(
        script: @escaping @Sendable (_ connection: Int, _ request: Int) -> Step = { _, _ in .answer(LoopbackServer.ok) }
    ) throws {
        (listener, port) = try Loopback.listen(backlog: 16)
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                lock.lock()
                let n = accepted
                accepted += 1
                lock.unlock()
                Thread { [self] in serve(c, connection: n, script: script) }.start()
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve(_ c: Int32, connection: Int, script: (Int, Int) -> Step) {
        defer { close(c) }
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = read(c, &chunk, chunk.count)
            if n <= 0 { return false }
            pending += chunk[0..<n]
            return true
        }
        var index = 0
        while true {
            var end = FaultProxy.find([13, 10, 13, 10], in: pending)
            while end == nil {
                guard fill() else { return }
                end = FaultProxy.find([13, 10, 13, 10], in: pending)
            }
            let head = String(decoding: pending[0..<end!], as: UTF8.self)
            let length =
                head.components(separatedBy: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            while pending.count < end! + 4 + length { guard fill() else { return } }
            let request = Array(pending[0..<(end! + 4 + length)])
            pending.removeFirst(request.count)
            lock.lock()
            seen.append((connection, request))
            lock.unlock()
            switch script(connection, index) {
            case .answer(let bytes):
                _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            case .closeAfterReading:
                return
            case .silent:
                while fill() {}
                return
            }
            index += 1
        }
    }
}

/// A retry policy always makes at least one attempt, however it was set.
@Suite("Retry policy")
struct RetryPolicyTests {
    @Test(arguments: [-3, 0, 1, 7])
    func atLeastOneAttempt(_ n: Int) {
        var p = RetryPolicy(maxAttempts: n)
        #expect(p.maxAttempts == max(1, n))
        p.maxAttempts = n - 5
        #expect(p.maxAttempts == max(1, n - 5))
    }

    /// Delay bounds that make no sense never trap: a negative bound waits not at all, a NaN one
    /// counts as absent (the other bound applies).
    @Test(arguments: [(-1.0, 10.0, 0.0), (0.2, -1.0, 0.0), (0, 0, 0), (Double.nan, 10.0, 10.0), (0.2, Double.nan, 0.0)])
    func nonsenseDelaysDoNotTrap(base: Double, max: Double, bound: Double) {
        let p = RetryPolicy(maxAttempts: 3, baseDelay: base, maxDelay: max)
        #expect((0..<4).allSatisfy { (0...bound).contains(p.delay(afterAttempt: $0)) })
    }
}

/// TLS as the client speaks it, against a real TLS server on loopback (Python's `ssl`, with a
/// certificate `openssl` makes for 127.0.0.1 only): a server whose certificate no trusted CA
/// signed is refused without retries, and accepted once `AWS_CA_BUNDLE` names it; a certificate
/// for another host name is refused even from a trusted CA; an unreadable bundle is a setup fault.
/// - SeeAlso: `Protocol/SPEC.md` §12 "HTTP".
@Suite("HTTP client over TLS", .serialized)
struct HTTPClientTLSTests {
    /// A one-handler HTTPS server (`GET` answers `200 ok`) and the certificate it presents.
    final class Server {
        let directory: String
        let certificate: String
        let process = Process()
        let port: UInt16

        /// Why the server could not start, with the tools' own error output.
        struct Failed: Error, CustomStringConvertible {
            let description: String
        }

        /// Makes the certificate and starts the server; on any failure nothing is left running or
        /// on disk.
        init() throws {
            directory = NSTemporaryDirectory() + "cleanroom-tls-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            do {
                port = try Self.start(process, in: directory)
            } catch {
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            certificate = directory + "/cert.pem"
        }

        private static func start(_ process: Process, in directory: String) throws -> UInt16 {
            let certificate = directory + "/cert.pem"
            let errors = directory + "/stderr.txt"
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            func failed(_ what: String) -> Failed {
                let text = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                return Failed(description: "\(what): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            let key = directory + "/key.pem"
            let openssl = Process()
            openssl.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            openssl.arguments = [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", certificate, "-days", "2", "-subj", "/CN=cleanroom-test",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ]
            openssl.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            try openssl.run()
            openssl.waitUntilExit()
            guard openssl.terminationStatus == 0 else { throw failed("openssl could not make the test certificate") }
            let script = directory + "/server.py"
            try """
            import http.server, ssl, sys
            class H(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                def log_message(self, *args):
                    pass
            s = http.server.HTTPServer(("127.0.0.1", 0), H)
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            c.load_cert_chain(sys.argv[1], sys.argv[2])
            s.socket = c.wrap_socket(s.socket, server_side=True)
            print(s.server_address[1], flush=True)
            s.serve_forever()
            """.write(toFile: script, atomically: true, encoding: .utf8)
            let out = Pipe()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, certificate, key]
            process.standardOutput = out
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            try process.run()
            // The first line is the port; python3 closing its output first (it failed) ends the loop.
            var line: [UInt8] = []
            while let byte = try out.fileHandleForReading.read(upToCount: 1)?.first, byte != 0x0a { line.append(byte) }
            guard let p = UInt16(String(decoding: line, as: UTF8.self)) else {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw failed("python3 did not start the TLS server")
            }
            return p
        }

        /// SIGKILL: a child of the test runner may inherit a signal mask that blocks SIGTERM.
        func stop() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }

        func url(host: String = "127.0.0.1") -> URL { URL(string: "https://\(host):\(port)/x")! }
    }

    @Test func aCertificateNoTrustedCASignedIsRefused() throws {
        let s = try Server()
        defer { s.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 5).send(method: "GET", url: s.url(), headers: [], body: [])
        }
        #expect(e?.kind == .untrusted)
        #expect(e?.reason.contains("AWS_CA_BUNDLE") == true, "\(e?.reason ?? "")")
        #expect(e?.permanentError("GetObject k")?.code == .network, "refused without retries")
    }

    @Test func theBundleInAWSCABundleIsTrusted() throws {
        let s = try Server()
        defer { s.stop() }
        let http = AWSHTTP.fromEnvironment(AWSEnvironment(["AWS_CA_BUNDLE": s.certificate]))
        #expect(http.client.caBundle == s.certificate)
        let r = try http.client.send(method: "GET", url: s.url(), headers: [], body: [])
        #expect(r.status == 200 && r.body == Array("ok".utf8))
    }

    /// The certificate names 127.0.0.1 only: reached as `localhost`, the host name check refuses
    /// it even though its CA is trusted.
    @Test func aCertificateForAnotherHostIsRefused() throws {
        let s = try Server()
        defer { s.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 5, caBundle: s.certificate).send(
                method: "GET", url: s.url(host: "localhost"), headers: [], body: [])
        }
        #expect(e?.kind == .untrusted)
    }

    @Test func anUnreadableBundleIsASetupFault() throws {
        let s = try Server()
        defer { s.stop() }
        let e = #expect(throws: TransportFailure.self) {
            try HTTPClient(timeout: 5, caBundle: s.directory + "/missing.pem").send(
                method: "GET", url: s.url(), headers: [], body: [])
        }
        #expect(e?.kind == .unavailable)
        #expect(e?.permanentError("GetObject k")?.code == .configuration)
        #expect(e?.reason.contains("missing.pem") == true)
    }
}
