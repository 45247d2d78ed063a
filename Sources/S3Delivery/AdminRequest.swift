import Foundation
import RistrettoPSI

/// One signed answer from ``AWSHTTP/signedRequest(method:url:path:query:headers:body:signer:credentials:)``.
public struct SignedAnswer: Sendable {
    /// The HTTP status.
    public let status: Int
    /// The response body (AWS answers in XML).
    public let body: [UInt8]

    /// An answer with this status and body, taken as given.
    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }

    /// The text of the first `<tag>` element of the body, if any.
    public func xmlValue(_ tag: String) -> String? { XMLText.first(tag, in: body) }
    /// The texts of every `<tag>` element of the body, in order.
    public func xmlValues(_ tag: String) -> [String] { XMLText.all(tag, in: body) }
}

extension AWSHTTP {
    /// Sends one SigV4-signed request, without retries, and returns whatever the service answered.
    ///
    /// For set-up and administration calls this module does not wrap (IAM, bucket creation, a
    /// bucket owner's listing): the provider's tooling and the test suite's provisioning of a local
    /// S3 server. The coordinator's delivery path never uses it: it holds only an `S3Writer`, which
    /// has no read, list or delete (SPEC §12.2).
    /// - Parameters:
    ///   - method: the HTTP method, sent and signed as given.
    ///   - url: the full URL; its host (and a non-default port) becomes the signed `Host` header.
    ///   - path: the path exactly as signed (already URI-encoded); it must match `url`'s.
    ///   - query: the query exactly as signed (already URI-encoded, no `?`).
    ///   - headers: further headers, signed and sent as given.
    ///   - body: the request body; its SHA-256 is signed.
    ///   - signer: the region, service and canonicalisation rules.
    ///   - credentials: the identity the request is signed with.
    /// - Returns: the answer's status and body, whatever the status.
    /// - Throws: `.network` when no HTTP answer arrived (`.configuration` when libcurl cannot be
    ///   loaded, `.responseMalformed` for an answer body over the size limit). A non-2xx answer is
    ///   returned, not thrown: use ``failure(operation:answer:)`` to turn it into an ``AWSError``.
    /// - SeeAlso: `Protocol/SPEC.md` §12.
    public func signedRequest(
        method: String, url: URL, path: String, query: String = "",
        headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        signer: SigV4Signer, credentials: AWSCredentials
    ) throws(AWSError) -> SignedAnswer {
        let hash = body.isEmpty ? SigV4Signer.emptySHA256 : Hex.encode(SHA256.hash(body))
        switch attempt(
            method: method, url: url, path: path, query: query, host: AWSEndpoints.hostHeader(url),
            headers: headers, body: body, payloadSHA256: hash, signer: signer, credentials: credentials)
        {
        case .response(let r): return SignedAnswer(status: r.status, body: r.body)
        case .transport(let f):
            throw f.permanentError("\(method) \(path)")
                ?? AWSError(.network, "\(method) \(path): no answer (\(f.reason))")
        }
    }

    /// The ``AWSError`` for a final non-2xx answer, naming the operation and the service's code.
    public static func failure(operation: String, answer: SignedAnswer) -> AWSError {
        failure(operation, HTTPResponse(status: answer.status, headers: [:], body: answer.body))
    }
}
