public import AV
public import ConveyorCore
public import Storage
public import Sandbox
import Images
public import Postgres

/// Registers the media job classes: video, audio, and `media.ingest` for every upload.
public enum MediaJobs: JobFamilyDefinition, DeclaresMigrations, DeclaresHelperOperations {
    /// The family's queue, and its classes: what `conveyor enqueue` needs, without building the family.
    public static let queue = "media"
    public static let classNames = ["video.probe", "video.transcode", AudioWaveformHandler.jobClass, AudioTranscodeHandler.jobClass, IngestHandler.jobClass]

    /// `conveyor.media_uploads`, the table `media.ingest` writes.
    public static var migrations: [Migration] { MediaMigrations.all }
    public static var helperOperations: HelperOperations { VideoOperations.helperOperations }

    /// The family for a worker: its classes on a video helper pool of its own, `media.ingest`'s images on the
    /// process's image pool (`ImagesJobs.sharedPool`), transcode progress to `context.progress`, and the upload
    /// recorder when PostgreSQL is configured.
    public static func family(_ context: FamilyContext) throws -> JobFamily {
        let media = try context.mediaStore()
        var configuration = try VideoConfiguration(settings: context.settings)
        configuration.helperPool.limits.writablePaths = [media.settings.writablePath]
        let (images, imagePool) = try ImagesJobs.sharedPool(context)
        let recorder = context.environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }.map { PostgresIngestRecorder(url: $0) }
        let pool = HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations)
        var onProgress: (@Sendable (String, TranscodeProgress) -> Void)?
        if let report = context.progress { onProgress = { jid, p in report(jid, p.frames, p.seconds) } }
        var registry = JobRegistry()
        let observers = try register(
            into: &registry, configuration: configuration, pool: pool, onProgress: onProgress,
            images: IngestHandler.imagePipeline(configuration: images, pool: imagePool), recorder: recorder, store: media.store,
            ingestConcurrency: configuration.transcodeConcurrency + images.pool.size)
        return JobFamily(registry: registry, observers: observers, services: [StoppingService("video-helpers") { pool.shutdown() }])
    }

    /// Registers `video.probe`, `video.transcode`, `audio.waveform`, `audio.transcode` and `media.ingest` on the `media` queue.
    /// - Returns: the observers the worker adds for these classes (see the last overload).
    @discardableResult
    public static func register(into registry: inout JobRegistry, environment: [String: String]) throws -> [any JobObserver] {
        try register(into: &registry, environment: environment, onProgress: nil)
    }

    /// The same, with a hook called about once a second per running transcode (for metrics).
    /// - Parameter imagePool: the images family's helper pool, shared by `media.ingest`'s image half (nil: one
    ///   of its own, configured as the image jobs are).
    @discardableResult
    public static func register(
        into registry: inout JobRegistry, environment: [String: String],
        onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)?, imagePool: HelperPool? = nil
    ) throws -> [any JobObserver] {
        let settings = SettingsReader(families: environment)
        let configuration = try VideoConfiguration(settings: settings)
        // media.ingest hands images to the images family, in helpers configured as image.* jobs are.
        let images = try ImagesConfiguration(settings: settings)
        // One row per upload in conveyor.media_uploads when PostgreSQL is configured.
        let recorder = environment["DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }.map { PostgresIngestRecorder(url: $0) }
        return try register(
            into: &registry, configuration: configuration,
            pool: HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations), onProgress: onProgress,
            images: IngestHandler.imagePipeline(
                configuration: images, pool: imagePool ?? HelperPool(images.pool, operations: ImagesJobs.helperOperations)),
            recorder: recorder)
    }

    /// Registers the classes with an explicit configuration and helper pool (tests, or a pool shared by families; an
    /// in-process pool needs `VideoOperations.helperOperations`).
    /// - Parameters:
    ///   - images: the images family's half of `media.ingest`; without it image uploads fail (transient
    ///     `IngestNotConfigured`) and videos still ingest.
    ///   - recorder: where `media.ingest` writes one row per upload (the PostgreSQL table the API reads).
    ///   - store: where the media is (nil: the local media root of `configuration`).
    ///   - ingestConcurrency: how many `media.ingest` jobs run at once in this process (nil: as many as transcodes).
    ///     A worker allows its transcode slots plus its image helpers: image uploads keep every image helper busy,
    ///     and a video upload's transcode waits for a slot it shares with `video.transcode`.
    /// - Returns: the observers the worker adds: with a recorder, the one that gives an upload whose `media.ingest`
    ///   job died a `failed` row.
    @discardableResult
    public static func register(
        into registry: inout JobRegistry, configuration: VideoConfiguration, pool: HelperPool,
        onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)? = nil,
        images: ImageIngest? = nil, recorder: (any IngestRecorder)? = nil, store: (any MediaStore)? = nil,
        ingestConcurrency: Int? = nil
    ) throws -> [any JobObserver] {
        let store = try store ?? LocalMediaStore(root: MediaRoot(configuration.mediaRoot, create: configuration.mediaRootConfigured))
        AVLibrary.configure()
        // In-process decoding logs here; helpers get the level through their environment (`helperPool.environment`).
        AVLibrary.routeLog(level: configuration.ffmpegLog)
        let probe = ProbeHandler(store: store, configuration: configuration, pool: pool)
        let transcode = TranscodeHandler(store: store, configuration: configuration, pool: pool, onProgress: onProgress)
        registry.register(
            JobClass(
                "video.probe", queue: queue, retry: .default, timeout: .seconds(configuration.probeTimeout),
                handler: probe))
        registry.register(
            JobClass(
                "video.transcode", queue: queue, retry: .default, timeout: .seconds(configuration.transcodeTimeout),
                concurrency: configuration.transcodeConcurrency, handler: transcode))
        // Audio decodes and encodes on one core: no concurrency limit beyond the queue's.
        registry.register(
            JobClass(
                AudioWaveformHandler.jobClass, queue: queue, retry: .default, timeout: .seconds(configuration.transcodeTimeout),
                handler: AudioWaveformHandler(store: store, configuration: configuration, pool: pool)))
        registry.register(
            JobClass(
                AudioTranscodeHandler.jobClass, queue: queue, retry: .default, timeout: .seconds(configuration.transcodeTimeout),
                handler: AudioTranscodeHandler(store: store, configuration: configuration, pool: pool)))
        registry.register(
            JobClass(
                IngestHandler.jobClass, queue: queue, retry: .default,
                timeout: .seconds(configuration.probeTimeout + configuration.transcodeTimeout),
                concurrency: ingestConcurrency ?? configuration.transcodeConcurrency,
                handler: IngestHandler(store: store, probe: probe, transcode: transcode, images: images, recorder: recorder)))
        return recorder.map { [IngestDeathObserver(recorder: $0)] } ?? []
    }
}
