import Foundation
import Synchronization

/// Object-store traffic of one process, in Prometheus text: requests and bytes by operation and outcome, and
/// request latency as a histogram (`conveyor_storage_*`; exported beside the worker's metrics).
public final class StorageMetrics: Sendable {
    private struct Series: Hashable {
        var operation: String
        var outcome: String
    }

    private struct State {
        var requests: [Series: Int] = [:]
        var bytes: [Series: Int] = [:]
        var buckets: [String: [Int]] = [:]
        var sums: [String: Double] = [:]
        var counts: [String: Int] = [:]
    }

    /// Upper bounds of the latency buckets, in seconds.
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    private let state = Mutex(State())

    public init() {}

    public func record(_ event: S3RequestEvent) {
        state.withLock { s in
            let series = Series(operation: event.operation, outcome: event.outcome)
            s.requests[series, default: 0] += 1
            s.bytes[series, default: 0] += event.bytes
            var counts = s.buckets[event.operation] ?? Array(repeating: 0, count: Self.bounds.count)
            for (i, bound) in Self.bounds.enumerated() where event.seconds <= bound { counts[i] += 1 }
            s.buckets[event.operation] = counts
            s.sums[event.operation, default: 0] += event.seconds
            s.counts[event.operation, default: 0] += 1
        }
    }

    public func prometheusText() -> String {
        let s = state.withLock { $0 }
        var out = "# HELP conveyor_storage_requests_total Object store requests by operation and outcome.\n"
        out += "# TYPE conveyor_storage_requests_total counter\n"
        for (series, n) in s.requests.sorted(by: { ($0.key.operation, $0.key.outcome) < ($1.key.operation, $1.key.outcome) }) {
            out += "conveyor_storage_requests_total{operation=\"\(series.operation)\",outcome=\"\(series.outcome)\"} \(n)\n"
        }
        out += "# HELP conveyor_storage_bytes_total Object bytes moved by operation and outcome.\n"
        out += "# TYPE conveyor_storage_bytes_total counter\n"
        for (series, n) in s.bytes.sorted(by: { ($0.key.operation, $0.key.outcome) < ($1.key.operation, $1.key.outcome) }) {
            out += "conveyor_storage_bytes_total{operation=\"\(series.operation)\",outcome=\"\(series.outcome)\"} \(n)\n"
        }
        out += "# HELP conveyor_storage_request_seconds Object store request latency.\n"
        out += "# TYPE conveyor_storage_request_seconds histogram\n"
        for operation in s.buckets.keys.sorted() {
            let counts = s.buckets[operation]!
            for (i, bound) in Self.bounds.enumerated() {
                out += "conveyor_storage_request_seconds_bucket{operation=\"\(operation)\",le=\"\(bound)\"} \(counts[i])\n"
            }
            let total = s.counts[operation] ?? 0
            out += "conveyor_storage_request_seconds_bucket{operation=\"\(operation)\",le=\"+Inf\"} \(total)\n"
            out += "conveyor_storage_request_seconds_sum{operation=\"\(operation)\"} \(s.sums[operation] ?? 0)\n"
            out += "conveyor_storage_request_seconds_count{operation=\"\(operation)\"} \(total)\n"
        }
        return out
    }
}
