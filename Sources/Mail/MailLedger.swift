public import ConveyorCore
public import Foundation

/// What the ledger says about a key before a send.
public enum MailLedgerDecision: Sendable, Equatable {
    /// Nothing accepted yet under this key: this attempt now holds it and must call `sent` or `release`.
    case send
    /// The server already accepted this mail; do not send again.
    case alreadySent(messageID: String, reply: String, sentAt: Date)
    /// Another attempt holds the key right now (a duplicate job running in parallel); retry later.
    case inFlight(heldBy: String)
}

/// Remembers which idempotency keys a server has accepted, so a retried `email.send` does not send twice.
///
/// A key is claimed before the send (`claim`), marked `sent` after the server's 250 to the final `.`, and
/// released when the send surely failed. A claim older than `lease` is treated as abandoned (its worker died,
/// or the connection dropped after the final `.`) and may be taken over: delivery is at-least-once.
public protocol MailLedger: Sendable {
    func claim(key: String, messageID: String, jid: String, recipient: String, lease: Duration) async throws -> MailLedgerDecision
    func markSent(key: String, jid: String, reply: String) async throws
    /// Gives the key up after a send that did not happen (4xx, 5xx, connection refused), recording why.
    func release(key: String, jid: String, reason: String) async throws
}

/// A ledger in this process's memory: for tests and for `make run` without `DATABASE_URL`. It forgets
/// everything on restart, is not shared between worker processes, and keeps at most about 100,000 keys.
public final class InMemoryMailLedger: MailLedger, @unchecked Sendable {
    struct Entry {
        var status: String
        var jid: String
        var messageID: String
        var reply: String
        var claimedAt: ContinuousClock.Instant
        var sentAt: Date?
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    /// Keys remembered before the oldest finished ones are forgotten.
    static let capacity = 100_000

    public init() {}

    /// Forgets the older half of the finished keys (caller holds the lock).
    private func prune() {
        let finished = entries.filter { $0.value.status != "sending" }.sorted { $0.value.claimedAt < $1.value.claimedAt }
        for (key, _) in finished.prefix(max(1, finished.count / 2)) { entries[key] = nil }
    }

    public func claim(key: String, messageID: String, jid: String, recipient: String, lease: Duration) async throws -> MailLedgerDecision {
        lock.withLock {
            if let entry = entries[key] {
                if entry.status == "sent" { return .alreadySent(messageID: entry.messageID, reply: entry.reply, sentAt: entry.sentAt ?? Date()) }
                if entry.status == "sending" && entry.jid != jid && ContinuousClock.now - entry.claimedAt < lease { return .inFlight(heldBy: entry.jid) }
            }
            if entries.count >= InMemoryMailLedger.capacity { prune() }
            entries[key] = Entry(status: "sending", jid: jid, messageID: messageID, reply: "", claimedAt: .now)
            return .send
        }
    }

    public func markSent(key: String, jid: String, reply: String) async throws {
        lock.withLock {
            entries[key]?.status = "sent"
            entries[key]?.reply = reply
            entries[key]?.sentAt = Date()
        }
    }

    public func release(key: String, jid: String, reason: String) async throws {
        lock.withLock {
            if entries[key]?.status == "sending" && entries[key]?.jid == jid { entries[key]?.status = "failed" }
        }
    }
}
