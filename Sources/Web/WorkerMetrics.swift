import Curl
import Foundation
import Synchronization

/// What the overview reads from workers' `/metrics` (`CONVEYOR_WEB_METRICS_URLS`): the LLM breakers' states and
/// the result writers' in-memory backlog live in each worker process, not in Redis. Read at most every 5 seconds,
/// each URL with a 2-second timeout; an unreachable worker is shown as such.
final class WorkerMetrics: Sendable {
    struct Breaker: Sendable {
        var provider: String
        var state: String
        var openSeconds: Double
        var source: String
    }

    struct Reading: Sendable {
        var breakers: [Breaker] = []
        var backlog = 0
        var failing = 0
        var unreachable: [String] = []
        var at = 0.0
    }

    let urls: [String]
    private let cache = Mutex<Reading?>(nil)

    init(urls: [String]) { self.urls = urls }

    func read() async -> Reading? {
        guard !urls.isEmpty else { return nil }
        let now = Date().timeIntervalSince1970
        if let cached = cache.withLock({ $0 }), now - cached.at < 5 { return cached }
        let urls = urls
        let reading = await Task.detached { () -> Reading in
            var r = Reading(at: now)
            for url in urls {
                do {
                    let easy = try CurlEasy()
                    var transfer = CurlTransferOptions()
                    transfer.connectTimeout = .seconds(2)
                    transfer.timeout = .seconds(2)
                    transfer.maxResponseBytes = 4 << 20
                    let response = try easy.perform(HTTPRequest(url: url, transfer: transfer))
                    guard response.status == 200 else {
                        r.unreachable.append("\(url) (HTTP \(response.status))")
                        continue
                    }
                    Self.parse(response.bodyText, source: url, into: &r)
                } catch {
                    r.unreachable.append("\(url) (\(error))")
                }
            }
            return r
        }.value
        cache.withLock { $0 = reading }
        return reading
    }

    /// Reads the few series the overview shows out of Prometheus text format.
    static func parse(_ text: String, source: String, into r: inout Reading) {
        var open: [String: Double] = [:]
        var states: [(String, String)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let name = series.prefix { $0 != "{" }
            let labels = labelsOf(series)
            switch name {
            case "conveyor_llm_breaker_state" where value == 1:
                states.append((labels["provider"] ?? "?", labels["state"] ?? "?"))
            case "conveyor_llm_breaker_open_seconds":
                open[labels["provider"] ?? "?"] = value
            case "conveyor_result_write_backlog":
                r.backlog = saturatingAdd(r.backlog, value)
            case "conveyor_result_writes_failing":
                r.failing = saturatingAdd(r.failing, value)
            default:
                break
            }
        }
        for (provider, state) in states {
            r.breakers.append(Breaker(provider: provider, state: state, openSeconds: open[provider] ?? 0, source: source))
        }
    }

    /// `total + value` for a gauge read from a worker: non-finite or negative values count as 0, huge ones saturate.
    static func saturatingAdd(_ total: Int, _ value: Double) -> Int {
        guard value.isFinite, value > 0 else { return total }
        let whole = value < 9.0e15 ? Int(exactly: value.rounded()) ?? 0 : Int.max
        let (sum, overflow) = total.addingReportingOverflow(whole)
        return overflow ? Int.max : sum
    }

    private static func labelsOf(_ series: Substring) -> [String: String] {
        guard let open = series.firstIndex(of: "{"), let close = series.lastIndex(of: "}") else { return [:] }
        var out: [String: String] = [:]
        for pair in series[series.index(after: open)..<close].split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { out[String(parts[0])] = String(parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))) }
        }
        return out
    }
}
