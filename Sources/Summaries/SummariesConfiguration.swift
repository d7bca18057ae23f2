public import ConveyorCore
import Foundation

/// Everything `llm.summarize` reads from the one reader; see docs/configuration.md "LLM summaries".
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

    /// The longest provider `Retry-After` honoured; a longer one cools the provider down this long.
    public static let maxRetryAfter: Duration = .seconds(3600)

    /// Reads `SummariesSettings` from the one reader; unset ones keep their declared defaults. Every value was
    /// checked against its declaration (`inf`, `nan`, `1e400`, hex, zero and out-of-range values refused).
    /// - Parameter environment: the effective values of the other groups' connection settings (`REDIS_URL`,
    ///   `CONVEYOR_NAMESPACE`) under their variables.
    public init(settings: SettingsReader) throws(JobFailure) {
        typealias S = SummariesSettings
        try settings.refuse(S.all)
        /// Seconds as a duration in milliseconds (every declared lower bound is at least 1 ms).
        func seconds(_ setting: Setting) -> Duration {
            .milliseconds(Int64(exactly: (settings.number(setting) * 1000).rounded()) ?? 1)
        }
        connectTimeout = seconds(S.llmConnectTimeout)
        requestTimeout = seconds(S.llmTimeout)
        maxInputCharacters = settings.int(S.llmMaxInputChars)
        maxOutputTokens = settings.int(S.llmMaxOutputTokens)
        cacheTTL = seconds(S.llmCacheTtl)
        lockTTL = seconds(S.llmLockTtl)
        modelAlias = settings.text(S.llmModelAlias) ?? modelAlias
        breaker.failureRateThreshold = Double(settings.int(S.llmBreakerFailureRate))
        breaker.slowCallRateThreshold = Double(settings.int(S.llmBreakerSlowRate))
        breaker.slowCallDurationThreshold = seconds(S.llmBreakerSlowCall)
        breaker.slidingWindowSize = settings.int(S.llmBreakerWindow)
        breaker.minimumNumberOfCalls = settings.int(S.llmBreakerMinCalls)
        breaker.waitDurationInOpenState = seconds(S.llmBreakerOpen)
        breaker.permittedNumberOfCallsInHalfOpenState = settings.int(S.llmBreakerHalfOpenCalls)
        breaker.forcedOpenDuration = seconds(S.llmAuthFailureOpen)
        // The cache's connection is the Redis group's setting (another module's declaration), under its variable.
        let environment = settings.effectiveEnvironment
        redisURL = environment["REDIS_URL"].flatMap { $0.isEmpty ? nil : $0 }
        namespace = environment["CONVEYOR_NAMESPACE"].flatMap { $0.isEmpty ? nil : $0 }

        // The declaration's check refuses any other provider name.
        for name in settings.list(S.llmProviders).map({ $0.lowercased() }) {
            switch name {
            case "openai":
                guard let key = settings.text(S.openaiApiKey) else { continue }
                providers.append(LLMProvider(
                    kind: .openAI, baseURL: settings.text(S.openaiBaseUrl) ?? S.openaiBaseUrl.defaultValue!,
                    apiKey: key, model: settings.text(S.openaiModel) ?? S.openaiModel.defaultValue!,
                    maxTokensField: settings.text(S.llmOpenaiMaxTokensField)?.lowercased() ?? S.llmOpenaiMaxTokensField.defaultValue!))
            case "anthropic":
                guard let key = settings.text(S.anthropicApiKey) else { continue }
                providers.append(LLMProvider(
                    kind: .anthropic, baseURL: settings.text(S.anthropicBaseUrl) ?? S.anthropicBaseUrl.defaultValue!,
                    apiKey: key, model: settings.text(S.anthropicModel) ?? S.anthropicModel.defaultValue!))
            default:
                continue
            }
        }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
    }
}
