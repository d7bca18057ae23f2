public import ConveyorCore
public import Tracing

/// The producer's trace context a job carries, read at the border: W3C `traceparent` and `tracestate` at the top of
/// the job's JSON, where opentelemetry-ruby's Sidekiq instrumentation writes them (a BullMQ job's `opts.tm` is moved
/// there when it is fetched). Anything else (a number, an array, a value too long or not printable ASCII) is ignored:
/// the job runs in a trace of its own.
public struct JobTraceContext: Sendable, Equatable {
    /// W3C's `traceparent` is 55 bytes in version 00; later versions may add fields. `tracestate` holds at most 32
    /// members, and 512 bytes is what a vendor must propagate.
    public static let maxTraceparent = 256
    public static let maxTracestate = 512

    public var traceparent: String
    public var tracestate: String?

    public init?(payload: JSONObject) {
        guard let parent = Self.header(payload["traceparent"], max: Self.maxTraceparent) else { return nil }
        traceparent = parent
        tracestate = Self.header(payload["tracestate"], max: Self.maxTracestate)
    }

    /// BullMQ's `opts.tm`: a JSON text of the producer's injected headers (BullMQ's `telemetry` option).
    public init?(bullmqTelemetry value: JSONValue?) {
        guard let text = value?.stringValue, text.utf8.count <= 4096,
            let headers = try? JSONValue(parsing: Array(text.utf8)), let object = headers.objectValue
        else { return nil }
        self.init(payload: object)
    }

    /// The carrier the tracer's propagator reads.
    public var carrier: [String: String] {
        var c = ["traceparent": traceparent]
        if let tracestate { c["tracestate"] = tracestate }
        return c
    }

    static func header(_ value: JSONValue?, max: Int) -> String? {
        guard let text = value?.stringValue, !text.isEmpty, text.utf8.count <= max,
            text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f })
        else { return nil }
        return text
    }
}

/// Reads a `[String: String]` carrier.
public struct DictionaryExtractor: Extractor {
    public init() {}
    public func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

/// Writes a `[String: String]` carrier.
public struct DictionaryInjector: Injector {
    public init() {}
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

/// The shape of a W3C `traceparent` (version 00): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, ids not
/// all zeros, lowercase hex.
public enum W3CTraceparent {
    public static func isValid(_ text: String) -> Bool {
        let fields = text.split(separator: "-", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "00", fields[1].utf8.count == 32, fields[2].utf8.count == 16, fields[3].utf8.count == 2 else {
            return false
        }
        let hex = { (s: Substring) in s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } }
        return fields[1...].allSatisfy(hex) && fields[1].contains { $0 != "0" } && fields[2].contains { $0 != "0" }
    }
}
