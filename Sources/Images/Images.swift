public import ConveyorCore
public import Storage
public import Sandbox
public import Vips

/// Image jobs: thumbnails and metadata stripping with libvips, run in supervised helper processes.
public enum ImagesJobs: JobFamilyDefinition, DeclaresHelperOperations {
    /// `image.thumbnail` in a helper: the variants written, as the job's result.
    public static let thumbnailOperation = HelperOperation<ImageHelperRequest<ThumbnailRequest>, JSONValue>("image.thumbnail") {
        request, context throws(JobFailure) in
        try ImageOperations.thumbnail(request.request, root: try request.root(), limits: request.limits,
                                      fastShrinkOnLoad: request.fastShrinkOnLoad ?? true, deadline: context.deadline)
    }

    /// `image.strip_metadata` in a helper: the clean copy written, as the job's result.
    public static let stripMetadataOperation = HelperOperation<ImageHelperRequest<StripMetadataRequest>, JSONValue>("image.strip_metadata") {
        request, context throws(JobFailure) in
        try ImageOperations.stripMetadata(request.request, root: try request.root(), limits: request.limits,
                                          verifyLosslessCopy: request.verifyLosslessCopy ?? true, deadline: context.deadline)
    }

    /// This family's helper operations, for `conveyor helper` and for an in-process `HelperPool`.
    public static let helperOperations = HelperOperations().adding(thumbnailOperation).adding(stripMetadataOperation)

    /// The family's queue, and its classes: what `conveyor enqueue` needs, without building the family.
    public static let queue = "media"
    public static let classNames = ["image.thumbnail", "image.strip_metadata"]

    /// The family for a worker: both classes, on the process's one image helper pool (`sharedPool`), which the
    /// family's services stop at shutdown.
    public static func family(_ context: FamilyContext) throws -> JobFamily {
        let (configuration, pool) = try sharedPool(context)
        var registry = JobRegistry()
        register(into: &registry, configuration: configuration, pool: pool)
        // The media store's traffic (the video family shares the store).
        let storage = try context.mediaStore().metrics
        return JobFamily(
            registry: registry, services: [StoppingService("image-helpers") { pool.shutdown() }],
            metrics: { storage.prometheusText() })
    }

    /// The image configuration and helper pool of a worker process, built once: the image jobs and
    /// `media.ingest`'s image half share them.
    public static func sharedPool(_ context: FamilyContext) throws -> (ImagesConfiguration, HelperPool) {
        try context.shared("images.helper-pool", as: ImagesShared.self) {
            let media = try context.mediaStore()
            var configuration = try ImagesConfiguration(environment: context.environment)
            configuration.store = media.store
            configuration.pool.limits.writablePaths = [media.settings.writablePath]
            return ImagesShared(configuration: configuration, pool: HelperPool(configuration.pool, operations: helperOperations))
        }.parts
    }

    private struct ImagesShared: Sendable {
        var configuration: ImagesConfiguration
        var pool: HelperPool
        var parts: (ImagesConfiguration, HelperPool) { (configuration, pool) }
    }

    /// Registers `image.thumbnail` and `image.strip_metadata` (queue `media`), configured from `environment`:
    /// `CONVEYOR_MEDIA_ROOT`, `CONVEYOR_IMAGE_*` limits, `CONVEYOR_HELPER*` pool settings (see docs/configuration.md).
    public static func register(into registry: inout JobRegistry, environment: [String: String]) throws {
        let configuration = try ImagesConfiguration(environment: environment)
        register(into: &registry, configuration: configuration, pool: HelperPool(configuration.pool, operations: helperOperations))
    }

    /// The same with a configuration and helper pool of the caller's (the pool `media.ingest` uses for its images
    /// too, so a process keeps one image pool; an in-process pool needs `helperOperations`).
    public static func register(into registry: inout JobRegistry, configuration: ImagesConfiguration, pool: HelperPool) {
        let thumbnail = ImageJobHandler(kind: .thumbnail, configuration: configuration, pool: pool)
        let strip = ImageJobHandler(kind: .stripMetadata, configuration: configuration, pool: pool)
        let retry = RetryPolicy.default
        registry.register(JobClass(
            "image.thumbnail", queue: queue, retry: retry, timeout: configuration.timeout,
            concurrency: configuration.pool.size, handler: thumbnail))
        registry.register(JobClass(
            "image.strip_metadata", queue: queue, retry: retry, timeout: configuration.timeout,
            concurrency: configuration.pool.size, handler: strip))
    }
}

/// Everything the image jobs read from the environment.
public struct ImagesConfiguration: Sendable {
    /// The local media root (`CONVEYOR_MEDIA_ROOT`): where the jobs' keys live unless `store` names another store.
    public var mediaRoot: MediaRoot {
        didSet { store = LocalMediaStore(root: mediaRoot) }
    }
    /// Where the jobs read sources and publish outputs; the local media root unless set.
    public var store: any MediaStore
    public var limits: ImageLimits
    public var pool: HelperPool.Configuration
    /// Per-job time limit (CONVEYOR_IMAGE_TIMEOUT_SECONDS, default 60).
    public var timeout: Duration
    /// Encoder effort for variants that do not name one (CONVEYOR_IMAGE_WEBP_EFFORT 0-6, CONVEYOR_IMAGE_AVIF_EFFORT
    /// 0-9); unset keeps the encoder's default (WebP 4, AVIF 2).
    public var defaultEffort: [VipsOutputFormat: Int] = [:]
    /// JPEG shrink-on-load by any factor that still covers the largest variant (CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD,
    /// default on, as sharp's fastShrinkOnLoad); off keeps libvips' rule, which leaves a factor of two to its
    /// resampler and so decodes more pixels.
    public var fastShrinkOnLoad = true

