import Foundation
public import ConveyorCore

/// OpenTelemetry's own variables (the names every SDK reads) and Conveyor's one addition. Tracing is off unless an
/// OTLP endpoint is set; only OTLP over HTTP is built (protobuf or JSON).
public enum TracingSettings {
    public static let disabled = Setting("OTEL_SDK_DISABLED", key: "tracing.disabled", .onOff, default: "off",
            doc: "Turns tracing off even when an endpoint is set.")

    public static let endpoint = Setting("OTEL_EXPORTER_OTLP_ENDPOINT", key: "tracing.endpoint", .url(["http", "https"]), note: "none (tracing off)",
            doc: "The OTLP/HTTP collector's base URL (`http://otel-collector:4318`): spans go to its `/v1/traces`. Setting it (or the next) turns tracing on.",
            check: { urlProblem($0) })

    public static let tracesEndpoint = Setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", key: "tracing.traces_endpoint", .url(["http", "https"]), note: "the endpoint's `/v1/traces`",
            doc: "The full URL spans are posted to, used as it is.", check: { urlProblem($0) })

    public static let `protocol` = Setting("OTEL_EXPORTER_OTLP_PROTOCOL", key: "tracing.protocol", .choice(["http/protobuf", "http/json"]), default: "http/protobuf",
            doc: "How spans are encoded (`grpc` is not built into Conveyor).")

    public static let headers = Setting("OTEL_EXPORTER_OTLP_HEADERS", key: "tracing.headers", note: "none", secret: true,
            doc: "Headers sent with every export (`api-key=…,x-tenant=…`), for a collector that wants a key.",
            check: { pairsProblem($0, what: "header") })

    public static let timeout = Setting("OTEL_EXPORTER_OTLP_TIMEOUT", key: "tracing.timeout", .int(1...60_000), default: "10000",
            doc: "Milliseconds one export may take before it is given up (its spans are counted as dropped).")

    public static let serviceName = Setting("OTEL_SERVICE_NAME", key: "tracing.service_name", default: "conveyor",
            doc: "The `service.name` of every span.", check: { text in
                text.isEmpty || text.utf8.count > 255 ? "expected 1 to 255 bytes" : nil
            })

    public static let resourceAttributes = Setting("OTEL_RESOURCE_ATTRIBUTES", key: "tracing.resource_attributes", note: "none",
            doc: "More resource attributes, `key=value` pairs separated by commas (`deployment.environment=prod`).",
            check: { pairsProblem($0, what: "attribute") })

    public static let sampler = Setting("OTEL_TRACES_SAMPLER", key: "tracing.sampler",
            .choice(["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"]),
            default: "parentbased_always_on",
            doc: "Which jobs are traced. `parentbased_*` follows the producer's decision when the job carries one.")

    public static let samplerArg = Setting("OTEL_TRACES_SAMPLER_ARG", key: "tracing.sampler_arg", .number(0...1), default: "1",
            doc: "The share of traces kept by the `traceidratio` samplers (`0.1`: one in ten).")

    public static let propagators = Setting("OTEL_PROPAGATORS", key: "tracing.propagators", .list, default: "tracecontext",
            doc: "How a producer's context is read from a job: `tracecontext` (W3C `traceparent`/`tracestate`), or `none`.",
            check: { text in
                for name in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) })
                where !["tracecontext", "none"].contains(name) {
                    return "\(name.isEmpty ? "an empty entry" : name) is not a propagator Conveyor reads (tracecontext, none)"
                }
                return nil
            })

    public static let propagation = Setting("CONVEYOR_TRACE_PROPAGATION", key: "tracing.propagation", .choice(["child", "link"]), default: "child",
            doc: "`child`: a job's span is a child of the span that enqueued it (one trace from the request). `link`: each run starts a trace of its own, linked to the producer's (long queue waits do not stretch the request's trace).")

    public static let maxQueueSize = Setting("OTEL_BSP_MAX_QUEUE_SIZE", key: "tracing.max_queue_size", .int(1...1_000_000), default: "2048",
            doc: "Finished spans held for export; past it new spans are dropped (counted in `conveyor_trace_spans_dropped_total`), never waited for.")

    public static let scheduleDelay = Setting("OTEL_BSP_SCHEDULE_DELAY", key: "tracing.schedule_delay", .int(1...600_000), default: "5000",
            doc: "Milliseconds between exports.")

    public static let exportTimeout = Setting("OTEL_BSP_EXPORT_TIMEOUT", key: "tracing.export_timeout", .int(1...600_000), default: "30000",
            doc: "Milliseconds one batch's export may take.")

    public static let maxExportBatchSize = Setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", key: "tracing.max_export_batch_size", .int(1...100_000), default: "512",
            doc: "Spans per export request (at most the queue size).")

    public static let all = [
        disabled, endpoint, tracesEndpoint, `protocol`, headers, timeout, serviceName, resourceAttributes, sampler, samplerArg,
        propagators, propagation, maxQueueSize, scheduleDelay, exportTimeout, maxExportBatchSize,
    ]

    public static let group = SettingGroup(
        "Tracing", note: "OpenTelemetry traces over OTLP/HTTP: off unless an endpoint is set. The standard `OTEL_*` names; a value from the config file counts as if it were in the environment.", all)

    /// An endpoint URL's host must be there and the whole bounded.
    static func urlProblem(_ text: String) -> String? {
        guard text.utf8.count <= 2048 else { return "longer than 2048 bytes" }
        guard let rest = text.range(of: "://").map({ text[$0.upperBound...] }), let host = rest.split(separator: "/", maxSplits: 1).first,
            !host.isEmpty, !host.hasPrefix(":"), !host.contains("@")
        else { return "expected http://host[:port][/path]" }
        return nil
    }

    /// `k=v,k2=v2` with non-empty keys, at most 64 pairs and 4096 bytes.
    static func pairsProblem(_ text: String, what: String) -> String? {
        guard text.utf8.count <= 4096 else { return "longer than 4096 bytes" }
        let pairs = text.split(separator: ",", omittingEmptySubsequences: true)
        guard pairs.count <= 64 else { return "more than 64 \(what)s" }
        for pair in pairs {
            guard let eq = pair.firstIndex(of: "="), !pair[..<eq].trimmingCharacters(in: .whitespaces).isEmpty else {
                return "expected key=value pairs separated by commas"
            }
        }
        return nil
    }

    /// `k=v,k2=v2` as pairs, keys and values trimmed and percent-decoded (OTel's W3C Baggage-style format).
    public static func pairs(_ text: String) -> [(String, String)] {
        text.split(separator: ",", omittingEmptySubsequences: true).compactMap { pair in
            guard let eq = pair.firstIndex(of: "=") else { return nil }
            let key = pair[..<eq].trimmingCharacters(in: .whitespaces)
            let value = pair[pair.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            return (key.removingPercentEncoding ?? key, value.removingPercentEncoding ?? value)
        }
    }
}
