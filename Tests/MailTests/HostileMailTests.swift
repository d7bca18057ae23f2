import ConveyorCore
import Foundation
@testable import Mail
import Testing

/// What a hostile producer can put into `email.send`: links with scripting schemes, encoded-word display names,
/// address literals, extreme numbers. Each goes through the handler to a real SMTP server (the sink), which must
/// receive nothing when the job is refused.
@Suite struct HostileMailTests {
    func welcome(loginURL: String, name: String = "Zoë", to: String = "alice@example.net") -> JSONObject {
        JSONObject([("template", "welcome"), ("to", .string(to)), ("locale", "en"),
                    ("data", ["name": .string(name), "product": "Acme", "login_url": .string(loginURL)])])
    }

    @Test(arguments: [
        "javascript:alert(document.cookie)", "JaVaScRiPt:alert(1)", "  javascript:alert(1)", "java\tscript:alert(1)",
        "java\nscript:alert(1)", "\u{1}javascript:alert(1)", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://example.com/x", "jar:https://x.example/a!/b",
    ])
    func linksWithOtherSchemesAreRefusedNamingTheArgument(url: String) async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(loginURL: url))) }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true, "\(url.debugDescription): \(String(describing: failure))")
        #expect(failure?.message.contains("data.login_url") == true, "\(failure?.message ?? "")")
        #expect(try sink.messages().isEmpty)
    }

    @Test(arguments: ["https://acme.example/login", "http://acme.example/login", "HTTPS://ACME.EXAMPLE/", "mailto:help@acme.example",
                      "/login?next=/home", "#top", "https://acme.example/?u=javascript:alert(1)"])
    func httpMailtoAndRelativeLinksAreSent(url: String) async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let result = try await handler.perform(job(welcome(loginURL: url)))
        #expect(result["status"]?.stringValue == "sent")
        #expect(try sink.messages().count == 1)
    }

    @Test func aTemplatesOwnScriptLinkIsRefusedNamingTheTemplate() throws {
        let folder = try temporaryFolder("links")
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("promo")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "Hello".write(to: dir.appendingPathComponent("en.subject.mustache"), atomically: true, encoding: .utf8)
        try "Hello {{name}}".write(to: dir.appendingPathComponent("en.text.mustache"), atomically: true, encoding: .utf8)
        try "<p><a title=x href = 'jav&#x61;script&colon;go()'>Go</a> <img src=\"data:image/png;base64,AA\"></p>"
            .write(to: dir.appendingPathComponent("en.html.mustache"), atomically: true, encoding: .utf8)
        var config = try configuration()
        config.templates = folder
        let handler = EmailSendHandler(configuration: config, transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        let failure = #expect(throws: JobFailure.self) {
            try handler.prepare(job(JSONObject([("template", "promo"), ("to", "alice@example.net"), ("data", ["name": "A"])])))
        }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.message.contains("template promo") == true && failure?.message.contains("javascript:") == true)
    }

    @Test func attributeScanner() {
        let attributes = MailLinks.attributes("<a class=\"x\" HREF='one' data-x=2><img src=two alt=\"a > b\"><!-- <a href=no> --><br/>")
        #expect(attributes.map(\.0) == ["class", "href", "data-x", "src", "alt"])
        #expect(attributes.map(\.1) == ["x", "one", "2", "two", "a > b"])
        #expect(MailLinks.scheme(of: "\u{0} J\tAVA\nSCRIPT:x") == "javascript")
        #expect(MailLinks.scheme(of: "/a:b") == nil && MailLinks.scheme(of: "a b:c") == nil)
        #expect(MailLinks.decodeEntities("&#106&#x61;v&amp;&colon;&Tab;&bogus;") == "jav&:\t&bogus;")
    }

    /// `=?utf-8?q?…?=` in a name or subject must reach the recipient as written, not decoded as an encoded-word.
    @Test(arguments: ["=?utf-8?q?PayPal_Security?=", "=?UTF-8?B?U2VjdXJpdHkgVGVhbQ==?=", "Bob =?iso-8859-1?q?=E9?= Smith"])
    func encodedWordShapedNamesShowAsWritten(name: String) async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        var arguments = welcome(loginURL: "https://acme.example/login", name: name)
        arguments["to_name"] = .string(name)
        _ = try await handler.perform(job(arguments))
        let messages = try sink.messages()
        #expect(messages.count == 1)
        let parsed = try parseWithPython(messages[0].raw)
        #expect(parsed["to_names"]?[0]?.stringValue == name)
        // The welcome subject carries the name too ("Welcome to Acme, <name>!").
        #expect(parsed["headers"]?["Subject"]?.stringValue == "Welcome to Acme, \(name)!")
        #expect(parsed["defects"]?.arrayValue?.isEmpty == true)
    }

    @Test(arguments: ["user@[127.0.0.1]", "user@[IPv6:::1]", "user@[10.0.0.1", "user@10.0.0.1]", "root@[169.254.169.254]"])
    func addressLiteralsAreRefusedBeforeAnyTraffic(to: String) async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(welcome(loginURL: "https://a.example", to: to))) }
        #expect(failure?.errorClass == "InvalidAddress" && failure?.isPermanent == true)
        #expect(try sink.messages().isEmpty)
    }

    @Test func aHugeDisplayNameIsRefused() async throws {
        let sink = try SMTPSink()
        defer { sink.stop() }
        let handler = try smtpHandler(sink)
        var arguments = welcome(loginURL: "https://a.example")
        arguments["to_name"] = .string(String(repeating: "n", count: 257))
        let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(arguments)) }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.message.contains("to_name") == true)
        arguments["to_name"] = .string(String(repeating: "é", count: 256))
        #expect(try await handler.perform(job(arguments))["status"]?.stringValue == "sent")
        #expect(try sink.messages().count == 1)
    }

    /// A template's `variables` file: a job without one of them fails before anything is sent (a password reset
    /// without its link is refused, not mailed).
    @Test func aMissingTemplateVariableFailsBeforeAnythingIsSent() async throws {
        let folder = try temporaryFolder("variables")
        defer { try? FileManager.default.removeItem(at: folder) }
        let handler = EmailSendHandler(configuration: try configuration(outbox: folder), transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        for data: JSONValue in [.object(JSONObject()), ["name": "A", "product": "Acme", "reset_url": "", "expires_minutes": 30],
                                ["name": "A", "product": "Acme", "reset_url": .null, "expires_minutes": 30]] {
            var arguments = JSONObject([("template", "password_reset"), ("to", "alice@example.net"), ("data", data)])
            if data.objectValue?.isEmpty == true { arguments["data"] = nil }
            let failure = await #expect(throws: JobFailure.self) { try await handler.perform(job(arguments)) }
            #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true)
            #expect(failure?.message.contains("data.reset_url") == true, "\(String(describing: failure))")
        }
        let written = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".eml") }
        #expect(written.isEmpty, "nothing was sent: \(written)")
    }

    /// `email.send` has no numeric argument of its own; numbers anywhere (data, or where a string belongs) must give
    /// a clean permanent error or a sent message, never a trap.
    @Test func extremeNumbersInEveryArgument() async throws {
        let folder = try temporaryFolder("numbers")
        defer { try? FileManager.default.removeItem(at: folder) }
        let handler = EmailSendHandler(configuration: try configuration(outbox: folder), transport: OutboxTransport(folder: folder), ledger: InMemoryMailLedger())
        let extremes: [JSONValue] = [.number("1e308"), .number("-1e308"), .number("1e400"), .number("9223372036854775807"),
                                     .number("-9223372036854775808"), .number("-1"), .number("0")]
        let schema = try JSONValue(parsing: Array(try Data(contentsOf: repositoryRoot.appendingPathComponent("Jobs/email.send.schema.json"))))
        let fields = try #require(schema["properties"]?.objectValue).keys
        #expect(fields.count == 6)
        for field in fields {
            for value in extremes {
                var arguments = JSONObject([("template", "password_reset"), ("to", "alice@example.net"),
                                            ("data", ["name": "A", "product": "Acme", "reset_url": "https://a.example/r", "expires_minutes": value])])
                arguments[field] = value
                do {
                    let result = try await handler.perform(job(arguments))
                    #expect(field == "data" || result["status"]?.stringValue == "sent")
                } catch let failure as JobFailure {
                    #expect(failure.isPermanent && failure.message.contains(field), "\(field)=\(value): \(failure)")
                }
            }
        }
        // A number in data renders as written.
        let sent = try await handler.perform(job(JSONObject([("template", "password_reset"), ("to", "alice@example.net"),
            ("data", ["name": "A", "product": "Acme", "reset_url": "https://a.example/r", "expires_minutes": .number("1e400")])])))
        let eml = try String(contentsOfFile: try #require(sent["reply"]?.stringValue), encoding: .utf8)
        #expect(eml.contains("1e400"))
    }
}

@Suite struct MailSettingsTests {
    @Test(arguments: ["SMTP_CONNECT_TIMEOUT", "SMTP_TIMEOUT", "SMTP_RATE_LIMIT", "CONVEYOR_MAIL_CONCURRENCY"])
    func everySettingIsInRangeOrANamedError(name: String) {
        for value in ["inf", "-inf", "nan", "1e300", "1e400", "-1", "9223372036854775807", "-9223372036854775808", "0x10", "1.5", "abc"] {
            do {
                _ = try MailConfiguration(environment: ["SMTP_URL": "smtp://mail.example.com:587", name: value])
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.errorClass == "MailConfiguration" && error.message.hasPrefix("\(name)="), "\(name)=\(value): \(error)")
            }
        }
    }
}
