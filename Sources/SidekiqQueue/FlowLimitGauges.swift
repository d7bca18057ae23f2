public import ConveyorCore
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// The `limits:` gauges for `/metrics`, read every `interval` seconds through the backend's housekeeping connection:
///
/// - `conveyor_limit_running{limit}`: slots held (jobs running under the limit, across every process);
/// - `conveyor_limit_waiting{limit}`: jobs waiting in their keys' lines for a slot or a rate window;
/// - `conveyor_limit_throttled_keys{limit}`: keys with jobs waiting.
public final class FlowLimitGauges: Service {
    private let backend: SidekiqBackend
    private let interval: Double
    private let logger: Logger
    private let last = Mutex<[FlowLimitScripts.Stat]>([])
    private let outage = OutageLog("reading the limits' gauges")

    public init(backend: SidekiqBackend, interval: Double = 5, logger: Logger = Logger(label: "conveyor.limits")) {
        self.backend = backend
        self.interval = min(3600, max(0.05, interval.isFinite ? interval : 5))
        self.logger = logger
    }

    public var stats: [FlowLimitScripts.Stat] { last.withLock { $0 } }

    public func run() async throws {
        var published = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if !published {
                    try await backend.publishLimits()
                    published = true
                }
                let read = try await backend.limitStats()
                last.withLock { $0 = read }
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(self.interval)) }
        }
    }

    /// Prometheus text for the last read (the limit names are checked at start: letters, digits, `-_.`).
    public func render() -> String {
        let stats = self.stats
        guard !stats.isEmpty else { return "" }
        var out = ""
        for (name, help, value) in [
            ("conveyor_limit_running", "Jobs running under a limit, across every process.", \FlowLimitScripts.Stat.running),
            ("conveyor_limit_waiting", "Jobs waiting for a slot or a rate window of their limit's key.", \.waiting),
            ("conveyor_limit_throttled_keys", "Keys of a limit with jobs waiting.", \.keysWaiting),
        ] as [(String, String, KeyPath<FlowLimitScripts.Stat, Int>)] {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for stat in stats { out += "\(name){limit=\"\(stat.limit)\"} \(stat[keyPath: value])\n" }
        }
        return out
    }
}
