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
