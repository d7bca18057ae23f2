// llm-bench: summaries with the primary provider hard-down versus calling the fallback directly, in one run.
// Usage: llm-bench <fake-server-base-url> <jobs> <concurrency> <down-primary-url>
import ConveyorCore
import Foundation
import Logging
import Summaries

let arguments = CommandLine.arguments
guard arguments.count == 5, let jobs = Int(arguments[2]), let concurrency = Int(arguments[3]) else {
    print("usage: llm-bench <fake-server-base-url> <jobs> <concurrency> <down-primary-base-url>")
    exit(2)
}
let base = arguments[1]
let downPrimary = arguments[4]
let logger: Logger = {
    var logger = Logger(label: "llm-bench")
    logger.logLevel = .error
    return logger
}()

let common = [
    "ANTHROPIC_API_KEY": "test-anthropic-key", "ANTHROPIC_BASE_URL": base + "/anthropic", "ANTHROPIC_MODEL": "claude-test",
    "OPENAI_API_KEY": "test-openai-key", "OPENAI_BASE_URL": downPrimary, "OPENAI_MODEL": "gpt-test",
]

struct Run {
    var latencies: [Double] = []  // milliseconds, in job order
    var failed = 0
    var degraded = 0
    var byProvider: [String: Int] = [:]
    var openAfter: Int?  // jobs finished before the primary's breaker opened
}

func runJobs(_ label: String, providers: String, offset: Int) async throws -> (Run, SummaryMetrics.Snapshot) {
    var env = common
    env["CONVEYOR_LLM_PROVIDERS"] = providers
    var registry = JobRegistry()
    let summarizer = try SummariesJobs.register(into: &registry, environment: env, store: nil)
    let handler = registry["llm.summarize"]!.handler
    var run = Run()
    run.latencies = Array(repeating: 0, count: jobs)
    try await withThrowingTaskGroup(of: (Int, Double, String?, Bool, Bool).self) { group in
        var next = 0
        func add() {
            let i = next
            next += 1
            group.addTask {
                let args = JSONObject([
                    ("post_id", .string("bench-\(offset + i)")), ("title", .string("Post number \(offset + i)")),
                    ("body", .string("A short post body about item \(offset + i). It has two sentences.")), ("max_words", 40),
                ])
                let job = JobContext(jid: "bench-\(label)-\(i)", jobClass: "llm.summarize", queue: "llm", arguments: args, attempt: 1,
                                     deadline: .now + .seconds(120), payload: JSONObject(), logger: logger)
                let started = ContinuousClock.now
                do {
                    let result = try await handler.perform(job)
                    let d = (ContinuousClock.now - started).components
                    let open = summarizer.breaker("openai")?.currentState == .open
                    return (i, Double(d.seconds) * 1000 + Double(d.attoseconds) / 1e15, result["provider"]?.stringValue,
                            result["degraded"]?.boolValue ?? false, open)
                } catch {
                    return (i, 0, nil, false, false)
                }
            }
        }
        for _ in 0..<min(concurrency, jobs) { add() }
        while let (i, ms, provider, degraded, open) = try await group.next() {
            run.latencies[i] = ms
            if let provider { run.byProvider[provider, default: 0] += 1 } else { run.failed += 1 }
            if degraded { run.degraded += 1 }
            if open, run.openAfter == nil { run.openAfter = i }
            if next < jobs { add() }
        }
    }
    return (run, summarizer.metricsSnapshot())
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[max(0, min(sorted.count - 1, rank))]
}

func f(_ x: Double) -> String { String(format: "%.2f", x) }

// Warm-up (connections, threads), then baseline and primary-down, then the baseline again to expose drift.
_ = try await runJobs("warm", providers: "anthropic", offset: 1_000_000)
let (baseline, _) = try await runJobs("baseline", providers: "anthropic", offset: 0)
let (down, downMetrics) = try await runJobs("down", providers: "openai,anthropic", offset: 100_000)
let (baseline2, _) = try await runJobs("baseline2", providers: "anthropic", offset: 200_000)

// Jobs that started after the breaker opened: all but the first ones that were already in flight.
let skip = min(jobs - 1, (down.openAfter ?? 0) + concurrency)
let downOpen = Array(down.latencies[skip...])
let baseAll = baseline.latencies + baseline2.latencies

var table = """
| Scenario (\(jobs) jobs, concurrency \(concurrency)) | failed | degraded | served by | p50 ms | p99 ms | max ms |
| --- | --- | --- | --- | --- | --- | --- |

"""
func row(_ name: String, _ r: Run, _ values: [Double]) -> String {
    let served = r.byProvider.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    return "| \(name) | \(r.failed) | \(r.degraded) | \(served) | \(f(percentile(values, 50))) | \(f(percentile(values, 99))) | \(f(values.max() ?? 0)) |\n"
}
table += row("fallback only (Anthropic-format provider called directly)", baseline, baseline.latencies)
table += row("primary hard-down, all jobs", down, down.latencies)
table += row("primary hard-down, after its breaker opened (job \(skip + 1) on)", down, downOpen)
table += row("fallback only again (drift check)", baseline2, baseline2.latencies)
let added50 = percentile(downOpen, 50) - percentile(baseAll, 50)
let added99 = percentile(downOpen, 99) - percentile(baseAll, 99)
table += "\nAdded latency once the breaker is open, versus both fallback-only runs: p50 \(f(added50)) ms, p99 \(f(added99)) ms. "
let openCalls = downMetrics.calls["openai"] ?? [:]
table += "Primary calls made: \(openCalls.filter { $0.key != .notPermitted }.values.reduce(0, +)), skipped by the open breaker: \(openCalls[.notPermitted] ?? 0).\n"
print(table)
