public import ConveyorCore
import Foundation

/// Everything `llm.summarize` reads from the environment; see docs/configuration.md "LLM summaries".
public struct SummariesConfiguration: Sendable {
    /// Providers in the order they are tried; only those with an API key.
    public var providers: [LLMProvider] = []
    public var connectTimeout: Duration = .seconds(5)
    /// Total time for one provider call (libcurl's `CURLOPT_TIMEOUT_MS`).
    public var requestTimeout: Duration = .seconds(30)
    public var breaker = CircuitBreakerConfiguration()
    /// Characters of post text sent at most.
    public var maxInputCharacters = 12_000
    /// Output tokens asked for (the word budget is checked on the text).
    public var maxOutputTokens = 400
    /// Logical model name in the cache key, so a summary from any provider serves later jobs.
    public var modelAlias = "summary-default"
    public var cacheTTL: Duration = .seconds(86_400)
    /// How long one job holds the single-flight lock at most.
    public var lockTTL: Duration = .seconds(60)
    /// How long a 429 without `Retry-After` cools the provider down.
    public var defaultRetryAfter: Duration = .seconds(30)
    public var redisURL: String?
    public var namespace: String?

    public init() {}

    /// Accepted `CONVEYOR_LLM_CONNECT_TIMEOUT` and `CONVEYOR_LLM_TIMEOUT` seconds.
    public static let connectTimeoutRange: ClosedRange<Double> = 0.001...300
    public static let requestTimeoutRange: ClosedRange<Double> = 0.001...3600
    /// The longest provider `Retry-After` honoured; a longer one cools the provider down this long.
    public static let maxRetryAfter: Duration = .seconds(3600)

    /// Reads the variables in docs/configuration.md; unset ones keep the defaults above.
    public init(environment env: [String: String]) throws(JobFailure) {
        /// Seconds in `range` (finite, millisecond resolution); `inf`, `nan`, `1e300` or a negative value is refused.
        func seconds(_ name: String, _ fallback: Duration, _ range: ClosedRange<Double>) throws(JobFailure) -> Duration {
            guard let text = env[name], !text.isEmpty else { return fallback }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            // Decimal only: Double() also reads `0x1p4`, `inf` and `nan`.
            guard trimmed.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+" }),
                  let value = Double(trimmed), value.isFinite, range.contains(value),
                  let ms = Int64(exactly: (value * 1000).rounded()), ms > 0
            else {
                throw .permanent(.invalidConfiguration, "\(name)=\(text) must be a number of seconds in \(range.lowerBound.formatted)...\(range.upperBound.formatted)")
            }
            return .milliseconds(ms)
        }
        func int(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws(JobFailure) -> Int {
            guard let text = env[name], !text.isEmpty else { return fallback }
            guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
                throw .permanent(.invalidConfiguration, "\(name)=\(text) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return value
        }
        connectTimeout = try seconds("CONVEYOR_LLM_CONNECT_TIMEOUT", connectTimeout, Self.connectTimeoutRange)
        requestTimeout = try seconds("CONVEYOR_LLM_TIMEOUT", requestTimeout, Self.requestTimeoutRange)
        maxInputCharacters = try int("CONVEYOR_LLM_MAX_INPUT_CHARS", maxInputCharacters, 200...1_000_000)
        maxOutputTokens = try int("CONVEYOR_LLM_MAX_OUTPUT_TOKENS", maxOutputTokens, 16...8192)
        cacheTTL = try seconds("CONVEYOR_LLM_CACHE_TTL", cacheTTL, 1...31_536_000)
        lockTTL = try seconds("CONVEYOR_LLM_LOCK_TTL", lockTTL, 0.001...3600)
        modelAlias = env["CONVEYOR_LLM_MODEL_ALIAS"].flatMap { $0.isEmpty ? nil : $0 } ?? modelAlias
        breaker.failureRateThreshold = Double(try int("CONVEYOR_LLM_BREAKER_FAILURE_RATE", 50, 1...100))
        breaker.slowCallRateThreshold = Double(try int("CONVEYOR_LLM_BREAKER_SLOW_RATE", 100, 1...100))
        breaker.slowCallDurationThreshold = try seconds("CONVEYOR_LLM_BREAKER_SLOW_CALL", breaker.slowCallDurationThreshold, 0.001...3600)
        breaker.slidingWindowSize = try int("CONVEYOR_LLM_BREAKER_WINDOW", breaker.slidingWindowSize, 1...10_000)
        breaker.minimumNumberOfCalls = try int("CONVEYOR_LLM_BREAKER_MIN_CALLS", breaker.minimumNumberOfCalls, 1...10_000)
        breaker.waitDurationInOpenState = try seconds("CONVEYOR_LLM_BREAKER_OPEN", breaker.waitDurationInOpenState, 0.001...86_400)
        breaker.permittedNumberOfCallsInHalfOpenState = try int("CONVEYOR_LLM_BREAKER_HALF_OPEN_CALLS", breaker.permittedNumberOfCallsInHalfOpenState, 1...1000)
        breaker.forcedOpenDuration = try seconds("CONVEYOR_LLM_AUTH_FAILURE_OPEN", breaker.forcedOpenDuration, 0.001...604_800)
        redisURL = env["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
        namespace = env["CONVEYOR_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 }

        let order = (env["CONVEYOR_LLM_PROVIDERS"] ?? "openai,anthropic").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for name in order where !name.isEmpty {
            switch name {
            case "openai":
                guard let key = env["OPENAI_API_KEY"], !key.isEmpty else { continue }
                providers.append(LLMProvider(
                    kind: .openAI, baseURL: env["OPENAI_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.openai.com/v1",
                    apiKey: key, model: env["OPENAI_MODEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "gpt-4o-mini",
                    maxTokensField: env["CONVEYOR_LLM_OPENAI_MAX_TOKENS_FIELD"].flatMap { $0.isEmpty ? nil : $0 } ?? "max_completion_tokens"))
            case "anthropic":
                guard let key = env["ANTHROPIC_API_KEY"], !key.isEmpty else { continue }
                providers.append(LLMProvider(
                    kind: .anthropic, baseURL: env["ANTHROPIC_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.anthropic.com",
                    apiKey: key, model: env["ANTHROPIC_MODEL"].flatMap { $0.isEmpty ? nil : $0 } ?? "claude-haiku-4-5"))
            default:
                throw .permanent(.invalidConfiguration, "CONVEYOR_LLM_PROVIDERS: unknown provider \(name); known: openai, anthropic")
            }
        }
    }
}

import Foundation

extension Double {
    /// `30` rather than `30.0` in messages.
    fileprivate var formatted: String { rounded() == self && abs(self) < 1e15 ? String(Int64(self)) : String(self) }
}
