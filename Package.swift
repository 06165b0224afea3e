// swift-tools-version: 6.1
import PackageDescription

/// Settings every Veil Swift target shares: Swift 6 mode with strict concurrency (the default in
/// Swift 6 mode), plus the upcoming features our style guide asks for.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Veil",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "VeilCrypto", targets: ["VeilCrypto"]),
        .library(name: "VeilProtocol", targets: ["VeilProtocol"]),
        .library(name: "VeilWire", targets: ["VeilWire"]),
        .library(name: "VeilSimulation", targets: ["VeilSimulation"]),
        .executable(name: "veil-sim", targets: ["VeilSim"]),
        .executable(name: "veil-bench", targets: ["VeilBench"]),
        .executable(name: "veil-vectors", targets: ["VeilVectors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C libraries enter through system-library targets; only VeilCrypto imports them.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "COpenSSLCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(
            name: "VeilCrypto",
            dependencies: ["CSodium", "COpenSSLCrypto"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilProtocol",
            dependencies: ["VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilWire",
            dependencies: ["VeilProtocol", "VeilCrypto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/README.md"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilSimulation",
            dependencies: ["VeilProtocol", "VeilCrypto", "VeilWire", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilSim",
            dependencies: ["VeilSimulation", "VeilProtocol", "VeilCrypto", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilVectors",
            dependencies: ["VeilProtocol", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilBench",
            dependencies: ["VeilCrypto"],
            swiftSettings: strictSettings
        ),

        .testTarget(
            name: "VeilProtocolTests",
            dependencies: ["VeilProtocol", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilWireTests",
            dependencies: ["VeilWire", "VeilProtocol", "VeilCrypto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilSimulationTests",
            dependencies: ["VeilSimulation", "VeilProtocol", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilCryptoTests",
            dependencies: ["VeilCrypto"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
