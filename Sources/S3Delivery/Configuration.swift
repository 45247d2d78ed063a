import Foundation
import RistrettoPSI

/// The AWS settings a process sees: environment variables and the shared config/credentials
/// files, resolved in the standard order. Injected (not read from the process) so tests can pin it.
///
/// - SeeAlso: `Protocol/SPEC.md` §12.2 "Credentials"; AWS SDKs and Tools Reference Guide,
///   "Standardized credential providers" and "Service-specific endpoints".
public struct AWSEnvironment: Sendable {
    /// The environment variables this value resolves from.
    public let variables: [String: String]
    /// Pins the variables; by default the process's environment at the time of the call. The shared
    /// files are read later, when a setting needs them.
    public init(_ variables: [String: String] = ProcessInfo.processInfo.environment) { self.variables = variables }

    /// `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`: whose sections of the shared files count.
    public var profile: String { nonEmpty("AWS_PROFILE") ?? nonEmpty("AWS_DEFAULT_PROFILE") ?? "default" }

    func nonEmpty(_ k: String) -> String? { variables[k].flatMap { $0.isEmpty ? nil : $0 } }

    var home: String { nonEmpty("HOME") ?? NSHomeDirectory() }
    var configFile: String { nonEmpty("AWS_CONFIG_FILE") ?? "\(home)/.aws/config" }
    var credentialsFile: String { nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? "\(home)/.aws/credentials" }

    /// The profile's section of the config file (`[profile name]`, or `[default]`).
    func configSection() throws(AWSError) -> [String: String] {
        let name = profile == "default" ? "default" : "profile \(profile)"
        return try INIFile.section(name, in: configFile) ?? [:]
    }

    /// The region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
    public func region() throws(AWSError) -> String? {
        if let r = nonEmpty("AWS_REGION") ?? nonEmpty("AWS_DEFAULT_REGION") { return r }
        return try configSection()["region"]
    }

    /// A service's endpoint: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, then `nil`
    /// (the AWS default for the region).
    public func endpoint(service: String) throws(AWSError) -> URL? {
        guard let raw = nonEmpty("AWS_ENDPOINT_URL_\(service.uppercased())") ?? nonEmpty("AWS_ENDPOINT_URL") else {
            return nil
        }
        guard let u = URL(string: raw), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
            throw AWSError(.configuration, "the endpoint override for \(service) is not an http(s) URL")
        }
        return u
    }
}

/// The two endpoints a delivery talks to, resolved once.
public struct AWSEndpoints: Sendable {
    /// The region requests are signed for, and that AWS's own S3 host names are built from.
    public let region: String
    /// `nil`: AWS itself (`https://<bucket>.s3.<region>.amazonaws.com`, virtual-hosted style).
    /// Set: an S3-compatible service, addressed path-style (`<endpoint>/<bucket>/<key>`).
    public let s3: URL?
    /// The STS endpoint (``resolve(_:region:)``: the override, else `https://sts.<region>.amazonaws.com`).
    public let sts: URL
    /// Takes the endpoints as given, unchecked; ``resolve(_:region:)`` derives and checks them.
    public init(region: String, s3: URL?, sts: URL) {
        self.region = region
        self.s3 = s3
        self.sts = sts
    }

    /// From the environment; `region` overrides (the agreement's destination region).
    public static func resolve(_ env: AWSEnvironment, region override: String? = nil) throws(AWSError) -> AWSEndpoints {
        let fromEnv: String? = override == nil ? try env.region() : nil
        guard let region = override ?? fromEnv else {
            throw AWSError(
                .configuration, "no region: set AWS_REGION, the profile's region, or the agreement's destination region"
            )
        }
        guard region.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw AWSError(.configuration, "region '\(region)' is not a region name")
        }
        let sts = try env.endpoint(service: "sts") ?? URL(string: "https://sts.\(region).amazonaws.com")!
        return AWSEndpoints(region: region, s3: try env.endpoint(service: "s3"), sts: sts)
    }

    /// The URL and `Host` header of an object (key already URI-encoded once, `/` kept).
    ///
    /// Virtual-hosted on AWS, except for a bucket name with a dot: `a.b.s3.<region>.amazonaws.com`
    /// is not covered by S3's wildcard certificate, so such a bucket is addressed path-style
    /// (`s3.<region>.amazonaws.com/<bucket>/…`), as the AWS SDKs do; an endpoint override is always
    /// path-style.
    func objectURL(bucket: String, encodedKey: String, query: String) -> (url: URL, path: String, host: String) {
        let base: URL
        let path: String
        if let s3 {
            base = s3
            let root = s3.path.hasSuffix("/") ? String(s3.path.dropLast()) : s3.path
            path = "\(root)/\(bucket)/\(encodedKey)"
        } else if bucket.contains(".") {
            base = URL(string: "https://s3.\(region).amazonaws.com")!
            path = "/\(bucket)/\(encodedKey)"
        } else {
            base = URL(string: "https://\(bucket).s3.\(region).amazonaws.com")!
            path = "/\(encodedKey)"
        }
        var text = "\(base.scheme!)://\(Self.hostHeader(base))\(path)"
        if !query.isEmpty { text += "?\(query)" }
        return (URL(string: text)!, path, Self.hostHeader(base))
    }

    static func hostHeader(_ u: URL) -> String {
        let host = u.host!
        if let p = u.port, !(u.scheme == "http" && p == 80), !(u.scheme == "https" && p == 443) {
            return "\(host):\(p)"
        }
        return host
    }
}

/// Minimal INI reading for `~/.aws/config` and `~/.aws/credentials`: `[section]`, `key = value`,
/// `#`/`;` comments. Values of secret keys are returned as bytes by ``secretBytes``.
enum INIFile {
    static func section(_ name: String, in path: String) throws(AWSError) -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var raw = Array(data)
        defer { SecureBytes.zero(&raw) }
        var current: String?
        var out: [String: String]?
        for lineBytes in raw.split(separator: 0x0a) {
            let line = String(decoding: lineBytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]") else {
                    throw AWSError(.credentialsInvalid, "\(path): a section header is not closed")
                }
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if current == name { out = out ?? [:] }
                continue
            }
            guard current == name else { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw AWSError(.credentialsInvalid, "\(path) [\(name)]: a line is not key = value")
            }
            out?[String(line[..<eq]).trimmingCharacters(in: .whitespaces).lowercased()] =
                String(line[line.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}
