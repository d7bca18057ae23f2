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
            var configuration = try ImagesConfiguration(settings: context.settings)
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

    /// Registers `image.thumbnail` and `image.strip_metadata` (queue `media`), configured from `environment` through a
    /// reader of the families' settings (`ImagesSettings`, the media root; see docs/configuration.md).
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

/// Everything the image jobs read from the settings.
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

    /// Reads `ImagesSettings` (limits, helper pool, effort, timeout) and the media root from the one reader.
    public init(settings: SettingsReader) throws {
        typealias I = ImagesSettings
        try settings.refuse(I.all)
        mediaRoot = try MediaRoot(settings: settings)
        store = LocalMediaStore(root: mediaRoot)
        limits = try ImageLimits(settings: settings)
        // The declared ranges keep the rlimit and deadline arithmetic downstream from overflowing.
        var pool = HelperPool.Configuration(
            size: settings.int(I.helpers),
            maxJobsPerHelper: settings.int(I.helperMaxJobs),
            limits: HelperLimits(
                addressSpaceMB: settings.int(I.helperMemoryMb),
                cpuSecondsPerJob: settings.int(I.helperCpuSeconds),
                openFiles: settings.int(I.helperOpenFiles),
                sandbox: settings.bool(I.helperSandbox),
                writablePaths: [mediaRoot.path]),
            inProcess: settings.bool(I.imageInProcess))
        if let bin = settings.text(I.helperBin) { pool.executable = bin }
        // libvips threads per helper (the pool already runs `size` helpers in parallel), in the helpers' environment.
        pool.environment[I.vipsConcurrency.name] = String(settings.int(I.vipsConcurrency))
        self.pool = pool
        timeout = .seconds(settings.int(I.imageTimeoutSeconds))
        fastShrinkOnLoad = settings.bool(I.imageFastShrinkOnLoad)
        // Unset keeps the encoder's own default.
        for (format, setting) in [(VipsOutputFormat.webp, I.imageWebpEffort), (.avif, I.imageAvifEffort)] where settings.isSet(setting) {
            defaultEffort[format] = settings.int(setting)
        }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws {
        try self.init(settings: SettingsReader(families: environment))
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
