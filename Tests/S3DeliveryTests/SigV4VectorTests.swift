import Foundation
import RistrettoPSI
import Testing

@testable import S3Delivery

/// `Protocol/vectors/aws-sigv4.json`: the AWS SigV4 test suite (generic-service rules, from
/// awslabs/aws-c-auth, Apache-2.0) and the four worked examples of the S3 API Reference (S3 rules).
/// Each vector names its source in the file's `sources` block. One test case per vector.
enum SigV4Vectors {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Context: Decodable, Sendable {
        struct Creds: Decodable, Sendable {
            let access_key_id: String
            let secret_access_key: String
            let token: String?
        }
        let credentials: Creds
        let normalize: Bool
        let region: String
        let service: String
        let timestamp: String
        let omit_session_token: Bool?
        let expiration_in_seconds: Int?
        let sign_body: Bool?
    }
    struct Expected: Decodable, Sendable {
        let canonical_request: String
        let string_to_sign: String
        let signature: String
    }
    struct Generic: Decodable, Sendable, CustomTestStringConvertible {
        let name: String
        let context: Context
        let request: String
        let header: Expected
        let query: Expected
        var testDescription: String { name }
    }
    struct S3Example: Decodable, Sendable, CustomTestStringConvertible {
        let name: String
        let context: Context
        let request: String
        let signature: String
        let recomputed_canonical_request: String
        let recomputed_string_to_sign: String
        var testDescription: String { name }
    }
    struct File: Decodable {
        let aws_sigv4_test_suite: [Generic]
        let s3_api_reference_examples: [S3Example]
    }

    static let file: File = {
        let url = packageRoot.appendingPathComponent("Protocol/vectors/aws-sigv4.json")
        do { return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)) } catch {
            fatalError("cannot load \(url.path): \(error)")
        }
    }()

    /// Parses the suite's raw HTTP text: request line, headers (indented lines continue the
    /// previous header), blank line, body.
    static func parse(_ raw: String) -> (
        method: String, target: String, headers: [(name: String, value: String)], body: [UInt8]
    ) {
        let parts = raw.components(separatedBy: "\n\n")
        let head = parts[0].split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter {
            !$0.isEmpty
        }
        let body = parts.count > 1 ? Array(parts.dropFirst().joined(separator: "\n\n").utf8) : []
        let line = head[0]
        let method = String(line.prefix { $0 != " " })
        let target = String(line.dropFirst(method.count + 1).dropLast(" HTTP/1.1".count))
        var headers: [(name: String, value: String)] = []
        for h in head.dropFirst() {
            if h.first == " " || h.first == "\t" {
                headers[headers.count - 1].value += " " + h
                continue
            }
            let i = h.firstIndex(of: ":")!
            headers.append((String(h[..<i]), String(h[h.index(after: i)...])))
        }
        return (method, target, headers, body)
    }

    static func credentials(_ c: Context) throws -> AWSCredentials {
        try AWSCredentials(
            accessKeyID: c.credentials.access_key_id, secretAccessKey: c.credentials.secret_access_key,
            sessionToken: c.credentials.token)
    }

    static func date(_ s: String) -> Date {
        let f = ISO8601DateFormatter()
        return f.date(from: s)!
    }
}

@Suite struct SigV4GenericSuiteTests {
    /// Generic rules: the request line's path is the wire path; it is normalised (when the vector
    /// says so) and URI-encoded again.
    @Test(arguments: SigV4Vectors.file.aws_sigv4_test_suite)
    func vector(_ v: SigV4Vectors.Generic) throws {
        let (method, target, headers, body) = SigV4Vectors.parse(v.request)
        let q = target.firstIndex(of: "?")
        let req = SigV4Request(
            method: method, path: q.map { String(target[..<$0]) } ?? target,
            query: q.map { String(target[target.index(after: $0)...]) } ?? "",
            headers: headers, payloadSHA256: Hex.encode(SHA256.hash(body)))
        let creds = try SigV4Vectors.credentials(v.context)
        let now = SigV4Vectors.date(v.context.timestamp)
        let signer = SigV4Signer(
            region: v.context.region, service: v.context.service,
            rules: .generic(normalizePath: v.context.normalize), clock: { now })
        let signed = signer.sign(
            req, credentials: creds, omitSessionToken: v.context.omit_session_token ?? false,
            signPayloadHeader: v.context.sign_body ?? false)
        // Stage by stage: the signed request's headers minus Authorization give the canonical request.
        var unsigned = signed
        unsigned.headers.removeAll { $0.name == "Authorization" }
        if v.context.omit_session_token == true { unsigned.headers.removeAll { $0.name == "X-Amz-Security-Token" } }
        let (canonical, _) = SigV4Signer.canonicalRequest(unsigned, rules: signer.rules)
        #expect(canonical == v.header.canonical_request)
        let day = String(SigV4Signer.amzDate(now).prefix(8))
        let sts = SigV4Signer.stringToSign(
            canonicalRequest: v.header.canonical_request, amzDate: SigV4Signer.amzDate(now),
            scope: SigV4Signer.scope(date: day, region: v.context.region, service: v.context.service))
        #expect(sts == v.header.string_to_sign)
        #expect(
            SigV4Signer.signature(
                stringToSign: v.header.string_to_sign, credentials: creds, date: day,
                region: v.context.region, service: v.context.service) == v.header.signature)
        #expect(signed.header("Authorization")?.hasSuffix("Signature=\(v.header.signature)") == true)
    }

    /// The same vector in query (presigned) mode: canonical request and signature.
    @Test(arguments: SigV4Vectors.file.aws_sigv4_test_suite)
    func presignedVector(_ v: SigV4Vectors.Generic) throws {
        let (method, target, headers, body) = SigV4Vectors.parse(v.request)
        let q = target.firstIndex(of: "?")
        let req = SigV4Request(
            method: method, path: q.map { String(target[..<$0]) } ?? target,
            query: q.map { String(target[target.index(after: $0)...]) } ?? "",
            headers: headers, payloadSHA256: Hex.encode(SHA256.hash(body)))
        let now = SigV4Vectors.date(v.context.timestamp)
        let signer = SigV4Signer(
            region: v.context.region, service: v.context.service,
            rules: .generic(normalizePath: v.context.normalize), clock: { now })
        let signed = signer.presign(
            req, credentials: try SigV4Vectors.credentials(v.context), expires: v.context.expiration_in_seconds ?? 3600,
            omitSessionToken: v.context.omit_session_token ?? false)
        #expect(signed.query.hasSuffix("X-Amz-Signature=\(v.query.signature)"))
        let day = String(SigV4Signer.amzDate(now).prefix(8))
        #expect(
            SigV4Signer.stringToSign(
                canonicalRequest: v.query.canonical_request, amzDate: SigV4Signer.amzDate(now),
                scope: SigV4Signer.scope(date: day, region: v.context.region, service: v.context.service))
                == v.query.string_to_sign)
    }
}

