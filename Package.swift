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
        .library(name: "VeilTransport", targets: ["VeilTransport"]),
        .library(name: "VeilAggregator", targets: ["VeilAggregator"]),
        .library(name: "VeilStore", targets: ["VeilStore"]),
        .library(name: "VeilDevice", targets: ["VeilDevice"]),
        .library(name: "VeilFeatures", targets: ["VeilFeatures"]),
        .library(name: "VeilPrivacy", targets: ["VeilPrivacy"]),
        .executable(name: "veil-aggregator", targets: ["VeilAggregatorCLI"]),
        .executable(name: "veil-fuzz", targets: ["VeilFuzz"]),
        .executable(name: "veil-device", targets: ["VeilDeviceCLI"]),
        .library(name: "VeilDeviceAgent", targets: ["VeilDeviceAgent"]),
        .library(name: "VeilDeviceC", type: .dynamic, targets: ["VeilDeviceC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
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
            dependencies: ["VeilProtocol", "VeilCrypto", "VeilWire", "VeilFeatures", "VeilPrivacy", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilNetworkSimulation",
            dependencies: [
                "VeilSimulation", "VeilAggregator", "VeilStore", "VeilDevice", "VeilFeatures", "VeilWire", "VeilProtocol", "VeilCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilSim",
            dependencies: [
                "VeilSimulation", "VeilNetworkSimulation", "VeilFeatures", "VeilProtocol", "VeilCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilVectors",
            dependencies: ["VeilProtocol", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        // The device-facing gRPC service (generated stubs) and what client and server share.
        .target(
            name: "VeilTransport",
            dependencies: [
                "VeilWire", "VeilProtocol", "VeilCrypto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            exclude: ["Generated/README.md"],
            swiftSettings: strictSettings
        ),
        // The aggregator's durable state: enrolment, round history, feature windows and the
        // registry, on SQLite (embedded) or PostgreSQL, behind one protocol and one shared suite.
        .target(
            name: "VeilStore",
            dependencies: [
                "VeilProtocol", "VeilCrypto", "VeilFeatures", "VeilPrivacy",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilAggregator",
            dependencies: [
                "VeilStore", "VeilTransport", "VeilWire", "VeilProtocol", "VeilCrypto", "VeilFeatures",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // Crash points for the kill -9 harness exist only in debug builds (FaultPoint.swift).
            swiftSettings: strictSettings + [.define("VEIL_FAULT_INJECTION", .when(configuration: .debug))]
        ),
        .executableTarget(
            name: "VeilAggregatorCLI",
            dependencies: [
                "VeilAggregator", "VeilStore", "VeilProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "VeilDevice",
            dependencies: [
                "VeilTransport", "VeilWire", "VeilProtocol", "VeilCrypto", "VeilFeatures", "VeilPrivacy",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The edge agent over a state directory: enrol, learn feature sets, record, take part in rounds.
        .target(
            name: "VeilDeviceAgent",
            dependencies: [
                "VeilDevice", "VeilFeatures", "VeilProtocol", "VeilCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilDeviceCLI",
            dependencies: [
                "VeilDeviceAgent", "VeilProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            exclude: ["veil-device.service"],
            swiftSettings: strictSettings
        ),
        // The agent's C ABI (veil_device.h beside it): libVeilDeviceC.so.
        .target(
            name: "VeilDeviceC",
            dependencies: ["VeilDeviceAgent", .product(name: "Logging", package: "swift-log")],
            exclude: ["veil_device.h"],
            swiftSettings: strictSettings
        ),
        // Feature definitions, their layout in one aggregation vector, encoding and decoding.
        .target(
            name: "VeilFeatures",
            dependencies: ["VeilProtocol", "VeilPrivacy", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        // Differential privacy: exact discrete Gaussian sampling and the Rényi accountant.
        .target(
            name: "VeilPrivacy",
            dependencies: ["VeilCrypto"],
            swiftSettings: strictSettings
        ),
        // Replays a corpus through the device-message decoders; built with Fuzz/run.sh it is the
        // libFuzzer target for the same decoders.
        .executableTarget(
            name: "VeilFuzz",
            dependencies: ["VeilWire", "VeilProtocol", "VeilCrypto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "VeilBench",
            dependencies: ["VeilCrypto", "VeilPrivacy", "VeilProtocol"],
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
            dependencies: ["VeilSimulation", "VeilFeatures", "VeilProtocol", "VeilCrypto", "VeilPrivacy"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilNetworkTests",
            dependencies: [
                "VeilAggregator", "VeilStore", "VeilDevice", "VeilFeatures", "VeilTransport", "VeilWire", "VeilProtocol", "VeilCrypto",
                "VeilSimulation", "VeilNetworkSimulation", "VeilDeviceAgent", "VeilPrivacy",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilDeviceTests",
            dependencies: ["VeilDevice", "VeilWire", "VeilProtocol", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilFeaturesTests",
            dependencies: ["VeilFeatures", "VeilDevice", "VeilProtocol", "VeilCrypto", "VeilPrivacy"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilCryptoTests",
            dependencies: ["VeilCrypto"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VeilPrivacyTests",
            dependencies: ["VeilPrivacy", "VeilCrypto"],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
