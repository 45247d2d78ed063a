import Foundation
import TestSupport
import Testing

/// A process that never sends an S3 or STS request does not load libcurl (nor the 28 libraries
/// it brings: GnuTLS, Kerberos, OpenLDAP…): S3Delivery opens it with `dlopen` on the first
/// request. Guards against a dependency that would link it again (FoundationNetworking did).
/// - SeeAlso: `Protocol/SPEC.md` §12 "HTTP"; `Sources/CCurl/shim.h`.
@Suite("Libraries a process loads")
struct LoadedLibrariesTests {
    /// The dynamic loader's own account (`LD_DEBUG=files`), not a reading of the ELF headers: what
    /// actually gets mapped, whatever pulls it in.
    @Test func noLibcurlWithoutS3() throws {
        let r = try CLI.run(["--help"], environment: ["LD_DEBUG": "files"])
        #expect(r.status == 0)
        let loaded = r.stderr.split(separator: "\n").filter { $0.contains("file=") }
        #expect(
            loaded.contains { $0.contains("libsodium") },
            "the loader's trace is there (control): \(r.stderr.prefix(400))")
        #expect(!loaded.contains { $0.contains("libcurl") }, "\(loaded.filter { $0.contains("libcurl") })")
        #expect(!loaded.contains { $0.contains("libgnutls") })
    }
}