@Suite struct SigV4S3ExampleTests {
    /// S3 rules: the request line of these examples shows the object key; the wire path is that key
    /// encoded once, and S3 signs it as sent (no normalisation, no second encoding), with
    /// `x-amz-content-sha256` always signed.
    @Test(arguments: SigV4Vectors.file.s3_api_reference_examples)
    func example(_ v: SigV4Vectors.S3Example) throws {
        let (method, target, headers, body) = SigV4Vectors.parse(v.request)
        let q = target.firstIndex(of: "?")
        let key = q.map { String(target[..<$0]) } ?? target
        let req = SigV4Request(
            method: method, path: SigV4Signer.uriEncode(key, keepSlash: true),
            query: q.map { String(target[target.index(after: $0)...]) } ?? "",
            headers: headers, payloadSHA256: Hex.encode(SHA256.hash(body)))
        let creds = try SigV4Vectors.credentials(v.context)
        let now = SigV4Vectors.date(v.context.timestamp)
        let signer = SigV4Signer(region: v.context.region, service: v.context.service, rules: .s3, clock: { now })
        let signed = signer.sign(req, credentials: creds)
        var unsigned = signed
        unsigned.headers.removeAll { $0.name == "Authorization" }
        #expect(SigV4Signer.canonicalRequest(unsigned, rules: .s3).text == v.recomputed_canonical_request)
        #expect(
            SigV4Signer.stringToSign(
                canonicalRequest: v.recomputed_canonical_request, amzDate: SigV4Signer.amzDate(now),
                scope: SigV4Signer.scope(date: "20130524", region: "us-east-1", service: "s3"))
                == v.recomputed_string_to_sign)
        #expect(signed.header("Authorization")?.hasSuffix("Signature=\(v.signature)") == true)
    }
}

/// Where S3's rules and the generic rules part ways, on the same request.
@Suite struct SigV4RuleDifferenceTests {
    static let creds = try! AWSCredentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

    @Test func s3DoesNotNormalizeOrReencode() {
        let r = SigV4Request(
            method: "PUT", path: "/a/./b//c%20d", headers: [("Host", "h")], payloadSHA256: SigV4Signer.emptySHA256)
        #expect(SigV4Signer.canonicalRequest(r, rules: .s3).text.split(separator: "\n")[1] == "/a/./b//c%20d")
        #expect(
            SigV4Signer.canonicalRequest(r, rules: .generic(normalizePath: true)).text.split(separator: "\n")[1]
                == "/a/b/c%2520d")
    }

    @Test func s3AlwaysSignsContentSHA256() {
        let r = SigV4Request(
            method: "PUT", path: "/k", headers: [("Host", "h")], payloadSHA256: SigV4Signer.emptySHA256)
        let s3 = SigV4Signer(region: "us-east-1", service: "s3", rules: .s3, clock: { Date(timeIntervalSince1970: 0) })
            .sign(r, credentials: Self.creds)
        let generic = SigV4Signer(
            region: "us-east-1", service: "sts", rules: .generic(normalizePath: true),
            clock: { Date(timeIntervalSince1970: 0) }
        )
        .sign(r, credentials: Self.creds)
        #expect(s3.header("Authorization")!.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"))
        #expect(generic.header("x-amz-content-sha256") == nil)
    }

    @Test func credentialsAreRedacted() throws {
        let c = try AWSCredentials(
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            sessionToken: "TOKENVALUE")
        for text in [
            c.description, c.debugDescription, String(reflecting: c),
            "\(Mirror(reflecting: c).children.map { "\($0.value)" })",
        ] {
            #expect(!text.contains("wJalr"))
            #expect(!text.contains("TOKENVALUE"))
            #expect(!text.contains("AKIDEXAMPLE"))
        }
    }
}
