public import Curl
import ConveyorCore
import Foundation
import Tracing

/// Sends through an SMTP server with libcurl: one `SMTPSession` (easy handle, kept-alive connection) per
/// sending thread, on threads of its own so a slow server never blocks Swift's cooperative pool.
///
/// Outcomes: 250 after the final `.` is success; a 4xx reply or a transport fault is transient (retried); a 5xx
/// reply is permanent (dead, with the server's text); AUTH, STARTTLS and certificate failures are permanent
/// configuration errors that an operator must fix.
public final class SMTPTransport: MailTransport, @unchecked Sendable {
    public let options: SMTPSessionOptions
    public var name: String { "smtp" }
    private let threads: BlockingPool
    private let lock = NSLock()
    private var idle: [SMTPSession] = []

    /// - Parameters:
    ///   - connections: sending threads, so at most this many open connections.
    public init(options: SMTPSessionOptions, connections: Int) {
        self.options = options
        self.threads = BlockingPool(name: "conveyor-smtp", maximumThreads: connections)
    }

    public convenience init(configuration: MailConfiguration.SMTP, connections: Int) {
        let tls: CurlUseSSL = switch configuration.startTLS {
        case .required: .all
        case .optional: .tryTLS
        case .off: configuration.url.lowercased().hasPrefix("smtps:") ? .all : .none
        }
        self.init(
            options: SMTPSessionOptions(
                url: configuration.url, username: configuration.username, password: configuration.password, useSSL: tls,
                connectTimeout: configuration.connectTimeout, timeout: configuration.timeout, caFile: configuration.caFile),
            connections: connections)
    }

    public func send(_ message: [UInt8], envelope: MailEnvelope, messageID: String, timeout: Duration) async throws -> MailDelivery {
        try await Traced.span(
            "smtp send",
            attributes: ["network.protocol.name": "smtp", "conveyor.mail.bytes": .int64(Int64(message.count))]
        ) { _ in
            try await deliver(message, envelope: envelope, timeout: timeout)
        }
    }

    private func deliver(_ message: [UInt8], envelope: MailEnvelope, timeout: Duration) async throws -> MailDelivery {
        let deadline = ContinuousClock.now + timeout
        return try await threads.run { [self] in
            let session = try checkOut()
            defer { checkIn(session) }
            do throws(SMTPSendError) {
                let reply = try session.send(message, from: envelope.from, to: envelope.to, deadline: deadline)
                return MailDelivery(transport: "smtp", detail: reply.description)
            } catch {
                throw SMTPTransport.classify(error, url: options.url)
            }
        }
    }

    /// Connections opened and messages sent by the idle sessions (for the benchmark and tests).
    public var statistics: (connections: Int, messages: Int) {
        lock.withLock { idle.reduce((0, 0)) { ($0.0 + $1.connectionsOpened, $0.1 + $1.messagesSent) } }
    }

    private func checkOut() throws -> SMTPSession {
        if let session = lock.withLock({ idle.popLast() }) { return session }
        do {
            return try SMTPSession(options)
        } catch {
            throw JobFailure.permanent(.mailConfiguration, "cannot set up SMTP for \(options.url) (\(MailSettings.smtpUrl.name)): \(error.message)")
        }
    }

    private func checkIn(_ session: SMTPSession) {
        lock.withLock { idle.append(session) }
    }

    /// Maps a failed send to a job failure (RFC 5321 §4.2.1 reply classes; libcurl's codes for the rest).
    static func classify(_ error: SMTPSendError, url: String) -> JobFailure {
        let reply = error.reply
        switch reply.code {
        case 500...599:
            if error.curl.code == 67 || reply.code == 535 || reply.code == 534 || reply.code == 530 {
                return .permanent(.smtpAuthFailed, "\(url) refused authentication: \(reply); check \(MailSettings.smtpUsername.name) / \(MailSettings.smtpPassword.name)")
            }
            return .permanent(.smtpRejected, "\(url) rejected the message: \(reply)")
        case 400...499:
            return .transient(.smtpTemporaryFailure, "\(url) deferred the message: \(reply)")
        default:
            break
        }
        switch error.curl.code {
        case 67:
            return .permanent(.smtpAuthFailed, "\(url) refused authentication (\(error.curl.message)); check \(MailSettings.smtpUsername.name) / \(MailSettings.smtpPassword.name)")
        case 64:
            return .permanent(.smtpStartTLSUnavailable, "\(url) does not offer STARTTLS, which \(MailSettings.smtpStarttls.name)=required demands (\(error.curl.message))")
        case 60, 1, 3:
            return .permanent(.mailConfiguration, "\(url): \(error.curl.message); check \(MailSettings.smtpUrl.name) and the server certificate")
        default:
            if error.dataSent {
                return .transient(.smtpAmbiguous, "\(url): connection lost after the message was sent, before the server's reply (\(error.curl.message)); it may have been delivered, sending again with the same Message-ID")
            }
            return .transient(.smtpTransport, "\(url): \(error.curl.message) (server: \(reply))")
        }
    }
}
