// push-bench: push.send's sending path (border checks, RFC 8291 encryption, VAPID token, libcurl POST) to a local
// stand-in push service, CONCURRENCY sends at once from one process.
// Usage: push-bench ENDPOINT COUNT CONCURRENCY  → prints "COUNT SECONDS PUSHES_PER_SECOND P99_MS"
import ConveyorCore
import Crypto
import Foundation
import Push

let arguments = CommandLine.arguments
guard arguments.count == 4, let count = Int(arguments[2]), count > 0, let concurrency = Int(arguments[3]), (1...256).contains(concurrency) else {
    FileHandle.standardError.write(Data("usage: push-bench ENDPOINT COUNT CONCURRENCY\n".utf8))
    exit(64)
}
let key = VAPIDKey.generate()
let configuration = try PushConfiguration(environment: [
    "CONVEYOR_VAPID_PRIVATE_KEY": key.privateKeyBase64URL, "CONVEYOR_VAPID_SUBJECT": "mailto:bench@conveyor.test",
    "CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK": "1", "CONVEYOR_PUSH_CONCURRENCY": String(concurrency),
])
let sender = PushSender(configuration: configuration)
let userAgent = P256.KeyAgreement.PrivateKey()
let subscription: JSONValue = .object([
    "endpoint": .string(arguments[1]),
    "keys": .object(["p256dh": .string(Base64URL.encode(userAgent.publicKey.x963Representation)),
                     "auth": .string(Base64URL.encode([UInt8](repeating: 3, count: 16)))]),
])

let start = ContinuousClock.now
let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
    for worker in 0..<concurrency {
        group.addTask {
            var mine: [Duration] = []
            var i = worker
            while i < count {
                let began = ContinuousClock.now
                let arguments: JSONObject = ["subscription": subscription, "payload": .string("notification \(i): a reply to your post"), "ttl": 60]
                let request = try PushSendRequest(arguments: arguments, allowInsecureLoopback: true)
                let answer = try await sender.send(request, deadline: .now + .seconds(30))
                guard answer.status == 201 else { throw JobFailure.transient("Bench", "push \(i) answered \(answer.status)") }
                mine.append(ContinuousClock.now - began)
                i += concurrency
            }
            return mine
        }
    }
    var all: [Duration] = []
    for try await part in group { all += part }
    return all
}
let elapsed = ContinuousClock.now - start
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let sorted = latencies.sorted()
let p99 = sorted[min(sorted.count - 1, sorted.count * 99 / 100)]
let p99ms = (Double(p99.components.seconds) + Double(p99.components.attoseconds) / 1e18) * 1000
print(String(format: "%d %.3f %.1f %.2f", count, seconds, Double(count) / seconds, p99ms))
