// swift-tools-version:6.0
// CleanRoom: privacy-first clean room activation over Ristretto255 (see README.md, Protocol/SPEC.md).
import PackageDescription

let package = Package(
    name: "CleanRoom",
    products: [
        .executable(name: "cleanroom", targets: ["CleanRoomCLI"]),
        .library(name: "RistrettoPSI", targets: ["RistrettoPSI"]),
        .library(name: "Identifiers", targets: ["Identifiers"]),
        .library(name: "Tabular", targets: ["Tabular"]),
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
        // Streaming CSV reader/writer for the input files; no dependencies, Foundation only for file I/O.
        .target(name: "Tabular"),
        // The protocol: agreement, round messages, roles. No I/O.
        .target(name: "Activation", dependencies: ["RistrettoPSI", "Identifiers"]),

        // Thin CLI: parsing, wiring, printing.
        .executableTarget(
            name: "CleanRoomCLI",
            dependencies: ["RistrettoPSI", "Identifiers"],
            path: "Sources/CleanRoomCLI"
        ),

        .testTarget(name: "RistrettoPSITests", dependencies: ["RistrettoPSI"]),
        .testTarget(name: "IdentifiersTests", dependencies: ["Identifiers", "RistrettoPSI"]),
        .testTarget(name: "TabularTests", dependencies: ["Tabular"]),
        .testTarget(name: "ActivationTests", dependencies: ["Activation", "Identifiers", "RistrettoPSI"]),
    ],
    swiftLanguageModes: [.v6]
)
