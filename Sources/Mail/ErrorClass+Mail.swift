public import ConveyorCore

/// The mail jobs' error classes.
extension ErrorClass {
    /// SMTP or mail settings are wrong (URL, STARTTLS mode, certificate, a rate limit without Redis).
    public static let mailConfiguration: ErrorClass = "MailConfiguration"
    /// The shared rate limit left no slot before the job's deadline.
    public static let mailRateLimited: ErrorClass = "MailRateLimited"
    /// The outbox folder cannot be written.
    public static let mailOutboxWrite: ErrorClass = "MailOutboxWrite"
    /// The idempotency ledger cannot be reached; nothing is sent.
    public static let mailLedgerUnavailable: ErrorClass = "MailLedgerUnavailable"
    /// Another job is sending the message with the same idempotency key right now.
    public static let mailInFlight: ErrorClass = "MailInFlight"
    /// The server refused authentication.
    public static let smtpAuthFailed: ErrorClass = "SMTPAuthFailed"
    /// The server rejected the message (5xx).
    public static let smtpRejected: ErrorClass = "SMTPRejected"
    /// The server deferred the message (4xx).
    public static let smtpTemporaryFailure: ErrorClass = "SMTPTemporaryFailure"
    /// The server offers no STARTTLS, which `SMTP_STARTTLS=required` demands.
    public static let smtpStartTLSUnavailable: ErrorClass = "SMTPStartTLSUnavailable"
    /// The connection was lost after the message was sent, before the reply: it may have been delivered.
    public static let smtpAmbiguous: ErrorClass = "SMTPAmbiguous"
    /// The connection to the server failed.
    public static let smtpTransport: ErrorClass = "SMTPTransport"
    /// A header field would carry a line break or other injected header.
    public static let headerInjection: ErrorClass = "HeaderInjection"
    /// A header line exceeds 998 octets.
    public static let headerTooLong: ErrorClass = "HeaderTooLong"
    /// An address is not a mailbox Conveyor sends to.
    public static let invalidAddress: ErrorClass = "InvalidAddress"
    /// The named template does not exist.
    public static let templateMissing: ErrorClass = "TemplateMissing"
    /// The template does not parse.
    public static let templateInvalid: ErrorClass = "TemplateInvalid"
}
