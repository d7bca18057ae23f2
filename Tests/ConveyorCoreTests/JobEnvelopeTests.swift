import Foundation
import Testing

@testable import ConveyorCore

@Suite struct JobEnvelopeTests {
    @Test func readsSidekiq6SecondsAndSidekiq8Milliseconds() throws {
        let six = try Job(raw: Array(#"{"class":"noop","args":[{}],"jid":"a","enqueued_at":1795300000.5}"#.utf8))
        let eight = try Job(raw: Array(#"{"class":"noop","args":[{}],"jid":"b","created_at":1795300000500,"enqueued_at":1795300000500}"#.utf8))
        #expect(six.enqueuedAt == 1795300000.5)
        #expect(eight.enqueuedAt == 1795300000.5)
        #expect(six.queue == "default")
        #expect(eight.arguments.isEmpty)
    }

    @Test func failureFieldsFollowTheJobsTimestampFormat() throws {
        let eight = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"b","created_at":1795300000500}"#.utf8))
        let (payload, destination) = JobTransitions.failed(
            eight, failure: .transient("Boom", "x"), policy: .default, now: 1795300001.25, random: 0)
        #expect(payload["failed_at"] == .number("1795300001250"))
        #expect(payload["retry_count"] == 0)
        #expect(destination == .retry(at: 1795300001.25 + 15))
        let six = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","created_at":1795300000.5,"retry_count":0,"failed_at":1.0}"#.utf8))
        let (again, _) = JobTransitions.failed(six, failure: .transient("Boom", "x"), policy: .default, now: 1795300001.25, random: 0)
        #expect(again["retried_at"] == .number("1795300001.25"))
        #expect(again["failed_at"] == .number("1.0"), "first failure time is kept")
        #expect(again["retry_count"] == 1)
    }

    /// A destination that asked to wait (a 429 with `Retry-After`) defers the job: it runs again after the wait with
    /// its `retry_count` as it was, counting the deferral in Sidekiq Enterprise's `overrated` field, twenty times at most;
    /// after that, or with an `overrated` that is not a count, the wait is spent as an attempt like any failure.
    @Test func aDeferralSpendsNoAttemptUntilItsCap() throws {
        let job = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry_count":2}"#.utf8))
        let failure = JobFailure.deferred("PushThrottled", "429", after: 2)
        let (payload, destination) = JobTransitions.failed(job, failure: failure, policy: .default, now: 100, random: 0)
        #expect(destination == .deferred(at: 102))
        #expect(payload["retry_count"] == 2)
        #expect(payload["overrated"] == 1)
        #expect(payload["error_class"] == "PushThrottled")
        #expect(payload["failed_at"] == nil, "a deferral is not a failure")
        // Without a wait from the destination: the back-off of the attempt it would have spent, at least a second.
        var noWait = failure
        noWait.retryAfter = nil
        if case .deferred(let at) = JobTransitions.failed(job, failure: noWait, policy: .default, now: 100, random: 0).destination {
            #expect(at >= 101 && at <= 100 + RetryPolicy.maxDelay)
        } else {
            Issue.record("not deferred")
        }
        // A wait from outside is bounded.
        for wait in [Double.infinity, 1e308, -1, .nan] {
            var odd = failure
            odd.retryAfter = wait
            if case .deferred(let at) = JobTransitions.failed(job, failure: odd, policy: .default, now: 100, random: 0).destination {
                #expect(at >= 101 && at <= 100 + RetryPolicy.maxDelay, "\(wait): \(at)")
            } else {
                Issue.record("\(wait): not deferred")
            }
        }
        let capped = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry_count":2,"overrated":20}"#.utf8))
        let (spent, then) = JobTransitions.failed(capped, failure: failure, policy: .default, now: 100, random: 0)
        #expect(spent["retry_count"] == 3)
        if case .deferred = then { Issue.record("deferred past the cap") }
        for odd in ["-1", "1e308", "9223372036854775807", "\"x\"", "1.5", "null"] {
            let hostile = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry_count":2,"overrated":\#(odd)}"#.utf8))
            let (p, d) = JobTransitions.failed(hostile, failure: failure, policy: .default, now: 100, random: 0)
            if odd == "null" {
                #expect(d == .deferred(at: 102), "null is no count yet")
            } else {
                #expect(p["retry_count"] == 3, "overrated \(odd) is not a count: the attempt is spent")
            }
        }
    }

    @Test func retryFieldFalseMeansOneRun() throws {
        let job = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry":false}"#.utf8))
        let (_, destination) = JobTransitions.failed(job, failure: .transient("Boom", "x"), policy: .default, now: 0)
        #expect(destination == .dead)
        let five = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry":5,"retry_count":4}"#.utf8))
        #expect(JobTransitions.failed(five, failure: .transient("Boom", "x"), policy: .default, now: 0).destination == .dead)
        let four = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry":5,"retry_count":3}"#.utf8))
        #expect(JobTransitions.failed(four, failure: .transient("Boom", "x"), policy: .default, now: 0).destination != .dead)
    }

    @Test func aPermanentFailureIsMarkedSoPagesCanSaySo() throws {
        let job = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry":5}"#.utf8))
        let (dead, destination) = JobTransitions.failed(job, failure: .permanent("InvalidArguments", "x"), policy: .default, now: 0)
        #expect(destination == .dead)
        #expect(dead["error_permanent"] == .bool(true))
        let (retried, _) = JobTransitions.failed(job, failure: .transient("Boom", "x"), policy: .default, now: 0)
        #expect(retried["error_permanent"] == nil)
        // A job that failed permanently once and transiently later loses the mark.
        let marked = try Job(raw: Array(#"{"class":"noop","args":[],"jid":"a","retry":5,"error_permanent":true}"#.utf8))
        #expect(JobTransitions.failed(marked, failure: .transient("Boom", "x"), policy: .default, now: 0).payload["error_permanent"] == nil)
    }

    @Test func quarantineKeepsTheBytes() {
        let failure = JobFailure.permanent("MalformedJob", "nope")
        let text = JobTransitions.quarantined(raw: Array("{oops".utf8), queue: "q", failure: failure, now: 1)
        #expect(text["raw"] == "{oops")
        #expect(text["class"] == "conveyor.malformed")
        let binary = JobTransitions.quarantined(raw: [0xFF, 0x00, 0x10, 0x20, 0x30], queue: "q", failure: failure, now: 1)
        #expect(binary["raw_base64"] == "/wAQIDA=")
    }

    /// Every example job in Jobs/examples is a valid envelope of a class that has an argument schema.
    @Test func examplesAreValidJobsWithSchemas() throws {
        let jobs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Jobs").standardized
        let examples = try FileManager.default.contentsOfDirectory(atPath: jobs.appendingPathComponent("examples").path)
            .filter { $0.hasSuffix(".json") }
        #expect(examples.contains("noop.json") && examples.contains("sleep.json"))
        for name in examples {
            let data = try Data(contentsOf: jobs.appendingPathComponent("examples/\(name)"))
            let job = try Job(raw: Array(data))
            #expect("\(job.jobClass).json" == name)
            #expect(job.jid.count == 24)
            let schema = try JSONValue(parsing: Array(try Data(contentsOf: jobs.appendingPathComponent("\(job.jobClass).schema.json"))))
            #expect(schema["type"] == "object")
        }
        _ = try JSONValue(parsing: Array(try Data(contentsOf: jobs.appendingPathComponent("envelope.schema.json"))))
    }
}
