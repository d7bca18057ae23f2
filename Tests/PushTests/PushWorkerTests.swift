import ConveyorCore
import Foundation
import Testing

@testable import Push

/// `push.send` through the real `conveyor worker`, against the Python stand-in push service that decrypts with
/// http-ece and checks the VAPID JWT (aud, exp, sub, signature).
@Suite(.serialized) struct PushWorkerTests {
    @Test func aThousandPushesAllDecryptToTheirPayloads() async throws {
        let subscribers = (0..<20).map { TestSubscriber(name: "s\($0)") }
        let service = try StandInPushService(subscribers: subscribers)
        let worker = try PushWorker()
        var arguments: [JSONObject] = []
        var expected: [String: [String]] = [:]
        for i in 0..<1000 {
            let subscriber = subscribers[i % subscribers.count]
            let payload: JSONValue = i % 2 == 0 ? .string("reply \(i): héllo ✓") : .object(["n": JSONValue(i), "kind": "mention"])
            let text = payload.stringValue ?? payload.text
            expected["ok/\(subscriber.name)", default: []].append(text)
            arguments.append([
                "subscription": subscriber.subscription(endpoint: service.base + "/ok/" + subscriber.name), "payload": payload,
                "ttl": JSONValue(i % 3 == 0 ? 0 : 60), "urgency": "high", "topic": .string("t\(i % 7)"),
            ])
        }
        let jids = try await worker.enqueue(arguments)
        let outcomes = try await Outcomes.wait(for: jids)
        #expect(outcomes.count == 1000, "\(outcomes.count) outcomes; worker log:\n\(worker.log.suffix(3000))")
        #expect(outcomes.values.filter { $0.status == "succeeded" && $0.result?["status"]?.intValue == 201 && $0.result?["gone"] == false }.count == 1000,
                "\(outcomes.values.first { $0.status != "succeeded" }.map { "\($0.errorClass ?? "") \($0.errorMessage ?? "")" } ?? "")")
        let log = try service.log()
        #expect(log.count == 1000)
        #expect(log.allSatisfy { $0.error == nil && $0.status == 201 }, "\(log.first { $0.error != nil }?.error ?? "")")
        var received: [String: [String]] = [:]
        for entry in log { received[entry.path, default: []].append(entry.payload ?? "<none>") }
        for (path, texts) in expected { #expect(received[path]?.sorted() == texts.sorted(), "\(path)") }
        #expect(log.allSatisfy { $0.urgency == "high" && ($0.ttl == "0" || $0.ttl == "60") && $0.topic?.hasPrefix("t") == true })
        #expect(worker.log.contains("CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK"), "the test switch is warned about at start-up")
        try await worker.stop()
    }

