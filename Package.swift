// swift-tools-version:6.0
// CleanRoom: privacy-first clean room activation over Ristretto255 (see README.md, Protocol/SPEC.md).
import PackageDescription

// The manifest's directory, for the link order file below (a linker flag needs a full path).
let packageRoot = String(#filePath.dropLast("Package.swift".count))

let package = Package(
    name: "CleanRoom",
    products: [
        .executable(name: "cleanroom", targets: ["CleanRoomCLI"]),
        .executable(name: "cleanroom-bench", targets: ["CleanRoomBench"]),
        .library(name: "RistrettoPSI", targets: ["RistrettoPSI"]),
        .library(name: "Identifiers", targets: ["Identifiers"]),
        .library(name: "Tabular", targets: ["Tabular"]),
        .library(name: "AuditLog", targets: ["AuditLog"]),
        .library(name: "Activation", targets: ["Activation"]),
        .library(name: "Workflow", targets: ["Workflow"]),
        .library(name: "S3Delivery", targets: ["S3Delivery"]),
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
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            path: "Sources/CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // libcurl's headers only: S3Delivery opens the library with dlopen when it first sends a
        // request, so processes that never touch S3 do not load it (Sources/CCurl/shim.h).
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // glibc's <malloc.h> (mallopt), which the Glibc module leaves out; libc itself, nothing to link.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        // libcrypto only (no libssl): SHA-256 with the CPU's SHA extensions (Protocol/SPEC.md §3).
        .systemLibrary(
            name: "COpenSSL",
            path: "Sources/COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),

        // The only module that imports CSodium and COpenSSL.
        .target(name: "RistrettoPSI", dependencies: ["CSodium", "COpenSSL"]),
        .target(name: "Identifiers", dependencies: ["RistrettoPSI"]),
        // Streaming CSV reader/writer for the input files; no dependencies, Foundation only for file I/O.
        .target(name: "Tabular"),
        // The only module that imports CSQLite: the append-only, signed Clean_Room_Audit_Log.
        .target(name: "AuditLog", dependencies: ["CSQLite", "RistrettoPSI"]),
        // The only module that imports CZlib: gzip for delivery objects.
        .target(name: "Gzip", dependencies: ["CZlib"]),
        // The protocol: agreement, round messages, roles. No I/O.
        .target(name: "Activation", dependencies: ["RistrettoPSI", "Identifiers", "Gzip"]),
        // Delivery to Amazon S3 without an AWS SDK: SigV4, credentials, STS, the S3 REST calls
        // over libcurl (the only module that imports CCurl). HMAC/SHA-256 come from RistrettoPSI.
        .target(name: "S3Delivery", dependencies: ["RistrettoPSI", "CCurl"]),
        // The edges: files, state directories, destinations, the audit ledger; each role step.
        .target(
            name: "Workflow",
            dependencies: [
                "RistrettoPSI", "Identifiers", "Activation", "Tabular", "AuditLog", "S3Delivery", "CMalloc",
            ]),

        // Thin CLI: parsing, wiring, printing.
        .executableTarget(
            name: "CleanRoomCLI",
            dependencies: [
                "RistrettoPSI", "Identifiers", "AuditLog", "Activation", "Workflow", "Tabular", "S3Delivery",
            ],
            path: "Sources/CleanRoomCLI",
            exclude: ["link-order.txt"],
            // Release only: lld with packed relative relocations (glibc ≥ 2.36), which spares every
            // process 1.7 MiB of relocation pages, and the functions the steps run laid out first
            // (link-order.txt, made by Benchmarks/link-order.sh), so the code a process touches
            // fills fewer pages. BENCHMARKS.md "Fewer resident pages".
            linkerSettings: [
                .unsafeFlags(
                    [
                        "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                        "-Xlinker", "--symbol-ordering-file=\(packageRoot)Sources/CleanRoomCLI/link-order.txt",
                        "-Xlinker", "--no-warn-symbol-ordering",
                    ], .when(configuration: .release))
            ]
        ),

        // The performance tester (BENCHMARKS.md): stages, end to end, the primitive bound, peak RSS.
        .executableTarget(
            name: "CleanRoomBench",
            dependencies: ["RistrettoPSI", "Identifiers", "Activation", "Workflow", "Tabular"],
            path: "Benchmarks/CleanRoomBench"
        ),

        // Test support shared by the targets that drive the built `cleanroom` binary.
        .target(name: "TestSupport", dependencies: ["S3Delivery", "RistrettoPSI"], path: "Tests/TestSupport"),

        // libFuzzer harnesses (Tests/Fuzz/README.md). A plain build makes each a replay tool for
        // its corpus; Tests/scripts/fuzz.sh builds them with -sanitize=fuzzer,address and
        // -DCLEANROOM_FUZZING, which swaps the replay `main` for LLVMFuzzerTestOneInput.
        .target(
            name: "FuzzSupport", dependencies: ["Activation", "Identifiers", "RistrettoPSI"],
            path: "Tests/Fuzz/FuzzSupport"),
        .executableTarget(
            name: "FuzzCSV", dependencies: ["FuzzSupport", "Tabular"], path: "Tests/Fuzz/FuzzCSV", exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzMessage", dependencies: ["FuzzSupport", "Activation", "RistrettoPSI"],
            path: "Tests/Fuzz/FuzzMessage", exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzAgreement", dependencies: ["FuzzSupport", "Activation", "RistrettoPSI"],
            path: "Tests/Fuzz/FuzzAgreement", exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzEmail", dependencies: ["FuzzSupport", "Identifiers"], path: "Tests/Fuzz/FuzzEmail",
            exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzPhone", dependencies: ["FuzzSupport", "Identifiers"], path: "Tests/Fuzz/FuzzPhone",
            exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzMAID", dependencies: ["FuzzSupport", "Identifiers"], path: "Tests/Fuzz/FuzzMAID",
            exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzCustom", dependencies: ["FuzzSupport", "Identifiers"], path: "Tests/Fuzz/FuzzCustom",
            exclude: ["seeds"]),
        .executableTarget(
            name: "FuzzElement", dependencies: ["FuzzSupport", "RistrettoPSI"], path: "Tests/Fuzz/FuzzElement",
            exclude: ["seeds"]),

        .testTarget(name: "RistrettoPSITests", dependencies: ["RistrettoPSI"]),
        .testTarget(name: "IdentifiersTests", dependencies: ["Identifiers", "RistrettoPSI"]),
        .testTarget(name: "TabularTests", dependencies: ["Tabular"]),
        .testTarget(name: "GzipTests", dependencies: ["Gzip"]),
        .testTarget(name: "S3DeliveryTests", dependencies: ["S3Delivery", "RistrettoPSI", "TestSupport"]),
        .testTarget(name: "ActivationTests", dependencies: ["Activation", "Identifiers", "RistrettoPSI"]),
        // CSQLite lets the tamper tests edit a log through the C API, as an attacker with file
        // access would; "CleanRoomCLI" makes `swift test` build the `cleanroom` binary that the
        // concurrency and kill -9 tests spawn.
        .testTarget(
            name: "AuditLogTests", dependencies: ["AuditLog", "RistrettoPSI", "CSQLite", "CleanRoomCLI", "TestSupport"]),
        .testTarget(
            name: "CLITests",
            dependencies: [
                "Workflow", "Activation", "AuditLog", "RistrettoPSI", "CleanRoomCLI", "TestSupport", "S3Delivery",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
