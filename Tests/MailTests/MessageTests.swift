import ConveyorCore
import Foundation
@testable import Mail
import Testing

@Suite struct MessageTests {
    func message(subject: String = "Hello", text: String = "Hi there\n", html: String = "<p>Hi there</p>\n",
                 toName: String? = "Alice", unsubscribe: String? = nil) throws -> MailMessage {
        MailMessage(
            from: try MailAddress("no-reply@example.com", displayName: "Example"),
            to: try MailAddress("alice@example.net", displayName: toName),
            subject: subject, text: text, html: html,
            messageID: MailMessage.messageID(forKey: "welcome-u123", domain: "mail.example.com"),
            date: Date(timeIntervalSince1970: 1_751_367_157), unsubscribeURL: unsubscribe)
    }

    @Test func multipartAlternativeTextBeforeHTML() throws {
        let bytes = try message().rendered()
        let parsed = try parseWithPython(bytes)
        #expect(parsed["content_type"]?.stringValue == "multipart/alternative")
        #expect(parsed["defects"]?.arrayValue?.isEmpty == true)
        #expect(parsed["bare_lf"]?.boolValue == false)
        let parts = parsed["parts"]?.arrayValue ?? []
        #expect(parts.count == 2)
        #expect(parts.first?["content_type"]?.stringValue == "text/plain")
        #expect(parts.last?["content_type"]?.stringValue == "text/html")
        #expect(parts.first?["text"]?.stringValue == "Hi there\r\n" || parts.first?["text"]?.stringValue == "Hi there\n")
        #expect(parts.last?["charset"]?.stringValue == "utf-8")
        #expect(parsed["headers"]?["Date"]?.stringValue == "Tue, 01 Jul 2025 10:52:37 +0000")
        #expect(parsed["headers"]?["Message-ID"]?.stringValue == "<conveyor.welcome-u123@mail.example.com>")
        #expect(parsed["headers"]?["MIME-Version"]?.stringValue == "1.0")
        #expect(parsed["to_addresses"]?[0]?.stringValue == "alice@example.net")
        #expect(parsed["from_names"]?[0]?.stringValue == "Example")
        #expect(parsed["headers"]?["List-Unsubscribe"] == nil)
    }

