/// How a backend finds a fetched job again when its outcome is written, as Sidekiq's `UnitOfWork` does: it travels in
/// the job from the fetch to the move that takes it out of the in-flight store (`Job.receipt`, `Move.receipt`), so no
/// backend has to remember where a job came from.
public struct DeliveryReceipt: Sendable {
    /// The queue the job was taken from. For a job listed from an in-flight store that does not record it (Sidekiq's
    /// single-node layout keeps one list per process), the queue its payload names.
    public var queue: String
    /// The job as the in-flight store holds it: the payload's exact bytes in a Sidekiq list (a BullMQ backend: the
    /// job id).
    public var member: [UInt8]
    /// What else the backend needs to prove its hold on the job (a BullMQ backend: the lock token); empty for
    /// Sidekiq's lists.
    public var token: String
    /// The slot the job holds under a `limits:` entry, as the backend's fetch wrote it; empty for a job no limit
    /// holds. Every move out of the in-flight store gives it up in the same step (`replace` keeps it).
    public var lease: String

    public init(queue: String, member: [UInt8], token: String = "", lease: String = "") {
        self.queue = queue
        self.member = member
        self.token = token
        self.lease = lease
    }
}

/// A job moved into a process's in-flight store: its payload and its receipt.
public struct FetchedJob: Sendable {
    /// The payload, as `Job` parses it.
    public var raw: [UInt8]
    public var receipt: DeliveryReceipt
    /// `raw`, already parsed, when the backend built the envelope itself (BullMQ's job hash): `Job` then validates
    /// it without parsing the bytes again.
    public var envelope: JSONObject?
    /// The queue it was taken from.
    public var queue: String { receipt.queue }

    public init(raw: [UInt8], receipt: DeliveryReceipt, envelope: JSONObject? = nil) {
        self.raw = raw
        self.receipt = receipt
        self.envelope = envelope
    }

    /// A job whose in-flight member is its payload (Sidekiq's lists), holding `lease` when a limit counts it.
    public init(raw: [UInt8], queue: String, lease: String = "") {
        self.init(raw: raw, receipt: DeliveryReceipt(queue: queue, member: raw, lease: lease))
    }
}
