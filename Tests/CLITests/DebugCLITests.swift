import Foundation
import TestSupport
import Testing

/// The reviewer tools reproduce the spec's vectors from the shell.
@Suite("Reviewer tools")
struct DebugCLITests {
    @Test func hashToGroupReproducesRFC9497Input() throws {
        let r = try CLI.expectSuccess([
            "debug", "hash-to-group", "--dst-hex",
            "48617368546f47726f75702d4f50524656312d002d72697374726574746f3235352d534841353132", "--message-hex", "00",
        ])
        #expect(
            r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "5873db2e5f8f4f544ce3e574c74c487f03bc64a2cf63b7c913908091aab03357")
    }

    @Test func decodeElementRejectsNonCanonicalWithTheRule() throws {
        let bad = try CLI.run([
            "debug", "decode-element", "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("crypto.invalid_element_encoding"))
        let identity = try CLI.run(["debug", "decode-element", String(repeating: "0", count: 64)])
        #expect(identity.status == 1 && identity.stderr.contains("crypto.identity_element"))
        let ok = try CLI.expectSuccess([
            "debug", "decode-element", "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
        ])
        #expect(ok.stdout.hasPrefix("e2f2ae0a"))
        #expect(try CLI.run(["debug", "decode-element", "zz"]).status == 64)
    }

    @Test func expandMessageReproducesRFC9380K3() throws {
        // RFC 9380 K.3, msg = "", len_in_bytes = 0x20.
        let r = try CLI.expectSuccess([
            "debug", "expand-message", "--dst-hex",
            "515555582d5630312d435330322d776974682d657870616e6465722d5348413531322d323536",
            "--message-hex", "", "--length", "32",
        ])
        #expect(
            r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba")
    }

    @Test func normalizePrintsMatchValueButErrorsNeverTheValue() throws {
        let r = try CLI.expectSuccess(["debug", "normalize", "--type", "email", "  Alice@Example.COM "])
        #expect(r.stdout.contains("alice@example.com"))
        // SHA-256("alice@example.com")
        #expect(r.stdout.contains("ff8d9819fc0e12bf0d24892e45987e249a28dce836a85cad60e28eaaa8c6d976"))
        let bad = try CLI.run(["debug", "normalize", "--type", "email", "secret.person@@example.com"])
        #expect(bad.status == 1)
        #expect(!bad.stderr.contains("secret.person"))
        #expect(try CLI.run(["debug", "normalize", "--type", "fax", "x"]).status == 64)
    }
}
