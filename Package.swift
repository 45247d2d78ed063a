// swift-tools-version:6.0
// CleanRoom: privacy-first clean room activation over Ristretto255 (see README.md, Protocol/SPEC.md).
import PackageDescription

let package = Package(
    name: "CleanRoom",
    products: [
        .executable(name: "cleanroom", targets: ["CleanRoomCLI"]),
        .library(name: "RistrettoPSI", targets: ["RistrettoPSI"]),
        .library(name: "Identifiers", targets: ["Identifiers"]),
        .library(name: "AuditLog", targets: ["AuditLog"]),
    ],
    targets: [
        // C at the bottom: system libraries from Debian's packages, nothing vendored.
        .systemLibrary(
            name: "CSodium",
            path: "Sources/CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

        // The only module that imports CSodium.
        .target(name: "RistrettoPSI", dependencies: ["CSodium"]),
        .target(name: "Identifiers", dependencies: ["RistrettoPSI"]),
        // The only module that imports CSQLite: the append-only, signed Clean_Room_Audit_Log.
        .target(name: "AuditLog", dependencies: ["CSQLite", "RistrettoPSI"]),

        // Thin CLI: parsing, wiring, printing.
        .executableTarget(
            name: "CleanRoomCLI",
            dependencies: ["RistrettoPSI", "Identifiers", "AuditLog"],
            path: "Sources/CleanRoomCLI"
        ),

        .testTarget(name: "RistrettoPSITests", dependencies: ["RistrettoPSI"]),
        .testTarget(name: "IdentifiersTests", dependencies: ["Identifiers", "RistrettoPSI"]),
        // CSQLite lets the tamper tests edit a log through the C API, as an attacker with file
        // access would; "CleanRoomCLI" makes `swift test` build the `cleanroom` binary that the
        // concurrency and kill -9 tests spawn.
        .testTarget(name: "AuditLogTests", dependencies: ["AuditLog", "RistrettoPSI", "CSQLite", "CleanRoomCLI"]),
    ],
    swiftLanguageModes: [.v6]
)
