extension SummaryMetrics.Snapshot {
    /// The snapshot in Prometheus text format (0.0.4), for a `/metrics` endpoint to append. Counters are
    /// process totals; breaker gauges are read at the time of the snapshot.
    ///
    /// Alert rules (issue: failure ratio over 20 %, breaker open longer than 5 minutes):
    /// `sum(rate(conveyor_llm_calls_total{outcome=~"failure|auth_failure"}[5m]))
    ///   / sum(rate(conveyor_llm_calls_total{outcome!="not_permitted"}[5m])) > 0.2` and
    /// `max by (provider) (conveyor_llm_breaker_open_seconds) > 300`.
    public func prometheusText() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                let text = value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
                out += "\(name)\(labels) \(text)\n"
            }
        }
        func labels(_ pairs: KeyValuePairs<String, String>) -> String {
            "{" + pairs.map { "\($0.key)=\"\(escape($0.value))\"" }.joined(separator: ",") + "}"
        }
        let providers = Set(calls.keys).union(breakers.map(\.name)).sorted()
        family("conveyor_llm_calls_total", "counter", "LLM provider calls by outcome (not_permitted: skipped by the breaker or a cooldown).",
               providers.flatMap { p in SummaryMetrics.CallOutcome.allCases.map { o in (labels(["provider": p, "outcome": o.rawValue]), Double(calls[p]?[o] ?? 0)) } })
        out += "# HELP conveyor_llm_call_duration_seconds Duration of LLM provider calls.\n# TYPE conveyor_llm_call_duration_seconds histogram\n"
        for p in providers {
            let l = latency[p] ?? SummaryMetrics.Latency(buckets: Array(repeating: 0, count: SummaryMetrics.latencyBuckets.count), count: 0, sum: 0)
            for (i, bound) in SummaryMetrics.latencyBuckets.enumerated() {
                out += "conveyor_llm_call_duration_seconds_bucket{provider=\"\(escape(p))\",le=\"\(bound)\"} \(l.buckets[i])\n"
            }
            out += "conveyor_llm_call_duration_seconds_bucket{provider=\"\(escape(p))\",le=\"+Inf\"} \(l.count)\n"
            out += "conveyor_llm_call_duration_seconds_sum{provider=\"\(escape(p))\"} \(l.sum)\n"
            out += "conveyor_llm_call_duration_seconds_count{provider=\"\(escape(p))\"} \(l.count)\n"
        }
        family("conveyor_llm_tokens_total", "counter", "Tokens reported by providers in usage.",
               providers.flatMap { p in [(labels(["provider": p, "direction": "input"]), Double(inputTokens[p] ?? 0)),
                                         (labels(["provider": p, "direction": "output"]), Double(outputTokens[p] ?? 0))] })
        family("conveyor_llm_auth_failures_total", "counter", "401/403/402/404 or quota errors per provider (alert on any).",
               providers.map { (labels(["provider": $0]), Double(authFailures[$0] ?? 0)) })
        family("conveyor_llm_fallbacks_total", "counter", "Summaries served by a provider other than the first configured.", [("", Double(fallbacks))])
        family("conveyor_llm_degraded_total", "counter", "Degraded summaries: no provider answered, the extractive summariser wrote them.", [("", Double(degraded))])
        family("conveyor_llm_extractive_total", "counter", "Summaries from the extractive summariser because no provider is configured.", [("", Double(extractiveOnly))])
        family("conveyor_llm_cache_hits_total", "counter", "Summaries served from the Redis cache.", [("", Double(cacheHits))])
        family("conveyor_llm_cache_misses_total", "counter", "Summary cache lookups that found nothing.", [("", Double(cacheMisses))])
        family("conveyor_llm_single_flight_waits_total", "counter", "Jobs that waited for another job's provider call on the same post.", [("", Double(singleFlightWaits))])
        let states: [CircuitBreaker.State] = [.closed, .open, .halfOpen, .forcedOpen]
        family("conveyor_llm_breaker_state", "gauge", "1 for each provider breaker's current state.",
               breakers.flatMap { b in states.map { s in (labels(["provider": b.name, "state": s.rawValue]), b.state == s ? 1 : 0) } })
        family("conveyor_llm_breaker_open_seconds", "gauge", "How long the breaker has been open (0 unless open or forced open).",
               breakers.map { b in (labels(["provider": b.name]), b.state == .open || b.state == .forcedOpen ? seconds(b.timeInState) : 0) })
        family("conveyor_llm_breaker_failure_rate", "gauge", "Failure rate in the breaker's window, percent (-1 below the minimum number of calls).",
               breakers.map { (labels(["provider": $0.name]), $0.failureRate) })
        family("conveyor_llm_breaker_slow_call_rate", "gauge", "Slow-call rate in the breaker's window, percent (-1 below the minimum number of calls).",
               breakers.map { (labels(["provider": $0.name]), $0.slowCallRate) })
        family("conveyor_llm_breaker_cooldown_seconds", "gauge", "Remaining Retry-After cooldown after a 429.",
               breakers.map { (labels(["provider": $0.name]), seconds($0.coolingDownFor)) })
        return out
    }

    private func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

import Foundation
