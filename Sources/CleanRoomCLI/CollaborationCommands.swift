import Activation
import Foundation
import RistrettoPSI
import S3Delivery
import Workflow

/// `cleanroom keygen`: a party's identity (Ed25519 signing key, X25519 sealing key).
enum KeygenCommand {
    static let usage = """
        usage: cleanroom keygen --role consumer|provider|coordinator --name <party name> --out <dir>

        Writes <dir>/identity.key (private, mode 0600, never share it) and <dir>/identity.pub.json
        (public keys, to send to the other parties). Refuses to overwrite an existing key.
        """
    static func run(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "json"], options: ["role", "name", "out"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        guard let role = KeyFiles.role(named: try args.required("role")) else {
            throw CLIError.usage("--role must be consumer, provider or coordinator")
        }
        let pub = try KeyFiles.generate(
            role: role, name: try args.required("name"), directory: try args.required("out"))
        if args.has("json") {
            Console.json([
                "role": pub.role, "name": pub.name, "signingKey": pub.signingKey, "sealingKey": pub.sealingKey,
            ])
        } else {
            Console.out("wrote \(try args.required("out"))/identity.key (private) and identity.pub.json (share this)")
            Console.out("signing key \(pub.signingKey)")
        }
    }
}

/// `cleanroom collaboration …`: the agreement's lifecycle.
enum CollaborationCommands {
    static let usage = """
        usage: cleanroom collaboration <subcommand>

          invite       (consumer) start a collaboration: new collaboration ID and External ID
                       --identity <consumer identity.key> --coordinator <coordinator identity.pub.json>
                       --out <agreement.json> [--name-provider <name>] [--types email,phone,maid,custom]
                       [--gmail-rule] [--default-country-code <cc>] [--deliver-member-id] [--plain]
                       [--gzip] [--min-consumer-rows N] [--min-matched-rows K] [--max-runs N]
                       [--window-hours H] [--expires-days D (default 90, at most 3650)] [--compat-hash]
                       [--max-set-size N]
                       [--max-run-similarity P] (refuse a run whose matched set is ≥ P % similar to an
                       earlier run's; default 90, 0 = off)
                       [--dp-epsilon E --dp-budget B [--dp-sensitivity N]] (two-sided geometric noise
                       on the consumer-visible matched count, ε E per run, total budget B)
          accept       (provider) add its keys and destination, and sign
                       --agreement <file> --identity <provider identity.key>
                       --destination-dir <dir> | --destination-s3 s3://<bucket>/<prefix> --region <region>
                       --role-arn <arn of the delivery role, see `provider aws-setup`>
          countersign  (consumer) sign the accepted terms
                       --agreement <file> --identity <consumer identity.key>
          verify       check both signatures, completeness and expiry: exit 0 if the agreement can run
                       --agreement <file>
          show         print the terms [--json]
                       --agreement <file>
        """

    static func run(_ argv: [String]) throws {
        try Subcommands.dispatch(
            argv, group: "collaboration", usage: usage,
            [
                "invite": { try invite($0) },
                "accept": accept,
                "countersign": countersign,
                "verify": verify,
                "show": show,
            ])
    }

    static func int(_ args: Arguments, _ name: String, _ def: Int) throws -> Int {
        guard let v = try args.value(name) else { return def }
        guard let n = Int(v), n >= 1 else { throw CLIError.usage("--\(name) must be a positive integer") }
        return n
    }

    /// `--max-run-similarity P` (0 turns the near-duplicate check off; absent: the default 90).
    static func similarity(_ args: Arguments) throws -> Int? {
        guard let v = try args.value("max-run-similarity") else { return nil }
        guard let n = Int(v), (0...100).contains(n) else {
            throw CLIError.usage("--max-run-similarity must be 0 (off) to 100")
        }
        return n
    }

    /// ε as a decimal with at most three fractional digits, in thousandths (`0.5` → 500).
    static func millis(_ text: String, _ name: String) throws -> Int {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = Int(parts[0]), whole >= 0,
            parts.count == 1
                || (1...3).contains(parts[1].count) && parts[1].allSatisfy(\.isASCII) && parts[1].allSatisfy(\.isNumber)
        else {
            throw CLIError.usage("--\(name) must be a decimal number with at most 3 decimals, e.g. 0.5")
        }
        let frac = parts.count == 2 ? Int(parts[1].padding(toLength: 3, withPad: "0", startingAt: 0))! : 0
        let m = whole * 1000 + frac
        guard m >= 1 else { throw CLIError.usage("--\(name) must be positive") }
        return m
    }

