import Foundation
import Operations
import Testing

/// What an operator (or a script with a typo) can type at the command line and in the environment: every duration
/// and number flag and setting, thrown extremes through the real binary. Each is refused with exit 64 and a message
/// naming the flag or variable; none traps (exit 132/133 with a backtrace).
@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs REDIS_URL, DATABASE_URL and CONVEYOR_BIN"))
struct HostileOperatorInputTests {
    let namespace = TestEnv.unique("hostile")

    static let extremes = ["inf", "-inf", "nan", "1e308", "-1e308", "1e400", "9223372036854775807", "-9223372036854775808", "1e300h"]

    /// Runs the binary; a process still running after `timeout` seconds is killed and reported as exit -1.
    private func conveyor(
        _ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 60
    ) throws -> (code: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnv.binary!)
        process.arguments = arguments + ["--namespace", namespace]
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        nonisolated(unsafe) var outData = Data()
        nonisolated(unsafe) var errData = Data()
        let readers = [
            Thread { outData = out.fileHandleForReading.readDataToEndOfFile() },
            Thread { errData = err.fileHandleForReading.readDataToEndOfFile() },
        ]
        for r in readers { r.start() }
        let deadline = Date().addingTimeInterval(timeout)
        var killed = false
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                killed = true
                break
            }
            usleep(10_000)
        }
        process.waitUntilExit()
        while readers.contains(where: { !$0.isFinished }) { usleep(1000) }
        return (killed ? -1 : process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// Exit 64, a message naming `mention`, and no trap.
    private func expectUsageError(
        _ arguments: [String], environment: [String: String] = [:], mentioning mention: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r = try conveyor(arguments, environment: environment)
        let shown = "\(arguments) \(environment): exit \(r.code)\n\(r.err.prefix(2000))"
        #expect(r.code == 64, "\(shown)", sourceLocation: sourceLocation)
        for trap in ["Fatal error", "Stack dump", "backtrace", "Illegal instruction", "Current stack trace"] {
            #expect(!r.err.contains(trap), "\(shown)", sourceLocation: sourceLocation)
        }
        #expect(r.err.contains(mention), "\(shown)", sourceLocation: sourceLocation)
    }

    @Test func enqueueRefusesEveryExtremeDelayTimeAndRetry() throws {
        for value in Self.extremes + ["-1", "-1s", "3651d", "abc", "5x", String(repeating: "9", count: 5000)] {
            try expectUsageError(["enqueue", "noop", "--in=\(value)"], mentioning: "--in")
        }
        for value in Self.extremes + ["-1", "1e13", "99999-01-01T00:00:00Z"] where value != "1e300h" {
            try expectUsageError(["enqueue", "noop", "--at=\(value)"], mentioning: "--at")
        }
        for value in ["9223372036854775807", "-9223372036854775808", "-1", "10001"] {
            try expectUsageError(["enqueue", "noop", "--retry=\(value)"], mentioning: "--retry")
        }
        for name in ["", "a b", "tab\tname", "c1\u{85}name", "line\nbreak", String(repeating: "c", count: 300)] {  // argv cannot carry NUL
            try expectUsageError(["enqueue", name], mentioning: "job class")
            try expectUsageError(["enqueue", "noop", "--queue", name], mentioning: "--queue")
        }
        // The largest accepted delay is scheduled (the check is a range, not a refusal of everything).
        let ok = try conveyor(["enqueue", "noop", "--in", "3650d", "--retry", "10000"])
        #expect(ok.code == 0, "\(ok.err)")
        #expect(ok.out.trimmingCharacters(in: .whitespacesAndNewlines).count >= 16)
    }

    @Test func workerRefusesEveryExtremeDurationFlag() throws {
        for flag in ["--shutdown-timeout", "--heartbeat-interval", "--heartbeat-ttl", "--poll-interval"] {
            for value in Self.extremes + ["-1", "-5s", "abc", "31d"] {
                try expectUsageError(["worker", "\(flag)=\(value)"], mentioning: flag)
            }
        }
        for value in Self.extremes + ["-1", "0", "31d", "abc"] {
            try expectUsageError(["worker", "--class-timeout", "sleep=\(value)"], mentioning: "--class-timeout")
        }
        try expectUsageError(["worker", "--class-timeout", "sleep"], mentioning: "--class-timeout")
        try expectUsageError(["worker", "--class-timeout", "=5s"], mentioning: "--class-timeout")
    }

    @Test func workerRefusesEveryExtremeNumberFlag() throws {
        let numbers = ["9223372036854775807", "-9223372036854775808", "0", "-1", "100000000000000000000", "1e3", "abc"]
        for value in numbers {
            try expectUsageError(["worker", "--concurrency=\(value)"], mentioning: "--concurrency")
            try expectUsageError(["worker", "--class-concurrency", "sleep=\(value)"], mentioning: "--class-concurrency")
            try expectUsageError(["worker", "--class-attempts", "sleep=\(value)"], mentioning: "--class-attempts")
        }
        for value in ["9223372036854775807", "-9223372036854775808", "-1", "100000001"] {
            try expectUsageError(["worker", "--dead-max-jobs=\(value)"], mentioning: "--dead-max-jobs")
        }
        for value in Self.extremes + ["-1", "3651"] where value != "1e300h" {
            try expectUsageError(["worker", "--dead-max-days=\(value)"], mentioning: "--dead-max-days")
        }
    }

    @Test func workerRefusesABadMetricsAddressAsAUsageError() throws {
        for value in ["nonsense", "127.0.0.1:99999", "127.0.0.1:-1", "1.2.3.4.5:80", "host:9223372036854775807", ":"] {
            try expectUsageError(["worker", "--metrics-addr=\(value)"], mentioning: "--metrics-addr")
            try expectUsageError(["worker"], environment: ["CONVEYOR_METRICS_ADDR": value], mentioning: "CONVEYOR_METRICS_ADDR")
            try expectUsageError(["config"], environment: ["CONVEYOR_METRICS_ADDR": value], mentioning: "CONVEYOR_METRICS_ADDR")
        }
    }

    /// Random extremes (any bit pattern of a Double, any Int64, with or without a unit) for every duration flag, in
    /// process for thousands and through the binary for a sample: a value is used only when finite and in range.
    @Test func propertyEveryDurationIsFiniteAndInRangeOrRefused() throws {
        var generator = SystemRandomNumberGenerator()
        let units = ["", "ms", "s", "m", "h", "d", "w"]
        func randomText() -> String {
            let number: String
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: number = String(Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator)))
            case 1: number = String(Int64.random(in: Int64.min...Int64.max, using: &generator))
            case 2: number = ["inf", "-inf", "nan", "1e400", "-1e400", "1e308", "4e-324", "-0", "0x1p1023"].randomElement(using: &generator)!
            default: number = String(Double.random(in: -1e6...1e12, using: &generator))
            }
            return number + units.randomElement(using: &generator)!
        }
        for _ in 0..<20_000 {
            let text = randomText()
            if let seconds = OperatorInput.duration(text) {
                #expect(seconds.isFinite && seconds >= 0 && seconds <= OperatorInput.maximumDuration, "\(text) -> \(seconds)")
            }
            if let seconds = try? OperatorInput.duration(text, name: "--x", range: 0.01...3600, plainSeconds: true) {
                #expect(seconds >= 0.01 && seconds <= 3600, "\(text) -> \(seconds)")
            }
            if let t = OperatorInput.time(text) { #expect(t.isFinite && t >= 0 && t <= OperatorInput.latestTime, "\(text) -> \(t)") }
        }
        let flags = ["--shutdown-timeout", "--heartbeat-interval", "--heartbeat-ttl", "--poll-interval"]
        for _ in 0..<12 {
            var text = randomText()
            // Only values no flag accepts: not finite, negative, or beyond 10 years (every flag's range is within it).
            while OperatorInput.duration(text) != nil
                || Double(text).map({ $0.isFinite && $0 >= 0 && $0 <= OperatorInput.maximumDuration }) == true
            { text = randomText() }
            try expectUsageError(["worker", "\(flags.randomElement(using: &generator)!)=\(text)"], mentioning: "--")
            try expectUsageError(["enqueue", "noop", "--in=\(text)"], mentioning: "--in")
        }
    }

    /// Every numeric setting of the worker's own (and its operations') through `conveyor config` and, for the ones
    /// read before anything starts, through `conveyor worker` itself.
    @Test func numericSettingsRefuseExtremesInConfigAndWorker() throws {
        let settings = [
            "CONVEYOR_CONCURRENCY", "CONVEYOR_METRICS_POLL_SECONDS", "CONVEYOR_RESULTS_BATCH", "CONVEYOR_RESULTS_BUFFER",
            "CONVEYOR_RESULTS_FLUSH_MS", "CONVEYOR_RESULTS_WRITERS", "CONVEYOR_REDIS_WAIT_REPLICAS", "CONVEYOR_REDIS_WAIT_TIMEOUT_MS",
        ]
        for name in settings {
            for value in Self.extremes + ["-1", "abc"] {
                try expectUsageError(["config"], environment: [name: value], mentioning: name)
            }
        }
        for name in ["CONVEYOR_RESULTS_BUFFER", "CONVEYOR_RESULTS_FLUSH_MS", "CONVEYOR_CONCURRENCY", "CONVEYOR_METRICS_POLL_SECONDS"] {
            for value in ["inf", "nan", "1e308", "9223372036854775807", "-1"] {
                try expectUsageError(["worker"], environment: [name: value], mentioning: name)
            }
        }
    }

    @Test func operatorInputParsesOnlyFiniteValuesInRange() throws {
        for text in ["inf", "infs", "-1s", "nans", "1e308s", "1e400s", "3651d", "-0.001ms", "s", "", "1e300h", "5x"] {
            #expect(OperatorInput.duration(text) == nil, "\(text)")
        }
        #expect(OperatorInput.duration("3650d") == OperatorInput.maximumDuration)
        #expect(OperatorInput.duration("250ms") == 0.25)
        #expect(OperatorInput.duration("5m") == 300)
        #expect(throws: OperatorInputError.self) { try OperatorInput.duration("inf", name: "--in", plainSeconds: true) }
        do {
            _ = try OperatorInput.duration("1e300h", name: "--shutdown-timeout", range: 0...86_400)
            Issue.record("1e300h accepted")
        } catch {
            #expect(error.description.contains("--shutdown-timeout 1e300h"))
            #expect(error.description.contains("0s to 1d"))
        }
        for text in ["inf", "nan", "1e308", "-1", "1e400", "-inf", "99999999999999999"] {
            #expect(OperatorInput.time(text) == nil, "\(text)")
        }
        #expect(OperatorInput.time("1763780000") == 1_763_780_000)
        #expect(OperatorInput.time("1763780000000") == 1_763_780_000)
        #expect(OperatorInput.time("2h", now: 10_000) == 2800)
        for text in ["inf/s", "nan", "1e308", "1e400/m", "0", "-5/s", "0.0001/h", "5/s/s", "5/x"] {
            #expect(OperatorInput.rate(text) == nil, "\(text)")
        }
        #expect(OperatorInput.rate("300/m") == 5)
        #expect(OperatorInput.clampedDuration(seconds: .infinity) == .seconds(Int64(OperatorInput.maximumDuration)))
        #expect(OperatorInput.clampedDuration(seconds: .nan) == .zero)
        #expect(OperatorInput.clampedDuration(seconds: -1e308) == .zero)
    }
}
