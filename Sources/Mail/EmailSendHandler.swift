public import ConveyorCore
import Foundation
import Logging

/// `email.send`: renders a template into an RFC 5322 message and hands it to the transport once per
/// idempotency key.
///
/// Order matters: arguments, addresses and headers are validated and the message is built before the ledger or
/// the network is touched, so a bad job dies without side effects.
public struct EmailSendHandler: JobHandler {
    public let configuration: MailConfiguration
    public let templates: MailTemplates
    public let transport: any MailTransport
    public let ledger: any MailLedger
    public let rateLimiter: MailRateLimiter?
    /// Per recipient domain (`SMTP_RATE_LIMIT_PER_DOMAIN`), across every process.
    public let domainRateLimiter: MailRateLimiter?

    public init(
        configuration: MailConfiguration, transport: any MailTransport, ledger: any MailLedger, rateLimiter: MailRateLimiter? = nil,
        domainRateLimiter: MailRateLimiter? = nil
    ) {
        self.domainRateLimiter = domainRateLimiter
        self.configuration = configuration
        self.templates = MailTemplates(folder: configuration.templates, defaultLocale: configuration.defaultLocale)
        self.transport = transport
        self.ledger = ledger
        self.rateLimiter = rateLimiter
    }

    static let argumentNames: Set<String> = ["template", "to", "to_name", "locale", "data", "idempotency_key"]

    /// A message ready to send, with what the ledger and the result need.
    struct Prepared {
        var key: String
        var messageID: String
        var to: MailAddress
        var locale: String
        var bytes: [UInt8]
    }

    public func perform(_ job: JobContext) async throws -> JSONValue {
        let prepared: Prepared
        do {
            prepared = try prepare(job)
        } catch {
            throw error.with(message: "email.send jid=\(job.jid): \(error.message)")
        }
        let (key, messageID, to) = (prepared.key, prepared.messageID, prepared.to)

        // 3. Once per key.
        let decision: MailLedgerDecision
        do {
            decision = try await ledger.claim(key: key, messageID: messageID, jid: job.jid, recipient: to.address, lease: configuration.ledgerLease)
        } catch {
            throw JobFailure.transient(.mailLedgerUnavailable, "email.send jid=\(job.jid): cannot claim the idempotency key, not sending: \(error)")
        }
        switch decision {
        case .alreadySent(let id, let reply, let sentAt):
            job.logger.info("email.send: already accepted, not sending again", metadata: ["mail.message_id": "\(id)"])
            return ["status": "already_sent", "message_id": .string(id), "reply": .string(reply), "sent_at": JSONValue(sentAt.timeIntervalSince1970)]
        case .inFlight(let other):
            throw JobFailure.transient(.mailInFlight, "email.send jid=\(job.jid): idempotency key is being sent by jid=\(other); retrying later")
        case .send:
            break
        }

        // 4. Send.
        let delivery: MailDelivery
        do {
            if let domainRateLimiter { try await domainRateLimiter.acquire(before: job.deadline, bucket: MailRateLimiter.bucket(to.address)) }
            if let rateLimiter { try await rateLimiter.acquire(before: job.deadline) }
            let timeout = min(job.remaining, configuration.smtp?.timeout ?? .seconds(60))
            delivery = try await transport.send(prepared.bytes, envelope: MailEnvelope(from: configuration.from, to: to), messageID: messageID, timeout: timeout)
        } catch {
            let failure = JobFailure(error)
            // An ambiguous failure (the connection dropped after the final ".") also releases the key: the retry
            // sends again with the same Message-ID. At-least-once, see docs/jobs.md "Email".
            try? await ledger.release(key: key, jid: job.jid, reason: failure.description)
            throw failure.with(message: "email.send jid=\(job.jid) to \(to.address): \(failure.message)")
        }
        // The server has the message: from here on the job succeeds. Failing it now (a ledger write error) would
        // make the retry send a second copy.
        var result = JSONObject([("status", "sent"), ("message_id", .string(messageID)), ("transport", .string(delivery.transport)),
                                 ("reply", .string(delivery.detail)), ("locale", .string(prepared.locale))])
        do {
            try await ledger.markSent(key: key, jid: job.jid, reply: delivery.detail)
        } catch {
            job.logger.error("email.send: accepted but the ledger could not record it; a redelivery of this job would send again",
                             metadata: ["mail.message_id": "\(messageID)", "error": "\(error)"])
            result["ledger_error"] = .string(String(describing: error))
        }
        job.logger.info("email.send: accepted", metadata: ["mail.message_id": "\(messageID)", "mail.transport": "\(delivery.transport)"])
        return .object(result)
    }

    /// Steps 1 and 2: arguments (same rules as Jobs/email.send.schema.json), then the message, fully built and
    /// checked. No I/O but reading template files.
    func prepare(_ job: JobContext) throws(JobFailure) -> Prepared {
        for key in job.arguments.keys where !EmailSendHandler.argumentNames.contains(key) {
            throw .invalidArguments("unknown argument \(key.debugDescription); allowed: \(EmailSendHandler.argumentNames.sorted().joined(separator: ", "))")
        }
        let template = try job.string("template")
        let toName = try job.optionalString("to_name")
        if let toName, toName.count > 256 { throw .invalidArguments("to_name is \(toName.count) characters long; at most 256") }
        let to = try MailAddress(try job.string("to"), displayName: toName, field: "to")
        let locale = try job.optionalString("locale") ?? configuration.defaultLocale
        var data = JSONObject()
        if let value = job.arguments["data"], !value.isNull {
            guard let object = value.objectValue else { throw .invalidArguments("data must be an object, got \(value.typeName)") }
            data = object
        }
        let key = try job.optionalString("idempotency_key") ?? job.jid
        guard !key.isEmpty, key.utf8.count <= 200 else { throw .invalidArguments("idempotency_key must be 1 to 200 octets") }
        try checkHeaderSafe(key, field: "idempotency_key")

        let rendered = try templates.render(template: template, locale: locale, data: data)
        try MailLinks.check(html: rendered.html, data: data, template: template)
        var unsubscribe: String?
        if configuration.listTemplates.contains(template) {
            guard let url = data["unsubscribe_url"]?.stringValue else {
                throw .invalidArguments("template \(template) is a notification: data.unsubscribe_url (https) is required")
            }
            unsubscribe = url
        }
        let messageID = MailMessage.messageID(forKey: key, domain: configuration.messageIDDomain)
        let message = MailMessage(
            from: configuration.from, to: to, replyTo: configuration.replyTo, subject: rendered.subject, text: rendered.text,
            html: rendered.html, messageID: messageID, unsubscribeURL: unsubscribe,
            extraHeaders: [("X-Conveyor-Template", "\(template)/\(rendered.locale)")])
        let bytes: [UInt8]
        do {
            bytes = try message.rendered()
        } catch {
            throw error.with(message: "template \(template) to \(to.address): \(error.message)")
        }
        return Prepared(key: key, messageID: messageID, to: to, locale: rendered.locale, bytes: bytes)
    }
}