    /// `--dp-epsilon E --dp-budget B [--dp-sensitivity N]`: differential privacy on the counts.
    static func noise(_ args: Arguments) throws -> AgreementTerms.Privacy.Noise? {
        guard let e = try args.value("dp-epsilon") else {
            if try args.value("dp-budget") != nil || args.value("dp-sensitivity") != nil {
                throw CLIError.usage("--dp-budget and --dp-sensitivity need --dp-epsilon")
            }
            return nil
        }
        guard let b = try args.value("dp-budget") else {
            throw CLIError.usage("--dp-epsilon needs --dp-budget (the collaboration's total ε)")
        }
        return .init(
            epsilonMillis: try millis(e, "dp-epsilon"), budgetMillis: try millis(b, "dp-budget"),
            sensitivity: try int(args, "dp-sensitivity", 1))
    }

    /// `ids`: the collaboration and External IDs to use instead of fresh ones (only `cleanroom
    /// demo` passes them, so its script can create the provider's role before the run).
    static func invite(_ argv: [String], ids: (collaboration: String, external: String)? = nil) throws {
        let args = try Arguments(
            argv, flags: ["help", "gmail-rule", "deliver-member-id", "plain", "gzip", "compat-hash"],
            options: [
                "identity", "coordinator", "out", "types", "default-country-code", "min-consumer-rows",
                "min-matched-rows", "max-runs", "window-hours", "expires-days", "name-provider",
                "max-run-similarity", "dp-epsilon", "dp-budget", "dp-sensitivity",
                "max-set-size",
            ])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let (me, name) = try KeyFiles.load(try args.required("identity"), role: .consumer)
        let coord = try KeyFiles.loadPublic(try args.required("coordinator"))
        guard coord.role == "coordinator" else {
            throw CLIError.failure("--coordinator must be the coordinator's public identity")
        }
        let types = (try args.value("types") ?? "email,phone,maid").split(separator: ",").map(String.init)
        let now = Date()
        // Ten years at most: an agreement is renewed, not kept forever, and the timestamp must
        // stay an RFC 3339 year (0000–9999) that every reader parses back.
        let expiresDays = try int(args, "expires-days", 90)
        guard expiresDays <= 3650 else { throw CLIError.usage("--expires-days must be at most 3650 (ten years)") }
        let terms = AgreementTerms(
            collaborationID: ids?.collaboration ?? AgreementTerms.newID(),
            externalID: ids?.external ?? AgreementTerms.newID(), createdAt: now,
            expiresAt: now.addingTimeInterval(Double(expiresDays) * 86_400),
            consumer: .init(name: name, signingKey: me.signingKey.verifyingKey.hex),
            provider: nil,
            coordinator: .init(name: coord.name, signingKey: coord.signingKey, sealingKey: coord.sealingKey),
            matching: .init(
                identifierTypes: types, gmailRule: args.has("gmail-rule"),
                defaultCountryCallingCode: try args.value("default-country-code"),
                hashToGroup: args.has("compat-hash") ? "compatibility" : "rfc9380",
                maxSetSize: try args.value("max-set-size") == nil ? nil : try int(args, "max-set-size", 1)),
            output: .init(
                deliverMemberID: args.has("deliver-member-id"), gzip: args.has("gzip"), sealed: !args.has("plain")),
            privacy: .init(
                minConsumerRows: try int(args, "min-consumer-rows", 100),
                minMatchedRows: try int(args, "min-matched-rows", 50),
                maxRunsPerWindow: try int(args, "max-runs", 4), windowSeconds: try int(args, "window-hours", 24) * 3600,
                maxRunSimilarityPercent: try similarity(args), noise: try noise(args)))
        let out = try args.required("out")
        try Files.writeAtomically(Array(SignedAgreement(terms: terms).json()), to: out, exclusive: true)
        Console.out("collaboration \(terms.collaborationID)")
        Console.out("External ID \(terms.externalID)")
        Console.out("wrote \(out): send it to the provider to accept")
    }

