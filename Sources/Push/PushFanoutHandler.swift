public import ConveyorCore
public import SidekiqQueue
import Crypto
import Foundation

/// `push.fanout`: one notification to many subscriptions, as one `push.send` job per subscription, so each has its
/// own retries and its own outcome (`gone`, `PushRejected`, ...) in `conveyor.job_results`.
///
/// Every subscription is checked at the border first; the ones refused (a hostile endpoint, a bad key) are listed in
/// the result and never enqueued, the others are pushed in one round trip. Their jids are derived from the fan-out's
/// jid and the subscription's index, so the API can find each outcome, and a fan-out retried after its enqueue
/// pushes the same jids again.
public struct PushFanoutHandler: JobHandler {
    public static let maxSubscriptions = 1000
    public static let argumentNames: Set<String> = ["subscriptions", "payload", "ttl", "urgency", "topic"]

    public let client: JobClient?
    public let allowInsecureLoopback: Bool

    public init(client: JobClient?, allowInsecureLoopback: Bool) {
        self.client = client
        self.allowInsecureLoopback = allowInsecureLoopback
    }

    /// The jid of the `push.send` job for subscription number `index` of fan-out `jid`.
    public static func childJID(_ jid: String, index: Int) -> String {
        SHA256.hash(data: Array("\(jid):\(index)".utf8)).prefix(12).map { String(format: "%02x", $0) }.joined()
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        for key in job.arguments.keys where !Self.argumentNames.contains(key) {
            throw JobFailure.invalidArguments("push.fanout: unknown argument \(PushText.quoted(key, max: 64)); allowed: \(Self.argumentNames.sorted().joined(separator: ", "))")
        }
        guard let list = job.arguments["subscriptions"]?.arrayValue else { throw JobFailure.invalidArguments("push.fanout: subscriptions must be an array") }
        guard (1...Self.maxSubscriptions).contains(list.count) else {
            throw JobFailure.invalidArguments("push.fanout: subscriptions holds \(list.count); 1-\(Self.maxSubscriptions) per job")
        }
        var message = job.arguments
        message["subscriptions"] = nil
        do {
            _ = try PushSendRequest.message(message)
        } catch {
            throw error.with(message: "push.fanout jid=\(job.jid): \(error.message)")
        }
        var payloads: [JSONObject] = []
        var jids: [JSONValue] = []
        var refused: [JSONValue] = []
        let now = JobTime.now()
        for (index, item) in list.enumerated() {
            let id = item.objectValue?["subscription_id"]
            do {
                _ = try PushSendRequest(subscription: item, message: message, allowInsecureLoopback: allowInsecureLoopback, name: "subscriptions[\(index)]")
                let subscriptionID = try PushSendRequest.subscriptionID(id, name: "subscriptions[\(index)].subscription_id")
                var subscription = item.objectValue ?? JSONObject()
                subscription["subscription_id"] = nil
                var arguments = message
                arguments["subscription"] = .object(subscription)
                if let subscriptionID { arguments["subscription_id"] = .string(subscriptionID) }
                let child = Self.childJID(job.jid, index: index)
                payloads.append(Job.envelope(jobClass: PushJobs.sendClass, arguments: arguments, queue: PushJobs.queue, now: now, jid: child))
                jids.append(.string(child))
            } catch {
                var entry: JSONObject = ["index": JSONValue(index), "error_class": .string(error.errorClass), "error": .string(error.message)]
                if let id = id?.stringValue ?? id?.intValue.map(String.init) { entry["subscription_id"] = .string(String(id.prefix(256))) }
                refused.append(.object(entry))
            }
        }
        if !payloads.isEmpty {
            guard let client else {
                throw JobFailure.permanent(.pushConfiguration, "push.fanout needs REDIS_URL to enqueue its push.send jobs")
            }
            do {
                try await client.push(payloads)
            } catch {
                throw JobFailure.transient(.pushTransport, "push.fanout jid=\(job.jid): could not enqueue \(payloads.count) push.send jobs: \(error)")
            }
        }
        return ["enqueued": JSONValue(payloads.count), "jids": .array(jids), "refused": .array(refused)]
    }
}
