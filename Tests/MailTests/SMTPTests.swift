import ConveyorCore
import Curl
import Foundation
import Logging
@testable import Mail
import Postgres
import Testing

func job(_ arguments: JSONObject, jid: String = UUID().uuidString, attempt: Int = 1) -> JobContext {
    JobContext(
        jid: jid, jobClass: "email.send", queue: "mail", arguments: arguments, attempt: attempt,
        deadline: .now + .seconds(30), payload: JSONObject(), logger: Logger(label: "mail-test"))
}

func configuration(smtp: String? = nil, outbox: URL? = nil) throws -> MailConfiguration {
    MailConfiguration(
        from: try MailAddress("no-reply@example.com", displayName: "Conveyor Tests"), messageIDDomain: "mail.example.com",
        templates: defaultTemplates, outbox: outbox ?? URL(fileURLWithPath: "/nonexistent"),
        smtp: smtp.map { MailConfiguration.SMTP(url: $0, startTLS: .off, connectTimeout: .seconds(5), timeout: .seconds(20)) }, concurrency: 2)
}

func smtpHandler(_ sink: SMTPSink, ledger: any MailLedger = InMemoryMailLedger()) throws -> EmailSendHandler {
    let config = try configuration(smtp: sink.url)
    return EmailSendHandler(configuration: config, transport: SMTPTransport(configuration: config.smtp!, connections: 2), ledger: ledger)
}

func welcome(to: String, key: String? = nil, name: String = "Zoë") -> JSONObject {
    var args = JSONObject([("template", "welcome"), ("to", .string(to)), ("locale", "en"),
                           ("data", ["name": .string(name), "product": "Acme", "login_url": "https://acme.example/login?a=1&b=2"])])
    if let key { args["idempotency_key"] = .string(key) }
    return args
}

