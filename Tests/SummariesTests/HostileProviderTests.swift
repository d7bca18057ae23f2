import ConveyorCore
import Foundation
import Logging
import Postgres
import Redis
import SidekiqQueue
import Testing
@testable import Summaries

/// Every log line a test's logger writes, with its metadata.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []

    var text: String { lock.withLock { lines.joined(separator: "\n") } }
    func append(_ line: String) { lock.withLock { lines.append(line) } }

    var logger: Logger {
        var logger = Logger(label: "capture") { _ in Handler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            capture.append("\(level) \(message) \(self.metadata.merging(metadata ?? [:]) { $1 })")
        }
    }
}

private func job(_ args: JSONObject, logger: Logger, jid: String = "jid-hostile") -> JobContext {
    JobContext(jid: jid, jobClass: "llm.summarize", queue: "llm", arguments: args, attempt: 1,
               deadline: .now + .seconds(30), payload: JSONObject(), logger: logger)
}

private let args = JSONObject([("post_id", "p-hostile"), ("title", "Library hours"), ("body", "The library opens until 9pm from May.")])

/// The keys the fake server accepts, and what a leak of them would look like in any form.
private let secrets = ["test-openai-key", "test-anthropic-key", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx"]

private func assertNoSecret(_ text: String, _ comment: Comment) {
    for secret in secrets { #expect(!text.contains(secret), comment) }
    #expect(!text.contains("\u{0}") && !text.contains("\u{1B}"), comment)
}

@Suite struct ProviderCredentialTests {
    @Test func aKeyEchoedInA401BodyIsMaskedInTheLog() async throws {
        let server = try FakeLLMServer()
        try server.fault("openai", "echo_401")
        try server.fault("anthropic", "echo_401")
        let capture = LogCapture()
        var registry = JobRegistry()
        try SummariesJobs.register(into: &registry, environment: server.environment(), store: InMemorySummaryStore())
        let handler = try #require(registry["llm.summarize"]).handler
        let result = try await handler.perform(job(args, logger: capture.logger))
        #expect(result["degraded"]?.boolValue == true)
        let log = capture.text
        // Both providers' failures were logged, with the provider's text but not its credentials.
        #expect(log.contains("openai refused the credentials") && log.contains("anthropic refused the credentials"))
        #expect(log.contains("Incorrect API key provided: ****"))
        #expect(log.contains("Bearer ****") && log.contains("sk-****"))
        assertNoSecret(log, "log: \(log)")
    }

    @Test func aKeyEchoedInA400BodyIsMaskedInTheJobsError() async throws {
        let server = try FakeLLMServer()
        try server.fault("openai", "echo_400")
        let capture = LogCapture()
        var registry = JobRegistry()
        try SummariesJobs.register(into: &registry, environment: server.environment(), store: InMemorySummaryStore())
        let handler = try #require(registry["llm.summarize"]).handler
        let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(args, logger: capture.logger)) }
        let message = try #require(failure?.message)
        #expect(failure?.errorClass == "LLMBadRequest" && failure?.isPermanent == true)
        #expect(message.contains("HTTP 400") && message.contains("****"))
        #expect(message.count < 600, "the provider's text is cut short: \(message.count) characters")
        assertNoSecret(message, "error: \(message)")
        assertNoSecret(capture.text, "log: \(capture.text)")
    }

    @Test(arguments: [
        ("Incorrect API key provided: my-secret-key-123.", "Incorrect API key provided: ****."),
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer ****"),
        ("header was BEARER    zzz", "header was BEARER    ****"),
        ("use sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAA now", "use sk-**** now"),
        ("basic=dXNlcjpwYXNz", "basic=****"),
        ("task-force sk-short and a bearer", "task-force sk-short and a bearer"),
        ("line\nbreak\u{0}nul\u{1B}[31m", "line breaknul[31m"),
    ])
    func redactionRule(input: String, expected: String) {
        #expect(ProviderText.redacted(input, secrets: ["my-secret-key-123"]) == expected)
    }

    @Test func aLongKeyRepeatedPastTheInputCutLeavesNoPartOfIt() {
        let key = "key-" + String(repeating: "Q", count: 2000)
        let body = Array(JSONValue.object(JSONObject([("error", .object(JSONObject([
            ("type", "authentication_error"), ("message", .string(Array(repeating: key, count: 12).joined(separator: " "))),
        ])))])).bytes)
        let text = LLMProvider.errorText(body, secrets: [key])
        #expect(!text.contains("QQQQ"), "\(text)")
        #expect(text.hasPrefix("authentication_error: ****"))
    }

    @Test func aKeyCutByTheLengthLimitIsMaskedBeforeTheCut() {
        let key = "k-" + String(repeating: "Z", count: 60)
        let text = String(repeating: "x", count: 280) + key + String(repeating: "y", count: 5000)
        let out = ProviderText.redacted(text, secrets: [key])
        #expect(!out.contains("ZZZZ") && out.count <= ProviderText.maxErrorCharacters + 1)
    }

    @Test(arguments: ["ms:inf", "ms:1e300", "ms:-5", "ms:nan", "9223372036854775807", "1e300"])
    func anEndlessRetryAfterIsCappedInsteadOfTrapping(value: String) async throws {
        let server = try FakeLLMServer()
        try server.fault("openai", "429", retryAfter: value)
        let summarizer = Summarizer(configuration: try SummariesConfiguration(environment: server.environment()), cache: nil)
        let result = try await summarizer.summarize(
            SummaryRequest(postID: "p", title: "Library hours", body: "The library opens until 9pm."), deadline: .now + .seconds(20),
            jid: "jid-retry-after", logger: LogCapture().logger)
        #expect(result.provider == "anthropic")
        let cooling = try #require(summarizer.breaker("openai")).snapshot.coolingDownFor
        #expect(cooling <= SummariesConfiguration.maxRetryAfter, "Retry-After \(value) cooled down for \(cooling)")
    }
}