    public init(environment: [String: String]) throws {
        mediaRoot = try MediaRoot(environment: environment)
        store = LocalMediaStore(root: mediaRoot)
        limits = try ImageLimits(environment: environment)
        // Each in a documented range: a huge value would overflow the rlimit and deadline arithmetic downstream.
        func int(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            try EnvironmentNumber.int(name, in: environment, default: fallback, range: range)
        }
        var pool = HelperPool.Configuration(
            size: try int("CONVEYOR_HELPERS", 2, 1...256),
            maxJobsPerHelper: try int("CONVEYOR_HELPER_MAX_JOBS", 200, 1...1_000_000),
            limits: HelperLimits(
                addressSpaceMB: try int("CONVEYOR_HELPER_MEMORY_MB", 2048, 64...1_048_576),
                cpuSecondsPerJob: try int("CONVEYOR_HELPER_CPU_SECONDS", 60, 1...86_400),
                openFiles: try int("CONVEYOR_HELPER_OPEN_FILES", 256, 16...1_048_576),
                sandbox: try HelperLimits.sandbox(environment: environment),
                writablePaths: [mediaRoot.path]),
            inProcess: try EnvironmentSwitch.value("CONVEYOR_IMAGE_IN_PROCESS", in: environment, default: false))
        if let bin = environment["CONVEYOR_HELPER_BIN"], !bin.isEmpty { pool.executable = bin }
        // libvips threads per helper: the pool already runs `size` helpers in parallel.
        pool.environment["VIPS_CONCURRENCY"] = environment["VIPS_CONCURRENCY"] ?? "1"
        self.pool = pool
        timeout = .seconds(try int("CONVEYOR_IMAGE_TIMEOUT_SECONDS", 60, 1...86_400))
        fastShrinkOnLoad = try EnvironmentSwitch.value("CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD", in: environment, default: true)
        for (format, name) in [(VipsOutputFormat.webp, "CONVEYOR_IMAGE_WEBP_EFFORT"), (.avif, "CONVEYOR_IMAGE_AVIF_EFFORT")] {
            guard let text = environment[name], !text.isEmpty else { continue }
            let range = ThumbnailVariant.effortRange[format]!
            guard let n = Int(text), range.contains(n) else {
                throw JobFailure.permanent(.invalidConfiguration, "\(name)=\(text) is not an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            defaultEffort[format] = n
        }
    }
}

/// Runs one image job class: validates the arguments in the worker, then hands the work to a helper.
public struct ImageJobHandler: JobHandler {
    public enum Kind: Sendable { case thumbnail, stripMetadata }
    public let kind: Kind
    public let configuration: ImagesConfiguration
    public let pool: HelperPool
    /// Whether a lossless clean copy is decoded once before it is published. Off only where the same job has just
    /// decoded the source's scans, which the copy keeps byte for byte (`media.ingest` makes its thumbnails first).
    public var verifiesLosslessCopies: Bool

    public init(kind: Kind, configuration: ImagesConfiguration, pool: HelperPool, verifiesLosslessCopies: Bool = true) {
        self.kind = kind
        self.configuration = configuration
        self.pool = pool
        self.verifiesLosslessCopies = verifiesLosslessCopies
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        switch kind {
        case .thumbnail:
            var thumbnail = try ThumbnailRequest(arguments: job.arguments)
            for i in thumbnail.variants.indices where thumbnail.variants[i].effort == nil {
                thumbnail.variants[i].effort = configuration.defaultEffort[thumbnail.variants[i].format]
            }
            return try await run(ImagesJobs.thumbnailOperation, thumbnail, fastShrinkOnLoad: configuration.fastShrinkOnLoad, job)
        case .stripMetadata:
            return try await run(
                ImagesJobs.stripMetadataOperation, try StripMetadataRequest(arguments: job.arguments),
                verifyLosslessCopy: verifiesLosslessCopies ? nil : false, job)
        }
    }

    private func run<Request>(
        _ operation: HelperOperation<ImageHelperRequest<Request>, JSONValue>, _ request: Request, fastShrinkOnLoad: Bool? = nil,
        verifyLosslessCopy: Bool? = nil, _ job: JobContext
    ) async throws -> JSONValue {
        let configuration = configuration
        let pool = pool
        do {
            let store = try configuration.store.forJob(job)
            let source = MediaInput(request.source, maxBytes: configuration.limits.maxFileBytes)
            let result = try await store.staged([source], jid: job.jid, deadline: job.deadline) { root in
                var helperRequest = ImageHelperRequest(
                    mediaRoot: root.path, limits: configuration.limits, request: request, fastShrinkOnLoad: fastShrinkOnLoad)
                helperRequest.verifyLosslessCopy = verifyLosslessCopy
                return try await pool.run(operation, helperRequest, deadline: job.deadline)
            }
            return store.locating(result)
        } catch let failure as JobFailure {
            throw failure.with(message: "jid=\(job.jid) \(failure.message)")
        }
    }
}
