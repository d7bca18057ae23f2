// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Conveyor",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "conveyor", targets: ["conveyor"]),
        .library(name: "ConveyorCore", targets: ["ConveyorCore"]),
        .library(name: "ConveyorTesting", targets: ["ConveyorTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // The operator dashboard's HTTP server (`conveyor web`); its swift-configuration trait is not used.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // conveyor.yml: the settings reader parses it with Yams' nodes, whose marks give each key's line.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // Web Push: P-256 ECDH and ECDSA (VAPID), HKDF and AES-GCM (RFC 8291).
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // OpenTelemetry: the tracing API (spans around a job and the work it sends out of the process) and swift-otel's
        // OTLP/HTTP exporter only (its gRPC trait would build grpc-swift).
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.3.0"),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // C libraries from Debian, found through pkg-config.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "CLibpq", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CVips", pkgConfig: "vips", providers: [.apt(["libvips-dev"])]),
        .systemLibrary(
            name: "CFFmpeg", pkgConfig: "libavformat libavcodec libavutil libswscale libswresample",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswscale-dev", "libswresample-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // SHA-256 and HMAC for S3 request signing.
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // TLS for Redis (rediss://).
        .systemLibrary(name: "CLibSSL", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        // Wrappers for variadic C functions and macros that Swift cannot call directly.
        .target(name: "CShims", dependencies: ["CVips", "CFFmpeg", "CCurl"]),

        // One Swift wrapper per C library: the only code that imports a C module.
        .target(name: "ConnectionThread", swiftSettings: swiftSettings),
        .target(
            name: "Redis", dependencies: ["CHiredis", "CLibSSL", "ConnectionThread", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(name: "Postgres", dependencies: ["CLibpq", "ConnectionThread"], swiftSettings: swiftSettings),
        .target(name: "Vips", dependencies: ["CVips", "CShims"], swiftSettings: swiftSettings),
        .target(name: "AV", dependencies: ["CFFmpeg", "CShims"], swiftSettings: swiftSettings),
        .target(name: "Curl", dependencies: ["CCurl", "CShims"], swiftSettings: swiftSettings),
        // libcrypto's SHA-256 and HMAC: S3 request signing, summary cache keys, the dashboard's form tokens.
        .target(name: "Digest", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),

        // Jobs, retries, the worker and the QueueBackend protocol it talks to. No Redis here.
        .target(
            name: "ConveyorCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"), .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings),
        // For tests of job classes and backends without Redis: an in-memory backend, a handler's JobContext, recorders.
        .target(
            name: "ConveyorTesting",
            dependencies: ["ConveyorCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // The queue backend in Sidekiq's Redis layout: keys, scripts, reliable fetch, batches, heartbeat, promoter.
        .target(
            name: "SidekiqQueue",
            dependencies: ["ConveyorCore", "Redis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // The queue backend over BullMQ's keys, running BullMQ's own Lua scripts from the pinned `bullmq` package.
        .target(
            name: "BullMQQueue",
            dependencies: ["ConveyorCore", "Redis", "Digest", "Schedules", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),

        // Periodic jobs: cron lines with zones, the file's schedules in sidekiq-cron's Redis layout, claim-and-push per tick.
        .target(
            name: "Schedules",
            dependencies: [
                "ConveyorCore", "Redis", "Digest", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        // Operations: results in PostgreSQL, migrations, Prometheus metrics, health endpoint, dead/retry tools.
        .target(
            name: "Operations",
            dependencies: [
                "ConveyorCore", "SidekiqQueue", "Postgres", "Redis",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings),
        // Traces: the job's span from the producer's context (Sidekiq's `traceparent`, BullMQ's `opts.tm`), the
        // OTLP/HTTP export through swift-otel, the settings of both.
        .target(
            name: "Telemetry",
            dependencies: [
                "ConveyorCore", .product(name: "Logging", package: "swift-log"), .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        // Supervised helper processes for native decoding (`conveyor helper`).
        .target(name: "Sandbox", dependencies: ["ConveyorCore", "CShims", .product(name: "Tracing", package: "swift-distributed-tracing")], swiftSettings: swiftSettings),

        // Where media lives: the local root, or an S3-compatible bucket (the S3 client: SigV4, libcurl transfers
        // streamed to and from files); the helpers only ever see a local root.
        .target(name: "Storage", dependencies: ["ConveyorCore", "Sandbox", "Curl", "Digest", .product(name: "Tracing", package: "swift-distributed-tracing")], swiftSettings: swiftSettings),

        // Handler families.
        .target(name: "Images", dependencies: ["ConveyorCore", "Vips", "Sandbox", "Storage"], swiftSettings: swiftSettings),
        .target(
            name: "Media", dependencies: ["ConveyorCore", "AV", "Sandbox", "Images", "Vips", "Storage", "Postgres", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "Mail",
            dependencies: ["ConveyorCore", "SidekiqQueue", "Curl", "Redis", "Postgres", .product(name: "Mustache", package: "swift-mustache"), .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: swiftSettings),
        .target(
            name: "Summaries", dependencies: ["ConveyorCore", "SidekiqQueue", "Curl", "Digest", "Redis", "Postgres", .product(name: "Logging", package: "swift-log"), .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: swiftSettings),
        .target(
            name: "Push", dependencies: ["ConveyorCore", "SidekiqQueue", "Redis", "Curl", "Postgres", .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),

        // The operator dashboard (`conveyor web`): pages and actions over Operations' sets, queues and result queries.
        .target(
            name: "Web",
            dependencies: [
                "ConveyorCore", "SidekiqQueue", "BullMQQueue", "Operations", "Redis", "Postgres", "Media", "Summaries", "Storage", "Curl", "Digest", "Schedules",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),

        // The executable: argument parsing, configuration, wiring.
        .executableTarget(
            name: "conveyor",
            dependencies: [
                "ConveyorCore", "SidekiqQueue", "BullMQQueue", "Images", "Media", "Mail", "Summaries", "Push", "Operations", "Postgres", "Redis", "Sandbox", "Storage", "Web", "Schedules", "Telemetry",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),

        // Benchmarks/llm/run.sh: summaries with the primary provider down versus the fallback alone.
        .executableTarget(
            name: "llm-bench", dependencies: ["Summaries", "ConveyorCore", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/llm/Sources", swiftSettings: swiftSettings),

        .testTarget(
            name: "ConveyorCoreTests", dependencies: ["ConveyorCore", "ConveyorTesting", "SidekiqQueue", "Redis", "Postgres"], exclude: ["sidekiq_interop.rb"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "mail-bench", dependencies: ["Mail", "Curl", "ConveyorCore", .product(name: "Logging", package: "swift-log")],
            path: "Benchmarks/mail/Sources", swiftSettings: swiftSettings),
        // Benchmarks/push/run.sh: push.send's sending path against pywebpush.
        .executableTarget(
            name: "push-bench", dependencies: ["Push", "ConveyorCore", .product(name: "Crypto", package: "swift-crypto")],
            path: "Benchmarks/push/Sources", swiftSettings: swiftSettings),
        .testTarget(
            name: "MailTests", dependencies: ["Mail", "Curl", "ConveyorCore", "SidekiqQueue", "Redis", "Postgres", .product(name: "Logging", package: "swift-log")],
            exclude: ["smtp_sink.py", "parse_eml.py"], swiftSettings: swiftSettings),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres"], swiftSettings: swiftSettings),
        .testTarget(name: "RedisTests", dependencies: ["Redis", "SidekiqQueue", "ConveyorCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OperationsTests", dependencies: ["Operations", "ConveyorCore", "SidekiqQueue", "Postgres", "Redis"], exclude: ["tcp_proxy.py"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "SummariesTests", dependencies: ["Summaries", "Curl", "Digest", "ConveyorCore", "ConveyorTesting", "SidekiqQueue", "Redis", "Postgres"],
            exclude: ["fake_llm_server.py"], swiftSettings: swiftSettings),
        // Benchmarks/video/run.sh drives this; not run by the tests.
        .executableTarget(name: "VideoBench", dependencies: ["AV"], path: "Benchmarks/video/VideoBench", swiftSettings: swiftSettings),
        // Benchmarks/audio/run.sh drives this; not run by the tests.
        .executableTarget(name: "AudioBench", dependencies: ["AV"], path: "Benchmarks/audio/AudioBench", swiftSettings: swiftSettings),
        .testTarget(
            name: "MediaTests", dependencies: ["Media", "Images", "AV", "Sandbox", "Storage", "ConveyorCore", "SidekiqQueue", "Redis", "Postgres"],
            exclude: ["cutting_proxy.py", "waveform_oracle.py"], swiftSettings: swiftSettings),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "ConveyorCore", "SidekiqQueue", "Redis"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WebTests", dependencies: ["Web", "Operations", "ConveyorCore", "SidekiqQueue", "Redis", "Postgres", "Storage", "Media", "Summaries", "Schedules"],
            exclude: ["browser"], swiftSettings: swiftSettings),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "ConveyorCore", "Curl", "Digest", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "PushTests", dependencies: ["Push", "Curl", "ConveyorCore", "ConveyorTesting", "SidekiqQueue", "Redis", "Postgres", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["push_service.py"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BullMQTests", dependencies: ["BullMQQueue", "ConveyorCore", "ConveyorTesting", "Redis", "Digest", .product(name: "Logging", package: "swift-log")],
            exclude: ["bullmq_peer.py"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SchedulesTests", dependencies: ["Schedules", "ConveyorCore", "Redis"], exclude: ["croniter_oracle.py", "sidekiq_cron_list.rb"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TelemetryTests",
            dependencies: [
                "Telemetry", "ConveyorCore", "ConveyorTesting", "Redis", "SidekiqQueue", "Curl", "Storage", .product(name: "Logging", package: "swift-log"), .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            exclude: ["otlp_receiver.py"], swiftSettings: swiftSettings),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "Vips", "Sandbox", "Storage", "ConveyorCore", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
    ]
)