@Suite struct SMTPTests {
    @Test func deliversAWellFormedMessageToARealServer() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let result = try await handler.perform(job(welcome(to: "alice@example.net", key: "welcome-42")))
        #expect(result["status"]?.stringValue == "sent")
        #expect(result["reply"]?.stringValue?.hasPrefix("250 2.0.0 OK queued as conveyor-test-") == true)
        let messages = try sink.messages()
        #expect(messages.count == 1)
        let envelope = messages[0].envelope
        #expect(envelope["mail_from"]?.stringValue == "no-reply@example.com")
        #expect(envelope["rcpt_tos"]?[0]?.stringValue == "alice@example.net")
        let parsed = try parseWithPython(messages[0].raw)
        #expect(parsed["defects"]?.arrayValue?.isEmpty == true)
        #expect(parsed["headers"]?["Subject"]?.stringValue == "Welcome to Acme, Zoë!")
        #expect(parsed["headers"]?["Message-ID"]?.stringValue == "<conveyor.welcome-42@mail.example.com>")
        #expect(parsed["to_addresses"]?[0]?.stringValue == "alice@example.net")
        #expect(parsed["from_names"]?[0]?.stringValue == "Conveyor Tests")
        let parts = parsed["parts"]?.arrayValue ?? []
        #expect(parts.map { $0["content_type"]?.stringValue } == ["text/plain", "text/html"])
        #expect(parts.first?["text"]?.stringValue?.contains("Sign in: https://acme.example/login?a=1&b=2") == true)
        #expect(parts.last?["text"]?.stringValue?.contains("href=\"https://acme.example/login?a=1&amp;b=2\"") == true)
        #expect((parsed["max_line"]?.intValue ?? 999) <= 78)
    }

    @Test func notificationCarriesListUnsubscribe() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let args = JSONObject([("template", "notification"), ("to", "bob@example.net"),
                               ("data", ["title": "New comment", "body": "<script>x</script>", "unsubscribe_url": "https://acme.example/u/bob"])])
        _ = try await handler.perform(job(args))
        let parsed = try parseWithPython(try sink.messages()[0].raw)
        #expect(parsed["headers"]?["List-Unsubscribe"]?.stringValue == "<https://acme.example/u/bob>")
        #expect(parsed["headers"]?["List-Unsubscribe-Post"]?.stringValue == "List-Unsubscribe=One-Click")
        #expect(parsed["parts"]?[1]?["text"]?.stringValue?.contains("&lt;script&gt;x&lt;/script&gt;") == true)
        // Without the URL a notification is refused before sending.
        let missing = JSONObject([("template", "notification"), ("to", "bob@example.net"), ("data", ["title": "t", "body": "b"])])
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(missing)) }
        #expect(error?.isPermanent == true)
        #expect(try sink.messages().count == 1)
    }

    @Test func oneConnectionIsReusedAcrossMessages() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let transport = SMTPTransport(options: SMTPSessionOptions(url: sink.url, useSSL: .none), connections: 1)
        let message = try MailMessage(from: MailAddress("a@example.com"), to: MailAddress("b@example.com"), subject: "s", text: "t", html: "h",
                                      messageID: "x@example.com").rendered()
        let envelope = MailEnvelope(from: try MailAddress("a@example.com"), to: try MailAddress("b@example.com"))
        for _ in 0..<5 { _ = try await transport.send(message, envelope: envelope, messageID: "x@example.com", timeout: .seconds(10)) }
        #expect(try sink.messages().count == 5)
        #expect(sink.connections() == 1)
        #expect(transport.statistics.connections == 1)

        let fresh = SMTPTransport(options: SMTPSessionOptions(url: sink.url, useSSL: .none, reuseConnection: false), connections: 1)
        for _ in 0..<3 { _ = try await fresh.send(message, envelope: envelope, messageID: "x@example.com", timeout: .seconds(10)) }
        #expect(sink.connections() == 4)
    }

    @Test func temporaryFailureIsTransient() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "tempfail@example.net"))) }
        #expect(error?.errorClass == "SMTPTemporaryFailure")
        #expect(error?.isPermanent == false)
        #expect(error?.message.contains("451") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func rejectionIsPermanentWithTheServersText() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "reject@example.net"))) }
        #expect(error?.errorClass == "SMTPRejected")
        #expect(error?.isPermanent == true)
        #expect(error?.message.contains("550 5.1.1 No such user here") == true)
        // The same connection still works for the next message.
        _ = try await handler.perform(job(welcome(to: "ok@example.net")))
        #expect(try sink.messages().count == 1)
    }

    @Test func repliesToTheFinalDotAreClassifiedToo() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let refused = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "refusedata@example.net"))) }
        #expect(refused?.errorClass == "SMTPRejected")
        #expect(refused?.isPermanent == true)
        #expect(refused?.message.contains("554 5.7.1 Message refused: content policy") == true, "\(String(describing: refused))")
        let deferred = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "tempdata@example.net"))) }
        #expect(deferred?.errorClass == "SMTPTemporaryFailure")
        #expect(deferred?.isPermanent == false)
        #expect(deferred?.message.contains("452") == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func retriedJobIsNotSentTwice() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let jid = UUID().uuidString
        let args = welcome(to: "tempfail1-carol@example.net", key: "reset-\(jid)")
        let first = await #expect(throws: JobFailure.self) { try await handler.perform(job(args, jid: jid, attempt: 1)) }
        #expect(first?.isPermanent == false)
        let second = try await handler.perform(job(args, jid: jid, attempt: 2))
        #expect(second["status"]?.stringValue == "sent")
        // A redelivery (worker died before acknowledging, or the job was enqueued twice) finds the ledger entry.
        let third = try await handler.perform(job(args, jid: jid, attempt: 3))
        #expect(third["status"]?.stringValue == "already_sent")
        let duplicate = try await handler.perform(job(args, jid: UUID().uuidString))
        #expect(duplicate["status"]?.stringValue == "already_sent")
        #expect(try sink.messages().count == 1)
    }

    @Test func droppedConnectionAfterDataIsRetriedWithTheSameMessageID() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let jid = UUID().uuidString
        let args = welcome(to: "dropafterdata@example.net", key: "ambiguous-\(jid)")
        let first = await #expect(throws: JobFailure.self) { try await handler.perform(job(args, jid: jid)) }
        #expect(first?.isPermanent == false)
        #expect(first?.errorClass == "SMTPAmbiguous")
        let second = try await handler.perform(job(args, jid: jid, attempt: 2))
        #expect(second["status"]?.stringValue == "sent")
        // At-least-once: the server got the first copy too; both carry the same Message-ID.
        let ids = try sink.messages().map { try parseWithPython($0.raw)["headers"]?["Message-ID"]?.stringValue }
        #expect(ids.count == 2)
        #expect(Set(ids).count == 1)
    }

    @Test func injectionAttemptsAreRefusedWithoutNetworkTraffic() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        var viaName = welcome(to: "alice@example.net")
        viaName["to_name"] = "Alice\r\nBcc: victim@example.org"
        let attempts: [JSONObject] = [
            viaName,
            welcome(to: "alice@example.net\r\nRCPT TO:<victim@example.org>"),
            welcome(to: "alice@example.net", name: "Eve\nBcc: victim@example.org"),
            welcome(to: "alice@example.net", key: "k\r\nX-Injected: 1"),
        ]
        for args in attempts {
            let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(args)) }
            #expect(error?.errorClass == "HeaderInjection")
            #expect(error?.isPermanent == true)
        }
        let invalid = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "alice@example.net, victim@example.org"))) }
        #expect(invalid?.errorClass == "InvalidAddress")
        #expect(sink.connections() == 0)
        #expect(try sink.messages().isEmpty)
    }

    @Test func connectionRefusedIsTransient() async throws {
        let config = try configuration(smtp: "smtp://127.0.0.1:1")
        let handler = EmailSendHandler(configuration: config, transport: SMTPTransport(configuration: config.smtp!, connections: 1), ledger: InMemoryMailLedger())
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "alice@example.net"))) }
        #expect(error?.errorClass == "SMTPTransport")
        #expect(error?.isPermanent == false)
    }

    @Test func startTLSRequiredButNotOfferedIsPermanent() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let config = try configuration(smtp: sink.url)
        var smtp = config.smtp!
        smtp.startTLS = .required
        let handler = EmailSendHandler(configuration: config, transport: SMTPTransport(configuration: smtp, connections: 1), ledger: InMemoryMailLedger())
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "alice@example.net"))) }
        #expect(error?.errorClass == "SMTPStartTLSUnavailable")
        #expect(error?.isPermanent == true)
        #expect(try sink.messages().isEmpty)
    }
}

