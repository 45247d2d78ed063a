internal import CSodium

/// One-time libsodium initialisation, shared by every entry point of this module.
///
/// `sodium_init()` is idempotent and thread-safe; Swift initialises a global `let` exactly once,
/// so reading `Sodium.ready` before the first libsodium call is enough.
/// - SeeAlso: libsodium documentation, "Usage" (sodium_init).
enum Sodium {
    static let ready: Void = {
        // sodium_init returns 0 on success, 1 when already initialised, -1 on failure.
        guard sodium_init() >= 0 else {
            fatalError("libsodium failed to initialise: no secure random source is available")
        }
    }()

    /// The version string of the libsodium the process is linked against (not a secret).
    static var versionString: String {
        String(cString: sodium_version_string())
    }
}

/// Facts about the linked libsodium, for diagnostics and benchmark reports.
public enum CryptoLibrary {
    /// The libsodium version string, e.g. `1.0.18`.
    public static var libsodiumVersion: String {
        _ = Sodium.ready
        return Sodium.versionString
    }
}