    @Test func nonASCIISubjectAndNameAreEncodedWords() throws {
        let subject = "Bienvenue à bord, Zoë 👋 — votre compte est prêt et nous sommes ravis de vous compter parmi nous"
        let bytes = try message(subject: subject, toName: "Zoë Dupré-Élan").rendered()
        let raw = String(decoding: bytes, as: UTF8.self)
        let head = raw.components(separatedBy: "\r\n\r\n")[0]
        #expect(head.utf8.allSatisfy { $0 < 0x80 }, "headers must be 7-bit")
        #expect(head.contains("=?UTF-8?B?"))
        for line in head.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 78, "header line too long: \(line)") }
        // Encoded words are at most 75 characters.
        for word in head.split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\n" }) where word.hasPrefix("=?") {
            #expect(word.count <= 75)
        }
        let parsed = try parseWithPython(bytes)
        #expect(parsed["headers"]?["Subject"]?.stringValue == subject)
        #expect(parsed["to_names"]?[0]?.stringValue == "Zoë Dupré-Élan")
        #expect(parsed["defects"]?.arrayValue?.isEmpty == true)
    }

    @Test func longASCIISubjectIsFolded() throws {
        let subject = Array(repeating: "word", count: 40).joined(separator: " ")
        let bytes = try message(subject: subject).rendered()
        let raw = String(decoding: bytes, as: UTF8.self)
        #expect(raw.contains("\r\n word"))
        let parsed = try parseWithPython(bytes)
        #expect(parsed["headers"]?["Subject"]?.stringValue == subject)
        #expect((parsed["max_line"]?.intValue ?? 999) <= 78)
    }

    @Test func oversizedWordInSubjectIsRefused() throws {
        let error = #expect(throws: JobFailure.self) { try message(subject: String(repeating: "x", count: 1200)).rendered() }
        #expect(error?.errorClass == "HeaderTooLong")
        let spaced = "a" + String(repeating: " ", count: 100) + "b"
        let parsed = try parseWithPython(try message(subject: spaced).rendered())
        #expect(parsed["headers"]?["Subject"]?.stringValue == spaced)
    }

    @Test func displayNameWithSpecialsIsQuoted() throws {
        let bytes = try message(toName: "Doe, \"Johnny\" <admin@evil.example>").rendered()
        let parsed = try parseWithPython(bytes)
        #expect(parsed["to_addresses"]?.arrayValue?.count == 1)
        #expect(parsed["to_addresses"]?[0]?.stringValue == "alice@example.net")
        #expect(parsed["to_names"]?[0]?.stringValue == "Doe, \"Johnny\" <admin@evil.example>")
    }

    @Test func quotedPrintableBodyKeepsLinesShortAndRoundTrips() throws {
        let text = String(repeating: "Lorem ipsum dolor sit amet = consectetur; ", count: 12) + "\n.leading dot\nFrom here\ntrailing space \nfin"
        let bytes = try message(text: text).rendered()
        let raw = String(decoding: bytes, as: UTF8.self)
        #expect(raw.contains("Content-Transfer-Encoding: quoted-printable"))
        let parsed = try parseWithPython(bytes)
        #expect((parsed["max_line"]?.intValue ?? 999) <= 76)
        let decoded = parsed["parts"]?[0]?["text"]?.stringValue?.replacingOccurrences(of: "\r\n", with: "\n")
        #expect(decoded == text + "\n")
        #expect(!raw.contains("\r\n.leading"))
    }

    @Test func mostlyNonASCIIBodyUsesBase64() throws {
        let text = String(repeating: "Добро пожаловать! こんにちは。", count: 20)
        let bytes = try message(text: text).rendered()
        let raw = String(decoding: bytes, as: UTF8.self)
        #expect(raw.contains("Content-Transfer-Encoding: base64"))
        let parsed = try parseWithPython(bytes)
        #expect((parsed["max_line"]?.intValue ?? 999) <= 76)
        #expect(parsed["parts"]?[0]?["text"]?.stringValue?.trimmingCharacters(in: .newlines) == text)
    }

    @Test func listUnsubscribeHeaders() throws {
        let bytes = try message(unsubscribe: "https://example.com/u/abc?x=1").rendered()
        let parsed = try parseWithPython(bytes)
        #expect(parsed["headers"]?["List-Unsubscribe"]?.stringValue == "<https://example.com/u/abc?x=1>")
        #expect(parsed["headers"]?["List-Unsubscribe-Post"]?.stringValue == "List-Unsubscribe=One-Click")
        #expect(throws: JobFailure.self) { try message(unsubscribe: "javascript:alert(1)").rendered() }
    }

    @Test(arguments: ["Hi\r\nBcc: victim@example.org", "Hi\nBcc: victim@example.org", "Hi\rthere", "nul\u{0}byte"])
    func headerInjectionInSubjectIsPermanent(subject: String) throws {
        let error = #expect(throws: JobFailure.self) { try message(subject: subject).rendered() }
        #expect(error?.errorClass == "HeaderInjection")
        #expect(error?.isPermanent == true)
    }

    @Test func headerInjectionInAddressesAndNames() {
        for (address, name) in [("alice@example.net\r\nBcc: x@example.org", nil), ("alice@example.net", "Alice\r\nBcc: x@example.org"),
                                ("alice@example.net\n", nil), ("alice@example.net", "A\nB")] as [(String, String?)] {
            let error = #expect(throws: JobFailure.self) { try MailAddress(address, displayName: name) }
            #expect(error?.errorClass == "HeaderInjection")
            #expect(error?.isPermanent == true)
        }
    }

    @Test(arguments: ["", "alice", "alice@", "@example.com", "a@b@example.com", "alice@localhost", "al ice@example.com",
                      "<alice@example.com>", "alice@example.com,bob@example.com", "alice@exa_mple.com", "alice..x@example.com",
                      ".alice@example.com", "alice@-example.com", "zoë@example.com", "alice@example.com;bob@x.org",
                      String(repeating: "a", count: 65) + "@example.com", "x@[192.0.2.1]"])
    func invalidAddressesAreRefused(address: String) {
        let error = #expect(throws: JobFailure.self) { try MailAddress(address) }
        #expect(error?.errorClass == "InvalidAddress")
        #expect(error?.isPermanent == true)
    }

    @Test(arguments: ["alice@example.com", "a.b+tag@sub.example.co.uk", "o'brien@example.ie", "UPPER@Example.COM"])
    func validAddressesAreAccepted(address: String) throws {
        #expect(try MailAddress(address).address == address)
    }

    @Test func parsingConfiguredSender() throws {
        let a = try MailAddress(parsing: "Conveyor <no-reply@example.com>", field: "CONVEYOR_MAIL_FROM")
        #expect(a.address == "no-reply@example.com")
        #expect(a.displayName == "Conveyor")
        let b = try MailAddress(parsing: "\"Example, Inc.\" <x@example.com>", field: "CONVEYOR_MAIL_FROM")
        #expect(b.displayName == "Example, Inc.")
        #expect(try MailAddress(parsing: "x@example.com", field: "f").displayName == nil)
    }

    @Test func messageIDIsStableAndSafe() {
        #expect(MailMessage.messageID(forKey: "abc_1-2", domain: "d.example") == "conveyor.abc_1-2@d.example")
        let odd = MailMessage.messageID(forKey: "reset:42 <x>", domain: "d.example")
        #expect(odd == MailMessage.messageID(forKey: "reset:42 <x>", domain: "d.example"))
        #expect(!odd.contains("<") && !odd.contains(" ") && !odd.contains(":"))
        #expect(odd != MailMessage.messageID(forKey: "reset:43 <x>", domain: "d.example"))
    }

    @Test func boundaryNeverInParts() throws {
        let bytes = try message(text: "--=_conveyor_ fake boundary\n").rendered()
        let parsed = try parseWithPython(bytes)
        #expect(parsed["parts"]?.arrayValue?.count == 2)
        #expect(parsed["parts"]?[0]?["text"]?.stringValue?.hasPrefix("--=_conveyor_ fake") == true)
    }
}