@Suite struct ConfigurationRangeTests {
    static let durations = [
        "CONVEYOR_LLM_TIMEOUT", "CONVEYOR_LLM_CONNECT_TIMEOUT", "CONVEYOR_LLM_CACHE_TTL", "CONVEYOR_LLM_LOCK_TTL",
        "CONVEYOR_LLM_BREAKER_SLOW_CALL", "CONVEYOR_LLM_BREAKER_OPEN", "CONVEYOR_LLM_AUTH_FAILURE_OPEN",
    ]
    static let integers = [
        "CONVEYOR_LLM_MAX_INPUT_CHARS", "CONVEYOR_LLM_MAX_OUTPUT_TOKENS", "CONVEYOR_LLM_BREAKER_FAILURE_RATE",
        "CONVEYOR_LLM_BREAKER_SLOW_RATE", "CONVEYOR_LLM_BREAKER_WINDOW", "CONVEYOR_LLM_BREAKER_MIN_CALLS",
        "CONVEYOR_LLM_BREAKER_HALF_OPEN_CALLS",
    ]
    static let extremes = [
        "inf", "-inf", "infinity", "nan", "NaN", "1e300", "-1e300", "1e400", "-1", "0", "9223372036854775807",
        "-9223372036854775808", "18446744073709551616", "1e19", "0x10", "", " ", "30s", "1_000",
    ]

    @Test(arguments: durations + integers)
    func everyNumberIsFiniteAndInRangeOrANamedConfigurationError(name: String) {
        for value in Self.extremes {
            do {
                let configuration = try SummariesConfiguration(environment: [name: value])
                // Accepted: only the empty value (the default) and values in range.
                #expect(value.trimmingCharacters(in: .whitespaces).isEmpty, "\(name)=\(value) was accepted")
                #expect(configuration.requestTimeout <= .seconds(3600) && configuration.connectTimeout <= .seconds(300))
            } catch {
                #expect(error.errorClass == "InvalidConfiguration" && error.message.hasPrefix("\(name)="), "\(name)=\(value): \(error.message)")
            }
        }
    }

