// swift-tools-version:6.1
import Foundation
import PackageDescription

// Layers, lowest first:
//   Digests, FileIO       SHA-256; typed system calls, time
//   CacheProgWire         the protocol's types and streaming codec, no I/O
//   CacheProg             server (handler + middleware), client, transports
//   CacheProgTesting      in-memory pipes and a driver that plays the go command, for tests
//   ChunkStore            the storage engine alone: Format/ (manifests, records, archives),
//                         Engine/ (packs, catalog, codecs, FastCDC, its threads),
//                         Maintenance/ (trim, gc, verify, recompression, archives); knows
//                         nothing of the protocol, of served files or of other tiers
//   ChunkCache            the GOCACHEPROG handler: Serving/ (live and kept files, counters),
//                         Remote/ (the HTTP tier); joins CacheProg and ChunkStore
//   chunkcache            the command-line tool (ChunkCacheCLI)
// A lower layer never calls back into a higher one.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "ChunkCache",
    // Linux only (glibc, /dev/shm, flock and fallocate semantics): no other platform is declared.
    products: [
        .library(name: "CacheProgWire", targets: ["CacheProgWire"]),
        .library(name: "CacheProg", targets: ["CacheProg"]),
        .library(name: "CacheProgTesting", targets: ["CacheProgTesting"]),
        .library(name: "ChunkStore", targets: ["ChunkStore"]),
        .executable(name: "chunkcache", targets: ["ChunkCacheCLI"]),
        .executable(name: "cacheprog-disk", targets: ["CacheProgDisk"]),
        .executable(name: "cacheprog-load", targets: ["CacheProgLoad"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        // libcurl, loaded when a remote cache is first used (runtime package: libcurl4).
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        // The commit a binary was built from, as the release scripts pass it (-Xcc -DCHUNKCACHE_COMMIT=…).
        .target(name: "CBuildInfo"),

        .target(name: "Digests", dependencies: ["CLibCrypto"]),
        .target(name: "FileIO", dependencies: ["CLinux"]),
        .target(name: "CacheProgWire", dependencies: ["Digests", "FileIO"]),
        .target(
            name: "CacheProg",
            dependencies: [
                "CacheProgWire", "Digests", "FileIO",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "CacheProgTesting", dependencies: ["CacheProg"]),
        .target(name: "ChunkStore", dependencies: ["CZstd", "CZlib", "CSQLite", "Digests", "FileIO"]),
        .target(
            name: "ChunkCache",
            dependencies: [
                "CacheProg", "ChunkStore", "CCurl",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "ChunkCacheCLI",
            dependencies: [
                "ChunkCache", "CBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The example backend users copy: it uses the CacheProg product alone (and the C library),
        // none of the package's internal modules.
        .executableTarget(
            name: "CacheProgDisk",
            dependencies: [
                "CacheProg",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Drives any GOCACHEPROG with many builds' outputs and times it (scripts/bench-scale).
        .executableTarget(
            name: "CacheProgLoad",
            dependencies: [
                "CacheProg", "CacheProgWire", "Digests", "FileIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "CacheProgWireTests", dependencies: ["CacheProgWire", "TestSupport"]),
        .testTarget(name: "CacheProgTests", dependencies: ["CacheProg", "CacheProgTesting", "TestSupport"]),
        .testTarget(name: "ChunkStoreTests", dependencies: ["ChunkStore", "TestSupport"]),
        .testTarget(
            name: "ChunkCacheTests", dependencies: ["ChunkCache", "ChunkStore", "CacheProg", "CacheProgTesting", "TestSupport"],
            exclude: ["Fixtures"]),  // read by path: botocore's known answers (scripts/remote/sigv4_known_answers.py)
    ]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}

// Benchmarks (ordo-one/benchmark) are in the manifest only when asked for, so that building and
// testing the package does not fetch and build the benchmark framework:
//     CHUNKCACHE_BENCHMARKS=1 swift package benchmark        (scripts/bench-micro does this)
if ProcessInfo.processInfo.environment["CHUNKCACHE_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]))
    for (name, dependencies) in [("WireBenchmarks", ["CacheProgWire"]), ("StoreBenchmarks", ["ChunkStore", "Digests"])] {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: dependencies.map { .target(name: $0) } + [.product(name: "Benchmark", package: "benchmark")],
                path: "Benchmarks/\(name)",
                plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]))
    }
}