@Suite struct OutboxTests {
    @Test func writesEmlFilesAndARetryOverwritesItsOwn() async throws {
        let folder = try temporaryFolder("outbox")
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = try configuration(outbox: folder)
        let handler = EmailSendHandler(configuration: config, transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        let result = try await handler.perform(job(welcome(to: "alice@example.net", key: "w1")))
        #expect(result["transport"]?.stringValue == "outbox")
        // A different ledger (another process) retrying the same key rewrites the same file.
        let again = EmailSendHandler(configuration: config, transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        _ = try await again.perform(job(welcome(to: "alice@example.net", key: "w1")))
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(files == ["conveyor.w1@mail.example.com.eml"])
        let raw = Array(try Data(contentsOf: folder.appendingPathComponent(files[0])))
        let parsed = try parseWithPython(raw)
        #expect(parsed["headers"]?["X-Conveyor-Envelope-To"]?.stringValue == "alice@example.net")
        #expect(parsed["parts"]?.arrayValue?.count == 2)
    }
}

@Suite struct ExampleJobTests {
    @Test func exampleEnvelopeRunsWithTheDefaultTemplates() async throws {
        let bytes = Array(try Data(contentsOf: repositoryRoot.appendingPathComponent("Jobs/examples/email.send.json")))
        let envelope = try #require(try JSONValue(parsing: bytes).objectValue)
        #expect(envelope["class"]?.stringValue == "email.send")
        let arguments = try #require(envelope["args"]?[0]?.objectValue)
        let folder = try temporaryFolder("example")
        defer { try? FileManager.default.removeItem(at: folder) }
        let handler = EmailSendHandler(configuration: try configuration(outbox: folder), transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        let result = try await handler.perform(job(arguments, jid: envelope["jid"]?.stringValue ?? "x"))
        let path = try #require(result["reply"]?.stringValue)
        let parsed = try parseWithPython(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        #expect(parsed["headers"]?["Subject"]?.stringValue == "Reset your Acme password")
        #expect(parsed["to_names"]?[0]?.stringValue == "Alice Martin")
        #expect(parsed["parts"]?[0]?["text"]?.stringValue?.contains("within 30 minutes") == true)
    }
}

@Suite struct ConfigurationTests {
    @Test func smtpURLCredentialsAndDefaults() throws {
        let c = try MailConfiguration(environment: ["SMTP_URL": "smtps://user%40x:p%3Ass@mail.example.com:465", "SMTP_RATE_LIMIT": "5"])
        #expect(c.smtp?.url == "smtps://mail.example.com:465")
        #expect(c.smtp?.username == "user@x")
        #expect(c.smtp?.password == "p:ss")
        #expect(c.rateLimit == 5)
        #expect(c.from.address == "no-reply@conveyor.localhost")
        let env = try MailConfiguration(environment: ["SMTP_URL": "smtp://u:p@h.example:587", "SMTP_USERNAME": "other", "SMTP_PASSWORD": "secret"])
        #expect(env.smtp?.username == "other")
        #expect(env.smtp?.password == "secret")
        #expect(env.smtp?.startTLS == .required)
        #expect(try MailConfiguration(environment: [:]).smtp == nil)
        #expect(throws: JobFailure.self) { try MailConfiguration(environment: ["SMTP_URL": "http://x.example"]) }
        #expect(throws: JobFailure.self) { try MailConfiguration(environment: ["SMTP_URL": "smtp://x.example", "SMTP_STARTTLS": "maybe"]) }
        #expect(throws: JobFailure.self) { try MailConfiguration(environment: ["CONVEYOR_MAIL_FROM": "Evil\r\nBcc: x@y.example <a@b.example>"]) }
    }

    @Test func registersEmailSendOnTheMailQueue() throws {
        var registry = JobRegistry()
        try MailJobs.register(into: &registry, environment: ["CONVEYOR_MAIL_OUTBOX": "/tmp/x"])
        let jobClass = try #require(registry["email.send"])
        #expect(jobClass.queue == "mail")
        #expect(jobClass.concurrency == 4)
        #expect(jobClass.handler is EmailSendHandler)
        var smtp = JobRegistry()
        try MailJobs.register(into: &smtp, environment: ["SMTP_URL": "smtp://mail.example.com:587", "SMTP_RATE_LIMIT": "10",
                                                          "REDIS_URL": "redis://127.0.0.1:1/0", "CONVEYOR_MAIL_CONCURRENCY": "2"])
        let handler = try #require(smtp["email.send"]?.handler as? EmailSendHandler)
        #expect(handler.transport is SMTPTransport)
        #expect(handler.rateLimiter?.perSecond == 10)
        #expect(handler.domainRateLimiter == nil)
        var perDomain = JobRegistry()
        try MailJobs.register(into: &perDomain, environment: ["SMTP_URL": "smtp://mail.example.com:587", "SMTP_RATE_LIMIT_PER_DOMAIN": "3",
                                                               "REDIS_URL": "redis://127.0.0.1:1/0"])
        #expect((perDomain["email.send"]?.handler as? EmailSendHandler)?.domainRateLimiter?.perSecond == 3)
        for bad in ["-1", "inf", "1e308", "9223372036854775807", "100001", "0.5"] {
            var refused = JobRegistry()
            #expect(throws: (any Error).self, "SMTP_RATE_LIMIT_PER_DOMAIN=\(bad)") {
                try MailJobs.register(into: &refused, environment: ["SMTP_RATE_LIMIT_PER_DOMAIN": bad, "REDIS_URL": "redis://127.0.0.1:1/0"])
            }
        }
        var noRedis = JobRegistry()
        #expect(throws: (any Error).self) { try MailJobs.register(into: &noRedis, environment: ["SMTP_RATE_LIMIT_PER_DOMAIN": "3"]) }
        #expect(handler.ledger is InMemoryMailLedger)
        #expect(smtp["email.send"]?.concurrency == 2)
        var other = JobRegistry()
        #expect(throws: (any Error).self) { try MailJobs.register(into: &other, environment: ["SMTP_RATE_LIMIT": "3"]) }
    }
}

/// A ledger whose database is down.
struct UnreachableLedger: MailLedger {
    struct Down: Error {}
    func claim(key: String, messageID: String, jid: String, recipient: String, lease: Duration) async throws -> MailLedgerDecision { throw Down() }
    func markSent(key: String, jid: String, reply: String) async throws { throw Down() }
    func release(key: String, jid: String, reason: String) async throws { throw Down() }
}

@Suite struct LedgerFailureTests {
    @Test func noSendWithoutALedgerClaim() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink, ledger: UnreachableLedger())
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "alice@example.net"))) }
        #expect(error?.errorClass == "MailLedgerUnavailable")
        #expect(error?.isPermanent == false)
        #expect(sink.connections() == 0)
    }

    @Test func errorsNameTheJob() async throws {
        let handler = EmailSendHandler(configuration: try configuration(outbox: URL(fileURLWithPath: "/nonexistent")),
                                       transport: OutboxTransport(folder: URL(fileURLWithPath: "/nonexistent")), ledger: InMemoryMailLedger())
        let error = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(to: "bad address@example.net"), jid: "jid-77")) }
        #expect(error?.message.hasPrefix("email.send jid=jid-77: ") == true)
        #expect(error?.errorClass == "InvalidAddress")
    }
}