    @Test func scriptedAnswersGiveTheOutcomesTheAPIActsOn() async throws {
        let names = ["gone", "missing", "large", "busy", "fail", "unauth", "toolong"]
        let subscribers = names.map { TestSubscriber(name: $0 + "-sub") }
        let service = try StandInPushService(subscribers: subscribers)
        let worker = try PushWorker()
        let arguments: [JSONObject] = zip(names, subscribers).map { word, subscriber in
            let endpoint = service.base + "/" + (word == "toolong" ? "ok" : word) + "/" + subscriber.name
            let payload: JSONValue = word == "toolong" ? .string(String(repeating: "x", count: 3994)) : "hello"
            return ["subscription": subscriber.subscription(endpoint: endpoint), "payload": payload, "subscription_id": .string("row-\(word)")]
        }
        let jids = try await worker.enqueue(arguments)
        let byWord = Dictionary(uniqueKeysWithValues: zip(names, jids))
        let outcomes = try await Outcomes.wait(for: jids, timeout: .seconds(60))
        func outcome(_ word: String) throws -> Outcome { try #require(outcomes[byWord[word]!], "\(word): no outcome; log:\n\(worker.log.suffix(3000))") }

        for word in ["gone", "missing"] {
            let o = try outcome(word)
            #expect(o.status == "succeeded" && o.result?["gone"] == true && o.result?["subscription_id"] == .string("row-\(word)"), "\(word): \(o)")
        }
        let gone = try Outcomes.goneRows(jids: [byWord["gone"]!, byWord["missing"]!])
        #expect(gone[byWord["gone"]!]?.subscriptionID == "row-gone" && gone[byWord["gone"]!]?.status == 410)
        #expect(gone[byWord["missing"]!]?.subscriptionID == "row-missing" && gone[byWord["missing"]!]?.status == 404)

        let large = try outcome("large")
        #expect(large.status == "dead" && large.errorClass == "PayloadTooLarge" && large.attempts == 1, "\(large)")
        let unauth = try outcome("unauth")
        #expect(unauth.status == "dead" && unauth.errorClass == "PushRejected" && unauth.attempts == 1, "\(unauth)")
        let reason = unauth.errorMessage ?? ""
        #expect(reason.contains("401") && reason.contains("VAPID credentials rejected"), "\(reason)")
        #expect(!reason.unicodeScalars.contains { $0.value < 0x20 }, "control characters from the service are stripped: \(reason.debugDescription)")
        let tooLong = try outcome("toolong")
        #expect(tooLong.status == "dead" && tooLong.errorClass == "PayloadTooLarge" && tooLong.attempts == 1, "\(tooLong)")

        // A 429 is the service asking to wait, not a failed attempt; a 500 is one.
        let busyOutcome = try outcome("busy")
        #expect(busyOutcome.status == "succeeded" && busyOutcome.attempts == 1 && busyOutcome.result?["status"]?.intValue == 201, "busy: \(busyOutcome)")
        let failOutcome = try outcome("fail")
        #expect(failOutcome.status == "succeeded" && failOutcome.attempts == 2 && failOutcome.result?["status"]?.intValue == 201, "fail: \(failOutcome)")
        let log = try service.log()
        #expect(!log.contains { $0.path.hasPrefix("ok/") }, "the oversized payload was refused before any request")
        let busy = log.filter { $0.path.hasPrefix("busy/") }
        #expect(busy.map(\.status) == [429, 201])
        if busy.count == 2 {
            #expect(busy[1].t - busy[0].t >= 2.0, "retried \(busy[1].t - busy[0].t) s after a 429 with Retry-After: 2")
        }
        #expect(log.filter { $0.path.hasPrefix("fail/") }.map(\.status) == [500, 201])
        #expect(log.allSatisfy { $0.error == nil }, "\(log.compactMap(\.error))")
        try await worker.stop()
    }

    /// A 429 with `Retry-After: 2` from a push service holds back every push to that service (its origin), in every
    /// job, until the 2 s are over: no request reaches it sooner, and none of the jobs spends an attempt.
    @Test func aRateLimitedServiceIsWaitedOutWithoutSpendingAttempts() async throws {
        let subscribers = ["a", "b", "c", "d", "e"].map { TestSubscriber(name: "throttle-\($0)") }
        let service = try StandInPushService(subscribers: subscribers)
        let worker = try PushWorker()
        func arguments(_ subscriber: TestSubscriber) -> JSONObject {
            ["subscription": subscriber.subscription(endpoint: service.base + "/throttle/" + subscriber.name), "payload": "hi"]
        }
        let first = try await worker.enqueue([arguments(subscribers[0])])
        // The others are pushed once the service's 429 is in its log.
        var refusedAt: Double?
        let deadline = ContinuousClock.now + .seconds(30)
        while refusedAt == nil, ContinuousClock.now < deadline {
            refusedAt = try service.log().first { $0.path.hasPrefix("throttle/") && $0.status == 429 }?.t
            if refusedAt == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let refused = try #require(refusedAt, "no 429 within 30 s; log:\n\(worker.log.suffix(3000))")
        let rest = try await worker.enqueue(subscribers.dropFirst().map(arguments))
        let outcomes = try await Outcomes.wait(for: first + rest, timeout: .seconds(60))
        for jid in first + rest {
            let o = try #require(outcomes[jid], "\(jid): no outcome; log:\n\(worker.log.suffix(3000))")
            #expect(o.status == "succeeded" && o.attempts == 1, "\(o)")
        }
        let log = try service.log().filter { $0.path.hasPrefix("throttle/") }
        #expect(log.filter { $0.status == 429 }.count == 1, "\(log.map(\.status))")
        let sent = log.filter { $0.status == 201 }
        #expect(sent.count == 5, "\(log.map(\.status))")
        for entry in sent {
            #expect(entry.t - refused >= 2.0, "\(entry.path) reached the service \(entry.t - refused) s after its 429 with Retry-After: 2")
        }
        try await worker.stop()
    }

    @Test func hostileEndpointsAreRefusedWithoutAConnection() async throws {
        let subscriber = TestSubscriber(name: "victim")
        let service = try StandInPushService(subscribers: [subscriber])
        let worker = try PushWorker()
        let port = service.port
        let endpoints = [
            "https://127.0.0.1:\(port)/ok/victim", "https://10.0.0.1/ok/victim", "https://localhost:\(port)/ok/victim",
            "http://localhost:\(port)/ok/victim", "https://[::1]:\(port)/ok/victim", "https://2130706433:\(port)/ok/victim",
            "https://0x7f.1:\(port)/ok/victim", "https://localhost./ok/victim", "https://169.254.169.254/latest/meta-data",
        ]
        let before = try service.connections()
        let jids = try await worker.enqueue(endpoints.map { ["subscription": subscriber.subscription(endpoint: $0), "payload": "secret"] })
        // One reachable push after them proves the worker ran and the stand-in counts connections.
        let control = try await worker.enqueue([["subscription": subscriber.subscription(endpoint: service.base + "/ok/victim"), "payload": "control"]])
        let outcomes = try await Outcomes.wait(for: jids + control, timeout: .seconds(60))
        for (endpoint, jid) in zip(endpoints, jids) {
            let o = try #require(outcomes[jid], "\(endpoint): no outcome")
            #expect(o.status == "dead" && o.errorClass == "PushEndpointRefused" && o.attempts == 1, "\(endpoint): \(o)")
        }
        #expect(outcomes[jids[2]]?.errorMessage?.contains("no connection was made") == true, "\(outcomes[jids[2]]?.errorMessage ?? "")")
        #expect(outcomes[control[0]]?.status == "succeeded")
        let log = try service.log()
        #expect(log.map(\.payload) == ["control"], "only the control push reached the stand-in")
        // Since `before` (whose own read counted): the control push, the log read and this read.
        let after = try service.connections()
        #expect(after - before == 3, "no connection from a refused endpoint: \(before) → \(after)")
        try await worker.stop()
    }

    @Test func aFanOutEnqueuesOnePushPerSubscriptionAndListsTheRefused() async throws {
        let subscribers = (0..<3).map { TestSubscriber(name: "f\($0)") }
        let service = try StandInPushService(subscribers: subscribers)
        let worker = try PushWorker()
        func item(_ subscriber: TestSubscriber, _ endpoint: String, id: JSONValue) -> JSONValue {
            guard case .object(var o) = subscriber.subscription(endpoint: endpoint) else { return .null }
            o["subscription_id"] = id
            o["expirationTime"] = .null
            return .object(o)
        }
        var badKey = subscribers[0].subscription(endpoint: service.base + "/ok/f0").objectValue!
        badKey["keys"] = .object(["p256dh": .string(Base64URL.encode([4] + [UInt8](repeating: 0, count: 64))), "auth": "AAAAAAAAAAAAAAAAAAAAAA"])
        let list: [JSONValue] = [
            item(subscribers[0], service.base + "/ok/f0", id: "a"), item(subscribers[1], "https://10.0.0.1/ok/f1", id: "hostile"),
            item(subscribers[1], service.base + "/ok/f1", id: 2), .object(badKey), item(subscribers[2], service.base + "/gone/f2", id: "c"),
        ]
        let fanout = try await worker.enqueue(
            [["subscriptions": .array(list), "payload": ["title": "fan"], "ttl": 30, "topic": "fan"]], jobClass: "push.fanout")
        let tooLarge = try await worker.enqueue(
            [["subscriptions": .array([list[0]]), "payload": .string(String(repeating: "x", count: 4000))]], jobClass: "push.fanout")
        let first = try await Outcomes.wait(for: fanout + tooLarge, timeout: .seconds(60))
        let result = try #require(first[fanout[0]]?.result, "\(first); log:\n\(worker.log.suffix(2000))")
        #expect(first[fanout[0]]?.status == "succeeded")
        #expect(result["enqueued"]?.intValue == 3)
        let refused = result["refused"]?.arrayValue ?? []
        #expect(refused.compactMap { $0["index"]?.intValue } == [1, 3], "\(refused)")
        #expect(refused.first?["error_class"] == "PushEndpointRefused" && refused.first?["subscription_id"] == "hostile")
        #expect(refused.last?["error_class"] == "InvalidArguments")
        let children = (result["jids"]?.arrayValue ?? []).compactMap(\.stringValue)
        #expect(children == [0, 2, 4].map { PushFanoutHandler.childJID(fanout[0], index: $0) })
        #expect(first[tooLarge[0]]?.status == "dead" && first[tooLarge[0]]?.errorClass == "PayloadTooLarge")

        let outcomes = try await Outcomes.wait(for: children, timeout: .seconds(60))
        #expect(outcomes[children[0]]?.result?["gone"] == false && outcomes[children[0]]?.result?["subscription_id"] == "a")
        #expect(outcomes[children[1]]?.result?["subscription_id"] == "2")
        #expect(outcomes[children[2]]?.result?["gone"] == true)
        #expect(try Outcomes.goneRows(jids: [children[2]])[children[2]]?.subscriptionID == "c")
        let log = try service.log()
        #expect(log.count == 3 && log.allSatisfy { $0.error == nil && $0.payload == #"{"title":"fan"}"# && $0.ttl == "30" && $0.topic == "fan" },
                "\(log.map { "\($0.path) \($0.error ?? "")" })")
        try await worker.stop()
    }
}
