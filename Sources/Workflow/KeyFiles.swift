import Activation
import Foundation
import RistrettoPSI

/// A party's identity on disk: a private key file (binary, mode 0600) and a public JSON file to
/// share with the other parties.
///
/// Private layout: `"CLRK" | version u8 = 1 | role u8 | Ed25519 seed 32 | X25519 secret 32 | name`.
/// Binary, so the secret is never held in a JSON string Foundation would not zero.
/// - SeeAlso: `Protocol/SPEC.md` §8.1 "Keys and files".
public enum KeyFiles {
    static let magic = Array("CLRK".utf8)

    /// The shareable half of an identity, the content of `identity.pub.json`: no secret.
    public struct PublicIdentity: Codable, Equatable, Sendable {
        /// The file's kind, `cleanroom-public-identity` (written; not checked by ``KeyFiles/loadPublic(_:)``).
        public var format = "cleanroom-public-identity"
        /// The party's role, as ``KeyFiles/roleName(_:)`` spells it.
        public let role: String
        /// The party's name, as given to ``KeyFiles/generate(role:name:directory:)``.
        public let name: String
        /// The Ed25519 verifying key of the party's signatures, lowercase hex.
        public let signingKey: String
        /// The X25519 public key records are sealed to, lowercase hex.
        public let sealingKey: String
    }

    /// A role's name in files: `consumer`, `provider` or `coordinator`; ``role(named:)`` reverses it.
    public static func roleName(_ r: Role) -> String {
        switch r {
        case .consumer: "consumer"
        case .provider: "provider"
        case .coordinator: "coordinator"
        }
    }
    /// The role a name from ``roleName(_:)`` stands for; nil for any other string.
    public static func role(named s: String) -> Role? {
        switch s {
        case "consumer": .consumer
        case "provider": .provider
        case "coordinator": .coordinator
        default: nil
        }
    }

    /// Generates a new identity and writes `identity.key` (0600) and `identity.pub.json` in `directory`.
    /// Refuses to overwrite an existing key.
    public static func generate(role: Role, name: String, directory: String) throws(WorkflowError) -> PublicIdentity {
        let identity = PartyIdentity.generate()
        // Sized once: growing would leave copies of the seed in freed, unzeroed memory.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(70 + name.utf8.count)
        bytes += magic + [1, role.rawValue]
        identity.signingKey.withSeed { bytes += $0 }
        identity.sealingKey.withSecretBytes { bytes += $0 }
        bytes += Array(name.utf8)
        defer { SecureBytes.zero(&bytes) }
        try Files.makeDirectory(directory, mode: 0o700)
        try Files.writeAtomically(bytes, to: directory + "/identity.key", mode: 0o600, exclusive: true)
        let pub = PublicIdentity(
            role: roleName(role), name: name, signingKey: identity.signingKey.verifyingKey.hex,
            sealingKey: identity.sealingKey.publicKey.hex)
        try Files.writeAtomically(publicJSON(pub), to: directory + "/identity.pub.json")
        return pub
    }

    /// The bytes of `identity.pub.json`: pretty-printed JSON with sorted keys.
    public static func publicJSON(_ p: PublicIdentity) -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .prettyPrinted]
        return Array(try! e.encode(p))
    }

    /// Loads a private identity, checking its role.
    public static func load(_ path: String, role expected: Role) throws(WorkflowError) -> (
        identity: PartyIdentity, name: String
    ) {
        var bytes = try Files.read(path)
        defer { SecureBytes.zero(&bytes) }
        guard bytes.count >= 70, Array(bytes[0..<4]) == magic, bytes[4] == 1, let role = Role(rawValue: bytes[5]) else {
            throw WorkflowError(.keyFile, "\(path): not a CleanRoom identity key file")
        }
        guard role == expected else {
            throw WorkflowError(
                .keyFile, "\(path): this is the \(roleName(role))'s key, expected the \(roleName(expected))'s")
        }
        do {
            let signing = try bytes.withUnsafeBytes {
                try SigningKey(seed: UnsafeRawBufferPointer(rebasing: $0[6..<38]))
            }
            let sealing = try bytes.withUnsafeBytes {
                try SealingKey(secretBytes: UnsafeRawBufferPointer(rebasing: $0[38..<70]))
            }
            return (
                PartyIdentity(signingKey: signing, sealingKey: sealing), String(decoding: bytes[70...], as: UTF8.self)
            )
        } catch {
            throw WorkflowError(.keyFile, "\(path): key material is invalid")
        }
    }

    /// Loads a public identity file.
    public static func loadPublic(_ path: String) throws(WorkflowError) -> PublicIdentity {
        let bytes = try Files.read(path)
        do { return try JSONDecoder().decode(PublicIdentity.self, from: Data(bytes)) } catch {
            throw WorkflowError(.keyFile, "\(path): not a CleanRoom public identity file")
        }
    }
}