@Suite struct TemplateTests {
    let templates = MailTemplates(folder: defaultTemplates)

    @Test func rendersWelcomeWithHTMLEscapingOnlyInHTML() throws {
        let r = try templates.render(template: "welcome", locale: "en", data: JSONObject([("name", "Bob & <Alice>"), ("product", "Acme")]))
        #expect(r.subject == "Welcome to Acme, Bob & <Alice>!")
        #expect(r.text.contains("Hi Bob & <Alice>,"))
        #expect(r.html.contains("Hi Bob &amp; &lt;Alice&gt;,"))
        #expect(!r.html.contains("<Alice>"))
        #expect(r.locale == "en")
    }

    @Test func localeFallsBackToLanguageThenDefault() throws {
        let data = JSONObject([("name", "Zoë"), ("product", "Acme")])
        #expect(try templates.render(template: "welcome", locale: "fr-CA", data: data).locale == "fr")
        #expect(try templates.render(template: "welcome", locale: "de", data: data).locale == "en")
        #expect(try templates.render(template: "welcome", locale: "fr", data: data).subject == "Bienvenue sur Acme, Zoë !")
    }

    @Test func unknownTemplateAndUnsafeNamesArePermanent() {
        let missing = #expect(throws: JobFailure.self) { try templates.render(template: "nope", locale: "en", data: JSONObject()) }
        #expect(missing?.errorClass == "TemplateMissing")
        #expect(missing?.isPermanent == true)
        let traversal = #expect(throws: JobFailure.self) { try templates.render(template: "../welcome", locale: "en", data: JSONObject()) }
        #expect(traversal?.errorClass == "InvalidArguments")
        let badLocale = #expect(throws: JobFailure.self) { try templates.render(template: "welcome", locale: "en/../x", data: JSONObject()) }
        #expect(badLocale?.errorClass == "InvalidArguments")
    }

    @Test func operatorFolderOverrides() throws {
        let folder = try temporaryFolder("templates")
        defer { try? FileManager.default.removeItem(at: folder) }
        let dir = folder.appendingPathComponent("welcome")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "Custom {{name}}\n".write(to: dir.appendingPathComponent("en.subject.mustache"), atomically: true, encoding: .utf8)
        try "T {{name}}\n".write(to: dir.appendingPathComponent("en.text.mustache"), atomically: true, encoding: .utf8)
        try "<b>{{name}}</b>\n".write(to: dir.appendingPathComponent("en.html.mustache"), atomically: true, encoding: .utf8)
        let r = try MailTemplates(folder: folder).render(template: "welcome", locale: "en", data: JSONObject([("name", "<x>")]))
        #expect(r.subject == "Custom <x>")
        #expect(r.html == "<b>&lt;x&gt;</b>\n")
    }
}
