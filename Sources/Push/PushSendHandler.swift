public import ConveyorCore
import Foundation

/// `push.send`: one push to one subscription, its outcome one the API can act on.
///
/// 2xx → succeeded; 404/410 → succeeded with `"gone": true`, the subscription recorded in `conveyor.push_gone`;
/// 413 → permanent `PayloadTooLarge`; 429, and 503 with `Retry-After` → `PushThrottled`: every push to that service
/// waits it out (`PushCooldown`) and the job runs again after it without spending an attempt; other 5xx → retried
/// no earlier than `Retry-After`; other 4xx (400, 401, 403) and 3xx → permanent `PushRejected` with the service's reason.
public struct PushSendHandler: JobHandler {
    public let sender: PushSender
    public let gone: (any PushGoneStore)?
    public let cooldown: PushCooldown

    public init(sender: PushSender, gone: (any PushGoneStore)?, cooldown: PushCooldown = PushCooldown(redis: nil, namespace: nil)) {
        self.sender = sender
        self.gone = gone
        self.cooldown = cooldown
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        let request = try PushSendRequest(arguments: job.arguments, allowInsecureLoopback: sender.configuration.allowInsecureLoopback)
        return try await Self.deliver(request, sender: sender, gone: gone, cooldown: cooldown, jid: job.jid, deadline: job.deadline)
    }

    /// Sends `request` (unless its service asked to wait) and maps the answer to a result or a failure.
    static func deliver(
        _ request: PushSendRequest, sender: PushSender, gone: (any PushGoneStore)?, cooldown: PushCooldown, jid: String,
        deadline: ContinuousClock.Instant
    ) async throws(JobFailure) -> JSONValue {
        let origin = request.endpoint.origin
        if let left = await cooldown.remaining(origin) {
            throw .deferred(
                .pushThrottled, "push.send jid=\(jid): \(origin) asked every sender to wait; \(Saturating.int(left.rounded(.up))) s left, not sent (no attempt spent)",
                after: left)
        }
        let answer = try await sender.send(request, deadline: deadline)
        var result: JSONObject = ["status": JSONValue(answer.status), "origin": .string(origin)]
        if let id = request.subscriptionID { result["subscription_id"] = .string(id) }
        switch answer.status {
        case 200..<300:
            result["gone"] = false
            if let location = answer.location, !Job.containsControlCharacters(location) { result["location"] = .string(location) }
            return .object(result)
        case 404, 410:
            if let gone {
                do {
                    try await gone.recordGone(jid: jid, subscriptionID: request.subscriptionID, endpoint: request.endpoint.url, status: answer.status)
                } catch {
                    throw .transient(.pushGoneStoreFailed, "push.send jid=\(jid): \(origin) answered \(answer.status) (gone) but conveyor.push_gone could not record it: \(error)")
                }
            }
            result["gone"] = true
            return .object(result)
        case 413:
            throw .permanent(.payloadTooLarge, "push.send jid=\(jid): \(origin) answered 413 (payload too large): \(PushText.reason(answer.body))")
        case 429, 503 where answer.retryAfter != nil:
            let wait = answer.retryAfter.map(\.pushSeconds)
            if let wait { await cooldown.coolDown(origin, for: wait) }
            throw .deferred(
                .pushThrottled, "push.send jid=\(jid): \(origin) answered \(answer.status)" + Self.reasonSuffix(answer.body)
                    + (wait.map { "; Retry-After \(Saturating.int($0.rounded(.up))) s" } ?? "") + " (no attempt spent)",
                after: wait)
        case 500..<600:
            var failure = JobFailure.transient(
                .pushServiceUnavailable, "push.send jid=\(jid): \(origin) answered \(answer.status)" + Self.reasonSuffix(answer.body)
                    + (answer.retryAfter.map { "; Retry-After \($0.components.seconds) s" } ?? ""))
            if let wait = answer.retryAfter {
                failure.retryAfter = wait.pushSeconds
            }
            throw failure
        case 300..<400:
            throw .permanent(.pushRejected, "push.send jid=\(jid): \(origin) answered \(answer.status); redirects are not followed")
        default:
            throw .permanent(.pushRejected, "push.send jid=\(jid): \(origin) answered \(answer.status)" + Self.reasonSuffix(answer.body))
        }
    }

    private static func reasonSuffix(_ body: [UInt8]) -> String {
        let reason = PushText.reason(body)
        return reason.isEmpty ? "" : ": \(reason)"
    }
}
