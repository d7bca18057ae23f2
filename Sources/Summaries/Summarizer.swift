public import ConveyorCore
public import Logging
internal import Curl
internal import Redis
import Tracing

/// Summarises posts: the cache first, then each configured provider in order behind its own circuit
/// breaker, then the built-in extractive summariser (marked degraded) when none answers. One instance per
/// process; its breakers and metrics are shared by every job.
public final class Summarizer: Sendable {
    public let configuration: SummariesConfiguration
    public let metrics: SummaryMetrics
    let cache: SummaryCache?
    let breakers: [CircuitBreaker]
    let handles: CurlHandlePool
    let pool: BlockingPool

    /// - Parameters:
    ///   - cache: nil runs without Redis (no cache, no single-flight).
    ///   - now: the breakers' clock; tests pass a manual one.
    public init(
        configuration: SummariesConfiguration, cache: SummaryCache?, metrics: SummaryMetrics = SummaryMetrics(),
        pool: BlockingPool = BlockingPool(name: "conveyor-llm", maximumThreads: 64),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }
    ) {
        self.configuration = configuration
        self.cache = cache
        self.metrics = metrics
        self.pool = pool
        handles = CurlHandlePool(maximumIdle: 32)
        breakers = configuration.providers.map { CircuitBreaker(name: $0.name, configuration: configuration.breaker, now: now) }
    }

    /// The breaker of the provider named `name`.
    public func breaker(_ name: String) -> CircuitBreaker? { breakers.first { $0.name == name } }

    /// Counters and breaker states, for the metrics exporter.
    public func metricsSnapshot() -> SummaryMetrics.Snapshot {
        metrics.snapshot(breakers: breakers.map(\.snapshot))
    }

    /// Summarises one post. Never fails because providers are down (the result is then degraded); throws a
    /// permanent `JobFailure` when a provider rejects the request itself (400/422/413).
    public func summarize(_ request: SummaryRequest, deadline: ContinuousClock.Instant, jid: String, logger: Logger) async throws -> SummaryResult {
        if configuration.providers.isEmpty {
            metrics.count(.extractiveOnly)
            return extractive(request, degraded: false)
        }
        let hash = SummaryCache.hash(request, modelAlias: configuration.modelAlias,
                                     maxInputCharacters: configuration.maxInputCharacters, maxOutputTokens: configuration.maxOutputTokens)
        var lockToken: String?
        if let cache {
            do {
                switch try await awaitTurn(cache, hash: hash, request: request, deadline: deadline, jid: jid) {
                case .cached(let hit): return hit
                case .locked(let token): lockToken = token
                case .unlocked: break
                }
            } catch let error as RedisError {
                logger.warning("llm.summarize post \(request.postID): summary cache unavailable, calling providers without it: \(error)")
            }
        }

        let outcome: Result<SummaryResult, JobFailure> = await callProviders(request, deadline: deadline, jid: jid, logger: logger)
        if let cache {
            do {
                if case .success(let result) = outcome, !result.degraded { try await cache.put(hash, result) }
                if let lockToken { try await cache.unlock(hash, token: lockToken) }
            } catch {
                logger.warning("llm.summarize post \(request.postID): could not write the summary cache: \(error)")
            }
        }
        return try outcome.get()
    }

    private enum Turn { case cached(SummaryResult), locked(String), unlocked }

    /// Cache lookup and single flight: returns the cached summary, or the lock token once this job may call
    /// the providers. A job that finds the lock taken polls for the holder's value; when the holder gives up
    /// without one (degraded, failed, crashed and the lock expired) it takes the lock itself.
    private func awaitTurn(_ cache: SummaryCache, hash: String, request: SummaryRequest, deadline: ContinuousClock.Instant, jid: String) async throws -> Turn {
        if let hit = try await cache.get(hash, postID: request.postID) {
            metrics.count(.cacheHit)
            return .cached(hit)
        }
        metrics.count(.cacheMiss)
        let token = "\(jid):\(UInt64.random(in: 0...UInt64.max))"
        // Leave the providers enough time when waiting ends without a value.
        let waitUntil = min(deadline - configuration.requestTimeout, ContinuousClock.now + configuration.lockTTL)
        var waited = false
        while true {
            if try await cache.lock(hash, token: token) {
                // The holder may have cached it between our GET and SET NX.
                if waited, let hit = try await cache.get(hash, postID: request.postID) {
                    try await cache.unlock(hash, token: token)
                    metrics.count(.singleFlightWait)
                    return .cached(hit)
                }
                return .locked(token)
            }
            waited = true
            var delay = Duration.milliseconds(5)
            while true {
                if ContinuousClock.now >= waitUntil { return .unlocked }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .milliseconds(100))
                if let hit = try await cache.get(hash, postID: request.postID) {
                    metrics.count(.singleFlightWait)
                    return .cached(hit)
                }
                if try await !cache.isLocked(hash) { break }
            }
        }
    }

    private func callProviders(_ request: SummaryRequest, deadline: ContinuousClock.Instant, jid: String, logger: Logger) async -> Result<SummaryResult, JobFailure> {
        let prompt = SummaryPrompt(request, maxInputCharacters: configuration.maxInputCharacters)
        for (index, provider) in configuration.providers.enumerated() {
            let breaker = breakers[index]
            let permit: CircuitBreaker.Permit
            do {
                permit = try breaker.acquirePermission()
            } catch {
                metrics.call(provider.name, .notPermitted)
                continue
            }
            if deadline - .now <= .milliseconds(10) {
                breaker.record(permit, .ignored)
                break
            }
            // Another process's 429 or 529 with Retry-After: the provider is not called here either until it ends.
            if let cache, let left = try? await cache.cooldown(provider.name) {
                breaker.record(permit, .ignored)
                breaker.coolDown(for: left)
                metrics.call(provider.name, .notPermitted)
                continue
            }
            // One client span per provider call (OpenTelemetry's GenAI conventions), with the breaker's state.
            let attempt = await Traced.span(
                "chat \(provider.model)",
                attributes: [
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "\(provider.kind.rawValue)",
                    "gen_ai.request.model": "\(provider.model)", "conveyor.llm.provider": "\(provider.name)",
                    "conveyor.breaker.state": "\(breaker.snapshot.state.rawValue)",
                ]
            ) { span in
                let attempt = await call(provider, prompt: prompt, deadline: deadline, jid: jid)
                switch attempt.kind {
                case .accepted(let reply, _):
                    span.attributes["gen_ai.usage.input_tokens"] = reply.inputTokens
                    span.attributes["gen_ai.usage.output_tokens"] = reply.outputTokens
                case .failure(let why), .authFailure(let why), .badRequest(let why), .rejectedOutput(let why), .rateLimited(_, let why),
                    .overloaded(_, let why):
                    span.attributes["error.type"] = "\(attempt.kind.label)"
                    span.setStatus(SpanStatus(code: .error, message: why))
                }
                return attempt
            }
            switch attempt.kind {
            case .accepted(let reply, let text):
                breaker.record(permit, .success)
                metrics.call(provider.name, .success, seconds: attempt.seconds, inputTokens: reply.inputTokens, outputTokens: reply.outputTokens)
                if index > 0 { metrics.count(.fallback) }
                return .success(SummaryResult(
                    postID: request.postID, summary: text, provider: provider.name, model: reply.modelServed, cached: false,
                    degraded: false, truncatedInput: prompt.truncated, inputTokens: reply.inputTokens, outputTokens: reply.outputTokens))
            case .failure(let why):
                breaker.record(permit, .failure)
                metrics.call(provider.name, .failure, seconds: attempt.seconds)
                logger.warning("llm.summarize post \(request.postID): \(provider.name) failed, trying the next provider: \(why)")
            case .rateLimited(let wait, let why), .overloaded(let wait, let why):
                // A 429 is not the provider's ill health; a 529 (or 503) that says when to come back is. Either way no
                // process calls it until then.
                let overloaded = if case .overloaded = attempt.kind { true } else { false }
                breaker.record(permit, overloaded ? .failure : .ignored)
                breaker.coolDown(for: wait)
                await shareCooldown(provider.name, wait, logger: logger)
                metrics.call(provider.name, overloaded ? .failure : .rateLimited, seconds: attempt.seconds)
                logger.warning("llm.summarize post \(request.postID): \(provider.name) \(overloaded ? "overloaded" : "rate-limited"), cooling down \(wait): \(why)")
            case .authFailure(let why):
                breaker.record(permit, .ignored)
                breaker.forceOpen()
                metrics.call(provider.name, .authFailure, seconds: attempt.seconds)
                logger.error("llm.summarize post \(request.postID): \(provider.name) refused the credentials; breaker forced open. Check its API key, model and account: \(why)")
            case .badRequest(let why):
                breaker.record(permit, .ignored)
                metrics.call(provider.name, .badRequest, seconds: attempt.seconds)
                return .failure(.permanent(.llmBadRequest, "llm.summarize post \(request.postID): \(provider.name) rejected the request: \(why)"))
            case .rejectedOutput(let why):
                breaker.record(permit, .success)
                metrics.call(provider.name, .rejectedOutput, seconds: attempt.seconds)
                logger.warning("llm.summarize post \(request.postID): \(provider.name) reply not accepted, trying the next provider: \(why)")
            }
        }
        metrics.count(.degraded)
        logger.warning("llm.summarize post \(request.postID): no provider answered; using the built-in extractive summary (degraded)")
        return .success(extractive(request, degraded: true))
    }

    /// Writes a provider's cooldown where every process sees it (when there is a cache: the shared Redis).
    private func shareCooldown(_ provider: String, _ wait: Duration, logger: Logger) async {
        guard let cache else { return }
        do { try await cache.coolDown(provider, for: wait) } catch {
            logger.warning("llm.summarize: could not share \(provider)'s cooldown: \(error)")
        }
    }

    private func extractive(_ request: SummaryRequest, degraded: Bool) -> SummaryResult {
        let text = ExtractiveSummarizer.summarize(title: request.title, body: request.body, comments: request.comments, maxWords: request.maxWords)
        return SummaryResult(postID: request.postID, summary: text, provider: "extractive", model: "extractive-v1", cached: false, degraded: degraded)
    }

    struct Attempt {
        enum Kind {
            case accepted(LLMProvider.Reply, String)
            case failure(String)
            case rateLimited(Duration, String)
            case overloaded(Duration, String)
            case authFailure(String)
            case badRequest(String)
            case rejectedOutput(String)

            /// The outcome's name on a span's `error.type`.
            var label: String {
                switch self {
                case .accepted: "accepted"
                case .failure: "provider_failure"
                case .rateLimited: "rate_limited"
                case .overloaded: "overloaded"
                case .authFailure: "auth_failure"
                case .badRequest: "bad_request"
                case .rejectedOutput: "rejected_output"
                }
            }
        }
        var kind: Kind
        var seconds: Double
    }

    /// One HTTP call to `provider`, classified as the issue's outcome rules say.
    private func call(_ provider: LLMProvider, prompt: SummaryPrompt, deadline: ContinuousClock.Instant, jid: String) async -> Attempt {
        let transfer = CurlTransferOptions(connectTimeout: configuration.connectTimeout, timeout: configuration.requestTimeout,
                                           deadline: deadline, maxResponseBytes: 4 << 20)
        let http = provider.request(prompt, maxTokens: configuration.maxOutputTokens, transfer: transfer, idempotencyKey: "llm.summarize/\(jid)")
        let started = ContinuousClock.now
        let result: Result<HTTPResponse, CurlError>
        do {
            result = try await pool.run { [handles] in
                try handles.withHandle { easy -> Result<HTTPResponse, CurlError> in
                    do throws(CurlError) { return .success(try easy.perform(http)) } catch { return .failure(error) }
                }
            }
        } catch {
            result = .failure(CurlError(kind: .setup, code: 0, message: "\(error)"))
        }
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        return Attempt(kind: classify(result, provider: provider, prompt: prompt), seconds: seconds)
    }

    func classify(_ result: Result<HTTPResponse, CurlError>, provider: LLMProvider, prompt: SummaryPrompt) -> Attempt.Kind {
        let response: HTTPResponse
        switch result {
        case .failure(let error): return .failure(error.description)
        case .success(let r): response = r
        }
        let secrets = configuration.providers.map(\.apiKey)
        let requestID = (response.header("request-id") ?? response.header("x-request-id")).map {
            ProviderText.redacted($0, secrets: secrets, limit: 128)
        }
        let errorText = LLMProvider.errorText(response.body, secrets: secrets)
        let detail = "HTTP \(response.status) \(errorText)" + (requestID.map { " request-id=\($0)" } ?? "")
        switch response.status {
        case 200..<300:
            guard let reply = provider.parse(response.body, requestID: requestID) else {
                return .failure("HTTP \(response.status) with a body that is not a \(provider.kind.rawValue) response")
            }
            if reply.stop == .refused { return .rejectedOutput("the model refused") }
            switch prompt.check(reply.text) {
            case .accepted(let text): return .accepted(reply, text)
            case .rejected(let why): return .rejectedOutput(why)
            }
        case 429:
            if errorText.hasPrefix("insufficient_quota") { return .authFailure(detail) }
            return .rateLimited(min(response.retryAfter ?? configuration.defaultRetryAfter, SummariesConfiguration.maxRetryAfter), detail)
        case 401, 402, 403, 404:
            return .authFailure(detail)
        case 400, 413, 422:
            return .badRequest(detail)
        case 503 where response.retryAfter != nil, 529 where response.retryAfter != nil:
            return .overloaded(min(response.retryAfter ?? configuration.defaultRetryAfter, SummariesConfiguration.maxRetryAfter), detail)
        default:
            // 5xx, 529 overloaded, 408, 409 and anything unexpected: the provider's health.
            return .failure(detail)
        }
    }
}
