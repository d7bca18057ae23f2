public import ConveyorCore
public import SidekiqQueue
public import Redis
import Digest

/// Summaries in Redis for 24 h under `conveyor:summary:v1:<sha256>` of the canonical request, and the
/// single-flight lock `conveyor:summary:lock:<sha256>` (`SET NX PX`) that lets one job per key call a
/// provider while the others wait for its cached value.
public final class SummaryCache: Sendable {
    let redis: RedisThread
    let keys: QueueKeys
    let ttl: Duration
    let lockTTL: Duration

    public init(redis: RedisThread, keys: QueueKeys, ttl: Duration = .seconds(86_400), lockTTL: Duration = .seconds(60)) {
        self.redis = redis
        self.keys = keys
        self.ttl = ttl
        self.lockTTL = lockTTL
    }

    func valueKey(_ hash: String) -> String { keys.conveyor("summary:v1:" + hash) }
    func lockKey(_ hash: String) -> String { keys.conveyor("summary:lock:" + hash) }

    /// The key's hash: SHA-256 of canonical JSON (sorted keys, no whitespace) over everything that changes
    /// the summary: task, prompt version, logical model, parameters and content. Not the served model, so
    /// a summary from the fallback serves later jobs after the primary recovers.
    static func hash(_ request: SummaryRequest, modelAlias: String, maxInputCharacters: Int, maxOutputTokens: Int) -> String {
        let canonical: JSONValue = .object(JSONObject([
            ("content", .object(JSONObject([
                ("body", .string(request.body)),
                ("comments", .array(request.comments.map { .string($0) })),
                ("title", .string(request.title)),
            ]))),
            ("max_output_tokens", JSONValue(maxOutputTokens)),
            ("max_words", JSONValue(request.maxWords)),
            ("model", .string(modelAlias)),
            ("prompt_version", JSONValue(SummaryPrompt.version)),
            ("task", "post-summary"),
            ("truncate_at", JSONValue(maxInputCharacters)),
        ]))
        return SHA256Digest.hash(canonical.bytes).hex
    }

    func get(_ hash: String, postID: String) async throws -> SummaryResult? {
        let key = valueKey(hash)
        let reply = try await redis.run { try $0.command("GET", key).check() }
        guard let bytes = reply.bytes, let json = try? JSONValue(parsing: bytes),
              let summary = json["summary"]?.stringValue, let provider = json["provider"]?.stringValue else { return nil }
        return SummaryResult(
            postID: postID, summary: summary, provider: provider, model: json["model"]?.stringValue ?? "", cached: true,
            degraded: false, truncatedInput: json["truncated_input"]?.boolValue ?? false,
            inputTokens: json["input_tokens"]?.intValue, outputTokens: json["output_tokens"]?.intValue)
    }

    func put(_ hash: String, _ result: SummaryResult) async throws {
        var pairs: [(String, JSONValue)] = [
            ("summary", .string(result.summary)), ("provider", .string(result.provider)), ("model", .string(result.model)),
            ("truncated_input", .bool(result.truncatedInput)),
            ("created_at", JSONValue(Double(Int(Date().timeIntervalSince1970 * 1000)) / 1000)),
        ]
        if let n = result.inputTokens { pairs.append(("input_tokens", JSONValue(n))) }
        if let n = result.outputTokens { pairs.append(("output_tokens", JSONValue(n))) }
        let value = JSONValue.object(JSONObject(pairs)).bytes
        let key = valueKey(hash)
        let seconds = max(1, Int(ttl.components.seconds))
        try await redis.run { try $0.command("SET", key, value, "EX", seconds).check() }
    }

    /// Takes the single-flight lock for `hash` with `token`; false when another job holds it.
    func lock(_ hash: String, token: String) async throws -> Bool {
        let key = lockKey(hash)
        let ms = max(1, Int(lockTTL.components.seconds) * 1000 + Int(lockTTL.components.attoseconds / 1_000_000_000_000_000))
        let reply = try await redis.run { try $0.command("SET", key, token, "NX", "PX", ms).check() }
        return !reply.isNull
    }

    /// Releases the lock if `token` still holds it (a lock that expired and was retaken is left alone).
    func unlock(_ hash: String, token: String) async throws {
        let key = lockKey(hash)
        let script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
        _ = try await redis.run { try $0.command("EVAL", script, 1, key, token).check() }
    }

    /// The key a provider's shared cooldown lives in while it lasts: every process that calls the provider reads it.
    func cooldownKey(_ provider: String) -> String { keys.conveyor("llm:cooldown:" + provider) }

    /// What is left of `provider`'s shared cooldown (a 429's or 529's `Retry-After`, written by any process); nil when none.
    func cooldown(_ provider: String) async throws -> Duration? {
        let key = cooldownKey(provider)
        let ms = try await redis.run { try $0.command("PTTL", key).check() }.int ?? -2
        return ms > 0 ? .milliseconds(ms) : nil
    }

    /// Cools `provider` down for every process until `wait` from now; a longer cooldown already set stays.
    func coolDown(_ provider: String, for wait: Duration) async throws {
        let key = cooldownKey(provider)
        // A provider's wait is capped before it gets here (`SummariesConfiguration.maxRetryAfter`); clamped again to a
        // day so no value can overflow the milliseconds.
        let capped = min(max(wait, .milliseconds(1)), .seconds(86_400))
        let ms = Int(capped.components.seconds) * 1000 + Int(capped.components.attoseconds / 1_000_000_000_000_000)
        let script = "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end return 0"
        _ = try await redis.run { try $0.command("EVAL", script, 1, key, ms).check() }
    }

    func isLocked(_ hash: String) async throws -> Bool {
        let key = lockKey(hash)
        return try await redis.run { try $0.command("EXISTS", key).check() }.int == 1
    }
}

import Foundation