    static func accept(_ argv: [String]) throws {
        let args = try Arguments(
            argv, flags: ["help"],
            options: [
                "agreement", "identity", "destination-dir", "destination-s3", "region",
                "role-arn", "name",
            ])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let path = try args.required("agreement")
        var signed = try SignedAgreement(json: Data(try Files.read(path)))
        guard signed.terms.provider == nil else {
            throw CLIError.failure("\(path): the agreement was already accepted")
        }
        let (me, name) = try KeyFiles.load(try args.required("identity"), role: .provider)
        signed.terms.provider = .init(
            name: try args.value("name") ?? name, signingKey: me.signingKey.verifyingKey.hex,
            sealingKey: me.sealingKey.publicKey.hex)
        if let uri = try args.value("destination-s3") {
            guard try args.value("destination-dir") == nil else {
                throw CLIError.usage("give --destination-dir or --destination-s3, not both")
            }
            let location = try S3Location(uri: uri)
            let role = try args.required("role-arn")
            guard role.hasPrefix("arn:aws") && role.contains(":role/") else {
                throw CLIError.usage("--role-arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
            }
            signed.terms.destination = .init(
                kind: "s3", bucket: location.bucket, prefix: location.prefix,
                region: try args.required("region"), roleARN: role)
        } else {
            signed.terms.destination = .init(kind: "local", directory: try args.required("destination-dir"))
        }
        signed.signatures = SignedAgreement.Signatures()
        try signed.sign(as: .provider, with: me.signingKey)
        try Files.writeAtomically(Array(signed.json()), to: path)
        Console.out(
            "accepted and signed collaboration \(signed.terms.collaborationID); send \(path) back to the consumer to countersign"
        )
    }

    static func countersign(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["agreement", "identity"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let path = try args.required("agreement")
        var signed = try SignedAgreement(json: Data(try Files.read(path)))
        let (me, _) = try KeyFiles.load(try args.required("identity"), role: .consumer)
        try signed.sign(as: .consumer, with: me.signingKey)
        _ = try signed.verified()
        try Files.writeAtomically(Array(signed.json()), to: path)
        Console.out("countersigned: collaboration \(signed.terms.collaborationID) is active")
    }

    static func verify(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"], options: ["agreement"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let a = try Steps.loadAgreement(try args.required("agreement"))
        Console.out(
            "ok: collaboration \(a.terms.collaborationID), signed by both parties, expires \(a.terms.expiresAt), agreement hash \(Hex.encode(a.hash))"
        )
    }

    static func show(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help", "json"], options: ["agreement"])
        if args.has("help") {
            Console.out(usage)
            return
        }
        try args.expectPositionals(0)
        let signed = try SignedAgreement(json: Data(try Files.read(try args.required("agreement"))))
        if args.has("json") {
            Console.out(String(decoding: signed.json(), as: UTF8.self))
            return
        }
        let t = signed.terms
        Console.out(
            """
            collaboration  \(t.collaborationID)
            external ID    \(t.externalID)
            expires        \(t.expiresAt)
            consumer       \(t.consumer.name) (signed: \(signed.signatures.consumer == nil ? "no" : "yes"))
            provider       \(t.provider?.name ?? "(not accepted yet)") (signed: \(signed.signatures.provider == nil ? "no" : "yes"))
            coordinator    \(t.coordinator.name)
            matching       \(t.matching.identifierTypes.joined(separator: ", ")); rules v\(t.matching.rulesVersion)\(t.matching.gmailRule ? ", Gmail rule" : "")\(t.matching.defaultCountryCallingCode.map { ", default country code +\($0)" } ?? ""); hash \(t.matching.hashToGroup)
            output         CSV\(t.output.gzip ? " (gzip)" : ""), \(t.output.sealed ? "sealed to the provider" : "plain")\(t.output.deliverMemberID ? ", with member IDs" : "")
            privacy        ≥ \(t.privacy.minConsumerRows) consumer identifiers, ≥ \(t.privacy.minMatchedRows) matched rows, ≤ \(t.privacy.maxRunsPerWindow) runs per \(t.privacy.windowSeconds / 3600) h
            differencing   \(t.privacy.effectiveRunSimilarityPercent == 0 ? "off" : "refuse runs ≥ \(t.privacy.effectiveRunSimilarityPercent) % similar to an earlier run")
            noise          \(t.privacy.noise.map { "\($0.mechanism), ε \(PrivacyGuards.epsilonText($0.epsilonMillis)) per run, budget \(PrivacyGuards.epsilonText($0.budgetMillis)), sensitivity \($0.sensitivity)" } ?? "off (exact counts)")
            destination    \(t.destination.map { d in d.kind == "local" ? "local directory \(d.directory ?? "?")"
            : d.kind == "s3" ? "s3://\(d.bucket ?? "?")/\(d.prefix ?? "") in \(d.region ?? "?") through role \(d.roleARN ?? "?")" : d.kind } ?? "(not set)")
            """)
    }
}
