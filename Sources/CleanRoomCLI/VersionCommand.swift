import RistrettoPSI

enum VersionCommand {
    static func run(_ argv: [String]) throws {
        let args = try Arguments(argv, flags: ["help"])
        if args.has("help") {
            Console.out("usage: cleanroom version")
            return
        }
        Console.out("cleanroom protocol \(DomainSeparation.protocolName)-\(DomainSeparation.protocolVersion)")
        Console.out("libsodium \(CryptoLibrary.libsodiumVersion)")
    }
}
