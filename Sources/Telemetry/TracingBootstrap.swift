public import ConveyorCore
import Foundation
import Glibc
public import Logging
import OTel
public import ServiceLifecycle
import Synchronization
public import Tracing

/// Tracing for one process, from the settings: swift-otel's tracer with its OTLP/HTTP exporter behind a bounded
/// batch queue, bootstrapped as the process's tracer, and the job middleware that opens each run's span. Nothing
/// here waits for the collector: a full queue drops spans, a failed export drops its batch, and both are counted.
public struct TracingSetup: Sendable {
    public let middleware: TracingJobMiddleware
    /// swift-otel's exporter, batch processor and tracer: run it in the process's service group.
    public let service: any Service
    /// Where the spans go, for the start-up log line.
    public let endpoint: String
    /// Which jobs are traced; one that traces nothing needs no middleware.
    public let sampler: JobSampler

    /// Whether the settings turn tracing on: an OTLP endpoint set, and `OTEL_SDK_DISABLED` not on.
    public static func enabled(_ settings: SettingsReader) -> Bool {
        !settings.bool(TracingSettings.disabled)
            && (settings.text(TracingSettings.endpoint) != nil || settings.text(TracingSettings.tracesEndpoint) != nil)
    }

    /// Hands sampling to the job middleware: swift-otel reads `OTEL_TRACES_SAMPLER` and `_ARG` from the process
    /// environment on its own, and would sample a second time what the middleware chose to trace. Call before the
    /// process starts threads that read the environment (libpq does); `start` reads the sampler from `settings`.
    public static func takeOverSampling() {
        setenv("OTEL_TRACES_SAMPLER", "always_on", 1)
        unsetenv("OTEL_TRACES_SAMPLER_ARG")
    }

    /// The tracer of `settings`, bootstrapped process-wide (once per process: `InstrumentationSystem` allows one
    /// bootstrap). `dropped` is called with each count of spans given up on (a full queue, a failed export).
    public static func start(settings: SettingsReader, logger: Logger, dropped: @escaping @Sendable (Int) -> Void) throws -> TracingSetup {
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.text(TracingSettings.serviceName) ?? "conveyor"
        configuration.resourceAttributes = Dictionary(
            TracingSettings.pairs(settings.text(TracingSettings.resourceAttributes) ?? ""), uniquingKeysWith: { _, last in last })
        configuration.propagators = settings.list(TracingSettings.propagators).contains("tracecontext") ? [.traceContext] : [.none]
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.enabled = true
        configuration.traces.exporter = .otlp
        // Jobs are sampled by the middleware before a span exists (`JobSampler`); what it starts, and the children of
        // a traced run, are all recorded.
        let sampler = JobSampler(
            name: settings.text(TracingSettings.sampler) ?? "parentbased_always_on", ratio: settings.number(TracingSettings.samplerArg))
        configuration.traces.sampler = .alwaysOn
        let queue = settings.int(TracingSettings.maxQueueSize)
        configuration.traces.batchSpanProcessor.maxQueueSize = queue
        configuration.traces.batchSpanProcessor.maxExportBatchSize = min(settings.int(TracingSettings.maxExportBatchSize), queue)
        configuration.traces.batchSpanProcessor.scheduleDelay = .milliseconds(settings.int(TracingSettings.scheduleDelay))
        configuration.traces.batchSpanProcessor.exportTimeout = .milliseconds(settings.int(TracingSettings.exportTimeout))
        var exporter = configuration.traces.otlpExporter
        let endpoint: String
        if let full = settings.text(TracingSettings.tracesEndpoint) {
            endpoint = full
        } else {
            let base = settings.text(TracingSettings.endpoint) ?? ""
            endpoint = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/v1/traces"
        }
        exporter.endpoint = endpoint
        exporter.protocol = settings.text(TracingSettings.protocol)?.lowercased() == "http/json" ? .httpJSON : .httpProtobuf
        exporter.headers = TracingSettings.pairs(settings.text(TracingSettings.headers) ?? "")
        exporter.timeout = .milliseconds(settings.int(TracingSettings.timeout))
        configuration.traces.otlpExporter = exporter
        configuration.diagnosticLogger = .custom(Logger(label: "conveyor.tracing") { _ in
            ExportDiagnostics(forward: logger, dropped: dropped)
        })
        configuration.diagnosticLogLevel = .warning

        let (tracer, service) = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(tracer)
        Traced.enabled = true
        let propagation = TracingJobMiddleware.Propagation(rawValue: settings.text(TracingSettings.propagation)?.lowercased() ?? "child") ?? .child
        let middleware = TracingJobMiddleware(tracer: tracer, propagation: propagation, sampler: sampler) { context in
            Self.ids(tracer, context)
        }
        return TracingSetup(middleware: middleware, service: service, endpoint: endpoint, sampler: sampler)
    }

    /// A context's trace and span ids, read through the tracer's own W3C propagation.
    static func ids(_ tracer: some Tracer, _ context: ServiceContext) -> (trace: String, span: String)? {
        var carrier: [String: String] = [:]
        tracer.inject(context, into: &carrier, using: DictionaryInjector())
        return carrier["traceparent"].flatMap(TracingJobMiddleware.ids(traceparent:))
    }
}

/// swift-otel's diagnostics: warnings go to Conveyor's log (rate-limited to one a minute per message), and the
/// spans they say were given up on are counted.
struct ExportDiagnostics: LogHandler {
    let forward: Logger
    let dropped: @Sendable (Int) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    static let lastForwarded = Mutex<[String: ContinuousClock.Instant]>([:])

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let text = event.message.description
        if text.hasPrefix("Spans were dropped"), let n = Self.count(all["dropped_count"]) {
            dropped(n)
        } else if text.hasPrefix("Failed to export batch"), let n = Self.count(all["batch_size"]) {
            dropped(n)
        }
        let now = ContinuousClock.now
        let due = Self.lastForwarded.withLock { last in
            if let at = last[text], now - at < .seconds(60) { return false }
            last[text] = now
            return true
        }
        guard due, event.level >= .warning else { return }
        var line = forward
        line[metadataKey: "component"] = "tracing"
        line.log(level: event.level, "tracing: \(text)", metadata: all)
    }

    static func count(_ value: Logger.Metadata.Value?) -> Int? {
        switch value {
        case .string(let s): return Int(s).map { max(0, $0) }
        case .stringConvertible(let c): return Int(c.description).map { max(0, $0) }
        default: return nil
        }
    }
}
