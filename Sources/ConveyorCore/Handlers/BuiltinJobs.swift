/// Job classes every worker runs: `noop` and `sleep`, for smoke tests, capacity planning and benchmarks.
public enum BuiltinJobs: JobFamilyDefinition {
    public static let queue = "default"
    public static let classNames = ["noop", "sleep"]

    public static func family(_ context: FamilyContext) -> JobFamily {
        var registry = JobRegistry()
        register(into: &registry)
        return JobFamily(registry: registry)
    }

    public static func register(into registry: inout JobRegistry) {
        registry.register(JobClass("noop", handler: NoopHandler()))
        registry.register(JobClass("sleep", timeout: .seconds(3600), handler: SleepHandler()))
    }
}

/// Does nothing and succeeds: measures the queue itself.
public struct NoopHandler: JobHandler {
    public init() {}
    public func perform(_ job: JobContext) async throws -> JSONValue { .object(JSONObject()) }
}

/// Waits `{"ms": N}` milliseconds (at most an hour), then succeeds: a stand-in for a job of known length. A wait
/// over a second reports its progress (the share of the time waited) every second, like a long media job.
public struct SleepHandler: JobHandler {
    public init() {}
    public func perform(_ job: JobContext) async throws -> JSONValue {
        let ms = try job.int("ms", in: 0...3_600_000)
        guard ms > 1000 else {
            try await Task.sleep(for: .milliseconds(ms))
            return ["slept_ms": JSONValue(ms)]
        }
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .milliseconds(ms)
        while clock.now < end {
            let waited = clock.now - start
            job.progress(100 * (waited / .milliseconds(ms)), detail: JSONObject([("slept_ms", JSONValue(Int(waited / .milliseconds(1))))]))
            try await Task.sleep(until: min(end, clock.now + .seconds(1)), clock: clock)
        }
        return ["slept_ms": JSONValue(ms)]
    }
}
