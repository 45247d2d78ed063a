import Foundation
import Identifiers
import RistrettoPSI

/// `cleanroom debug …`: diagnostics that let a reviewer reproduce `Protocol/SPEC.md`'s vectors.
///
/// Inputs are hex because RFC 9497's tags contain a NUL byte. These commands print public values
/// only; `scalar-mult` takes a scalar on the command line and is meant for test vectors, not keys.
enum DebugCommands {
    static let usage = """
        usage: cleanroom debug <subcommand>

          hash-to-group   --dst-hex <hex> --message-hex <hex> [--compat]
                          hash_to_ristretto255 (RFC 9380) of the message under the tag; with --compat,
                          the tagless from_hash(SHA-512(message)) compatibility mapping instead.
          protocol-tag    --collaboration <id>
                          the protocol's hash-to-group tag for a collaboration, as hex.
          expand-message  --dst-hex <hex> --message-hex <hex> --length <n>
                          expand_message_xmd with SHA-512 (RFC 9380 §5.3.1).
          decode-element  <hex>
                          strict RFC 9496 decode: prints the canonical encoding or the reason it fails.
          scalar-mult     --scalar-hex <hex> --element-hex <hex>
                          element × scalar (test vectors only: never pass a real key on a command line).
          normalize       --type email|phone|maid|custom [--gmail-rule] [--default-country-code <cc>] <value>
                          the normalized form and the match value (hex) under rule set v1, and the
                          message that is hashed to the group (Protocol/NORMALIZATION.md).
          audit-keygen    --out <file>
                          a coordinator Ed25519 key file (seed hex, mode 0600); prints the public key.
          audit-append    --db <file> --key-file <file> --count <n> --collaboration <id> [--quiet]
                          appends n synthetic entries (for concurrency and crash tests).
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "debug", usage: usage,
            [
                "hash-to-group": hashToGroup,
                "protocol-tag": protocolTag,
                "expand-message": expandMessage,
                "decode-element": decodeElement,
                "scalar-mult": scalarMult,
                "normalize": normalize,
                "audit-keygen": AuditDebugCommands.keygen,
                "audit-append": AuditDebugCommands.append,
            ])
    }

    static func hex(_ args: Arguments, _ name: String) throws -> [UInt8] {
        let text = try args.required(name)
        guard let bytes = Hex.decode(text) else { throw CLIError.usage("--\(name) is not valid hex") }
        return bytes
    }

    static func hashToGroup(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "compat"], options: ["dst-hex", "message-hex"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let message = try hex(args, "message-hex")
        if args.has("compat") {
            if args.options["dst-hex"] != nil { throw CLIError.usage("--compat takes no tag") }
            Console.out(try CompatibilityHash.hash(message).hex)
        } else {
            let h = try HashToGroup(domainSeparationTag: try hex(args, "dst-hex"))
            Console.out(try h.hash(message).hex)
        }
    }

    static func protocolTag(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["collaboration"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        Console.out(Hex.encode(DomainSeparation.hashToGroupTag(collaborationID: try args.required("collaboration"))))
    }

    static func expandMessage(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["dst-hex", "message-hex", "length"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        guard let length = Int(try args.required("length")) else { throw CLIError.usage("--length must be an integer") }
        Console.out(
            Hex.encode(
                try HashToGroup.expandMessageXMD(
                    try hex(args, "message-hex"), domainSeparationTag: try hex(args, "dst-hex"), lengthInBytes: length))
        )
    }

    static func decodeElement(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(1)
        let text = try args.positional(0, "element hex")
        guard let bytes = Hex.decode(text) else { throw CLIError.usage("element is not valid hex") }
        do {
            Console.out(try RistrettoElement(validating: bytes).hex)
        } catch { throw CLIError.failure("rejected: \(error)") }
    }

    static func scalarMult(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["scalar-hex", "element-hex"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        var scalarBytes = try hex(args, "scalar-hex")
        let elementBytes = try hex(args, "element-hex")
        let scalar = try Scalar(consumingCanonicalBytes: &scalarBytes)
        let element = try RistrettoElement(validating: elementBytes)
        Console.out(try element.multiplied(by: scalar).hex)
    }

    static func normalize(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help", "gmail-rule", "json"], options: ["type", "default-country-code"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(1)
        guard let type = IdentifierType(rawValue: try args.required("type")) else {
            throw CLIError.usage(
                "--type must be one of \(IdentifierType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let rules = try NormalizationRules(
            gmailRule: args.has("gmail-rule"), defaultCountryCallingCode: try args.value("default-country-code"))
        let normalizer = Normalizer(rules: rules)
        let value = try args.positional(0, "value")
        let match = try normalizer.matchValue(value, as: type)
        let form = try normalizer.normalizedForm(value, as: type)
        if args.has("json") {
            let normalized: Any = form.map { $0 as Any } ?? NSNull()  // null for pre-hashed input
            Console.json([
                "type": type.rawValue, "rulesVersion": rules.version, "normalized": normalized,
                "matchValue": Hex.encode(match.bytes), "hashToGroupMessage": Hex.encode(match.hashToGroupMessage),
            ])
        } else {
            Console.out("normalized   \(form ?? "(pre-hashed input)")")
            Console.out("match value  \(Hex.encode(match.bytes))")
            Console.out("message      \(Hex.encode(match.hashToGroupMessage))")
        }
    }
}