    @Test func theDocumentedRangeIsAccepted() throws {
        let c = try SummariesConfiguration(environment: ["CONVEYOR_LLM_TIMEOUT": "3600", "CONVEYOR_LLM_CONNECT_TIMEOUT": "0.25"])
        #expect(c.requestTimeout == .seconds(3600) && c.connectTimeout == .milliseconds(250))
        #expect(throws: JobFailure.self) { try SummariesConfiguration(environment: ["CONVEYOR_LLM_TIMEOUT": "3600.5"]) }
    }

    /// The real binary: `conveyor config` builds every family's configuration, so a bad value is a clean exit
    /// naming the variable, not a trap (exit 132/133 with a backtrace).
    @Test(arguments: ["inf", "1e300", "-1", "nan"])
    func theBinaryRefusesAnEndlessTimeoutCleanly(value: String) async throws {
        let binary = try #require(ProcessInfo.processInfo.environment["CONVEYOR_BIN"], "CONVEYOR_BIN is not set")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["config"]
        var environment = ProcessInfo.processInfo.environment
        environment["CONVEYOR_LLM_TIMEOUT"] = value
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            + String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit, "conveyor config died of a signal: \(output)")
        #expect(process.terminationStatus != 0 && process.terminationStatus < 128, "exit \(process.terminationStatus): \(output)")
        #expect(output.contains("CONVEYOR_LLM_TIMEOUT"), "\(output)")
    }
}

private let databaseURL = ProcessInfo.processInfo.environment["DATABASE_URL"]

@Suite(.enabled(if: databaseURL != nil, "needs DATABASE_URL (make test starts a private PostgreSQL)"))
struct ProviderOutputStorageTests {
    @Test(arguments: ["openai", "anthropic"])
    func aNulInTheReplyIsDroppedAndTheWholeSummaryStored(provider: String) async throws {
        let server = try FakeLLMServer()
        try server.fault(provider, "nul")
        let connection = try PostgresConnection(url: databaseURL!)
        _ = try Migrator(migrations: PostgresSummaryStore.migrations).migrate(connection)
        var registry = JobRegistry()
        let order = provider == "openai" ? "openai,anthropic" : "anthropic,openai"
        try SummariesJobs.register(
            into: &registry, environment: server.environment(["DATABASE_URL": databaseURL!, "CONVEYOR_LLM_PROVIDERS": order]))
        let handler = try #require(registry["llm.summarize"]).handler
        let post = "nul-post-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var arguments = args
        arguments["post_id"] = .string(post)
        let result = try await handler.perform(job(arguments, logger: LogCapture().logger))
        let expected = "Summary with a NUL and[2J controls, kept whole after them."
        #expect(result["summary"]?.stringValue == expected)
        #expect(result["provider"]?.stringValue == provider && result["degraded"]?.boolValue == false)
        #expect(result["model"]?.stringValue?.contains("\u{0}") == false)
        let stored = try #require(try await PostgresSummaryStore(database: PostgresThread(url: databaseURL!, name: "nul-check")).summary(postID: post))
        #expect(stored.summary == expected)
        // The job's result is kept as jsonb in conveyor.job_results: PostgreSQL refuses \u0000 there.
        let rows = try connection.query("SELECT ($1::jsonb)->>'summary'", [String(decoding: result.bytes, as: UTF8.self)])
        #expect(rows.rows.first?.first == expected)
    }

    @Test func aPostIDWithANulIsRefusedBeforeAnyStore() async throws {
        let handler = SummarizeHandler(summarizer: Summarizer(configuration: SummariesConfiguration(), cache: nil), store: InMemorySummaryStore())
        var arguments = args
        arguments["post_id"] = "p\u{0}x"
        let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(arguments, logger: LogCapture().logger)) }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true && failure?.message.contains("post_id") == true)
    }
}

/// Extreme numbers in every numeric argument of `llm.summarize`: a clean permanent error or a success, never a trap.
@Suite struct SummariesArgumentPropertyTests {
    static let extremes: [JSONValue] = [
        .number("1e308"), .number("-1e308"), .number("1e400"), .number("9223372036854775807"), .number("-9223372036854775808"),
        .number("9223372036854775808"), .number("-1"), .number("0"), .number("0.5"), .number("1e-400"), .number("80.0"),
        .string("80"), .bool(true), .null, .array([]),
    ]

