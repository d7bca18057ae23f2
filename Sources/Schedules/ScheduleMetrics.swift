public import Foundation

/// What `/metrics` shows of the schedules this process evaluates, in Prometheus text:
/// `conveyor_schedule_lateness_seconds{schedule}` (tick to push, last job this process pushed),
/// `conveyor_schedule_due_tick_timestamp_seconds{schedule}` (the newest tick that came due) and
/// `conveyor_schedule_claimed_tick_timestamp_seconds{schedule}` (the newest tick any process pushed, as seen here).
/// Due ahead of claimed means a tick was missed (skipped after an outage, or its push failed).
public final class ScheduleMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var lateness: [String: Double] = [:]
    private var due: [String: Int64] = [:]
    private var claimed: [String: Int64] = [:]

    public init() {}

    func record(name: String, due tick: Int64) {
        lock.lock()
        due[name] = max(due[name] ?? tick, tick)
        lock.unlock()
    }

    func record(name: String, claimed tick: Int64, lateness seconds: Double?) {
        lock.lock()
        claimed[name] = max(claimed[name] ?? tick, tick)
        if let seconds { lateness[name] = seconds }
        lock.unlock()
    }

    /// Forgets a schedule's due tick (it is disabled: its ticks are not expected).
    func disabled(name: String) {
        lock.lock()
        due[name] = nil
        lock.unlock()
    }

    public func render() -> String {
        lock.lock()
        defer { lock.unlock() }
        var out = ""
        func family(_ name: String, _ help: String, _ values: [String: String]) {
            guard !values.isEmpty else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n"
            for (schedule, value) in values.sorted(by: { $0.key < $1.key }) {
                out += "\(name){schedule=\"\(Self.escape(schedule))\"} \(value)\n"
            }
        }
        family("conveyor_schedule_lateness_seconds", "Seconds from a schedule's tick to the push of its job (the last this process pushed).",
               lateness.mapValues { String(format: "%.3f", $0) })
        family("conveyor_schedule_due_tick_timestamp_seconds", "The newest tick of the schedule that came due (Unix seconds).",
               due.mapValues { String($0) })
        family("conveyor_schedule_claimed_tick_timestamp_seconds", "The newest tick of the schedule whose job was pushed (Unix seconds).",
               claimed.mapValues { String($0) })
        return out
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
