/// The SMTP envelope: who bounces go to and who receives, both validated.
public struct MailEnvelope: Sendable, Equatable {
    public var from: String
    public var to: String
    public init(from: MailAddress, to: MailAddress) {
        self.from = from.address
        self.to = to.address
    }
}

/// What a transport reports for an accepted message.
public struct MailDelivery: Sendable, Equatable {
    /// `smtp` or `outbox`.
    public var transport: String
    /// The server's final reply (`250 OK queued as …`) or the file written.
    public var detail: String
    public init(transport: String, detail: String) {
        self.transport = transport
        self.detail = detail
    }
}

/// Hands a built message to the outside world.
///
/// Throws `JobFailure`: permanent for a 5xx reply or a configuration error, transient for a 4xx reply or a
/// transport fault.
public protocol MailTransport: Sendable {
    /// For logs, results and the rate limiter key: `smtp` or `outbox`.
    var name: String { get }
    func send(_ message: [UInt8], envelope: MailEnvelope, messageID: String, timeout: Duration) async throws -> MailDelivery
}