    /// Every argument the schema lists (`Jobs/llm.summarize.schema.json`), so one added later is covered too.
    static var fields: [String] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Jobs/llm.summarize.schema.json")
        let schema = (try? Data(contentsOf: url)).flatMap { try? JSONValue(parsing: Array($0)) }
        return schema?["properties"]?.objectValue?.keys ?? []
    }

    @Test func theSchemaListsTheArguments() { #expect(Self.fields == ["post_id", "title", "body", "comments", "max_words"]) }

    @Test(arguments: fields)
    func extremeNumbers(field: String) async throws {
        let handler = SummarizeHandler(summarizer: Summarizer(configuration: SummariesConfiguration(), cache: nil), store: nil)
        for value in Self.extremes {
            var arguments = args
            arguments[field] = value
            do {
                let result = try await handler.perform(job(arguments, logger: LogCapture().logger))
                #expect(result["summary"]?.stringValue?.isEmpty == false, "\(field)=\(value)")
            } catch let failure as JobFailure {
                #expect(failure.errorClass == "InvalidArguments" && failure.isPermanent && failure.message.contains(field), "\(field)=\(value): \(failure)")
            }
        }
    }
}

/// The real `conveyor worker`: a provider that echoes the key in its 401 and 400 bodies. Neither the worker's log
/// nor the dead job's stored error may carry the key.
@Suite(.enabled(if: databaseURL != nil && ProcessInfo.processInfo.environment["REDIS_URL"] != nil, "needs REDIS_URL and DATABASE_URL"))
struct ProviderCredentialWorkerTests {
    @Test func theWorkersLogAndTheDeadJobsErrorHoldNoKey() async throws {
        let environment = ProcessInfo.processInfo.environment
        let binary = try #require(environment["CONVEYOR_BIN"], "CONVEYOR_BIN is not set")
        let server = try FakeLLMServer()
        try server.fault("openai", "echo_401")
        try server.fault("anthropic", "echo_400")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-llm-worker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }

        let migrate = Process()
        migrate.executableURL = URL(fileURLWithPath: binary)
        migrate.arguments = ["migrate", "--database-url", databaseURL!]
        try migrate.run()
        migrate.waitUntilExit()
        #expect(migrate.terminationStatus == 0)

        let namespace = "llm-keys-" + UUID().uuidString.prefix(8).lowercased()
        let logPath = folder.appendingPathComponent("worker.log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try #require(FileHandle(forWritingAtPath: logPath))
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: binary)
        worker.arguments = ["worker", "--namespace", namespace, "--queues", "llm", "-c", "1"]
        worker.environment = environment.merging(server.environment([
            "CONVEYOR_LLM_PROVIDERS": "openai,anthropic", "CONVEYOR_MAIL_OUTBOX": folder.appendingPathComponent("outbox").path,
            "CONVEYOR_LOG_LEVEL": "debug",
        ])) { _, new in new }
        worker.standardOutput = log
        worker.standardError = log
        try worker.run()
        defer {
            kill(worker.processIdentifier, SIGKILL)
            worker.waitUntilExit()
        }

        let redis = RedisThread(try RedisEndpoint(url: environment["REDIS_URL"]!), name: "llm-keys-test")
        defer { redis.stop() }
        let jid = try await JobClient(redis: redis, keys: QueueKeys(namespace: namespace))
            .enqueue("llm.summarize", arguments: args, queue: "llm")
        let database = try PostgresConnection(url: databaseURL!)
        var row: [String?] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, worker.isRunning {
            let result = try database.query("SELECT status, error_class, error_message FROM conveyor.job_results WHERE jid = $1", [jid])
            if let first = result.rows.first { row = first; break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(row.count == 3 && row[0] == "dead" && row[1] == "LLMBadRequest", "\(row)")
        let message = row.count == 3 ? row[2] ?? "" : ""
        #expect(message.contains("HTTP 400") && message.contains("****"), "\(message)")
        assertNoSecret(message, "stored error: \(message)")
        let text = try String(contentsOfFile: logPath, encoding: .utf8)
        #expect(text.contains("openai refused the credentials"), "\(text.suffix(2000))")
        assertNoSecret(text, "worker log: \(text.suffix(2000))")
    }
}
