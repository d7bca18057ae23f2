import ConveyorCore
import Foundation
@testable import Mail
import Testing

/// A self-signed certificate for 127.0.0.1, made with the openssl command line.
func selfSignedCertificate(in folder: URL) throws -> (cert: String, key: String) {
    let cert = folder.appendingPathComponent("cert.pem").path, key = folder.appendingPathComponent("key.pem").path
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    process.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    process.standardError = FileHandle.nullDevice
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0)
    return (cert, key)
}

@Suite struct TLSAndAuthTests {
    func handler(_ sink: SMTPSink, caFile: String?, username: String?, password: String?, startTLS: MailConfiguration.StartTLS = .required) throws -> EmailSendHandler {
        var config = try configuration(smtp: sink.url)
        config.smtp = MailConfiguration.SMTP(url: sink.url, username: username, password: password, startTLS: startTLS,
                                             connectTimeout: .seconds(5), timeout: .seconds(20), caFile: caFile)
        return EmailSendHandler(configuration: config, transport: SMTPTransport(configuration: config.smtp!, connections: 1), ledger: InMemoryMailLedger())
    }

    @Test func startTLSAndAuthThenSend() async throws {
        let certs = try temporaryFolder("tls")
        defer { try? FileManager.default.removeItem(at: certs) }
        let (cert, key) = try selfSignedCertificate(in: certs)
        let sink = try SMTPSink(["--tls", cert, key, "--auth", "mailer:s3cret"])
        defer { sink.stop() }

        let ok = try handler(sink, caFile: cert, username: "mailer", password: "s3cret")
        #expect(try await ok.perform(job(welcome(to: "alice@example.net")))["status"]?.stringValue == "sent")
        let envelope = try sink.messages()[0].envelope
        #expect(envelope["tls"]?.boolValue == true)
        #expect(envelope["login"]?.stringValue == "mailer")

        let wrongPassword = try handler(sink, caFile: cert, username: "mailer", password: "nope")
        let denied = await #expect(throws: JobFailure.self) { try await wrongPassword.perform(job(welcome(to: "alice@example.net"))) }
        #expect(denied?.errorClass == "SMTPAuthFailed", "\(String(describing: denied))")
        #expect(denied?.isPermanent == true)
        #expect(denied?.message.contains("nope") == false, "the password must not appear in errors")

        // The certificate is verified: without the CA file the self-signed server is refused, permanently.
        let untrusted = try handler(sink, caFile: nil, username: "mailer", password: "s3cret")
        let refused = await #expect(throws: JobFailure.self) { try await untrusted.perform(job(welcome(to: "alice@example.net"))) }
        #expect(refused?.errorClass == "MailConfiguration")
        #expect(refused?.isPermanent == true)
        #expect(try sink.messages().count == 1)
    }
}
