public import AV
public import ConveyorCore

/// Registers the video job classes.
public enum VideoJobs {
    /// Registers `video.probe` and `video.transcode` on the `media` queue.
    public static func register(into registry: inout JobRegistry, environment: [String: String]) throws {
        try register(into: &registry, environment: environment, onProgress: nil)
    }

    /// The same, with a hook called about once a second per running transcode (for metrics).
    public static func register(
        into registry: inout JobRegistry, environment: [String: String],
        onProgress: (@Sendable (_ jid: String, _ progress: TranscodeProgress) -> Void)?
    ) throws {
        let configuration = try VideoConfiguration(environment: environment)
        let root = try MediaRoot(configuration.mediaRoot)
        AVLibrary.configure()
        registry.register(
            JobClass(
                "video.probe", queue: "media", retry: .default, timeout: .seconds(configuration.probeTimeout),
                handler: ProbeHandler(root: root, configuration: configuration)))
        registry.register(
            JobClass(
                "video.transcode", queue: "media", retry: .default, timeout: .seconds(configuration.transcodeTimeout),
                concurrency: configuration.transcodeConcurrency,
                handler: TranscodeHandler(root: root, configuration: configuration, onProgress: onProgress)))
    }
}
