public import ConveyorCore

/// One worker on Sidekiq queues and BullMQ queues at once: each call goes to the backend that owns the queue (a
/// move: the queue of its receipt), under the same concurrency and class limits. Liveness, reaping and promotion are
/// the Sidekiq backend's (BullMQ's locks and stalled check run inside `BullMQBackend`).
public final class QueueRouter: QueueBackend {
    public let sidekiq: any QueueBackend
    public let bullmq: BullMQBackend
    public var identity: String { sidekiq.identity }
    public var journalName: String { sidekiq.journalName }

    public init(sidekiq: any QueueBackend, bullmq: BullMQBackend) {
        precondition(sidekiq.identity == bullmq.identity, "both backends serve one process")
        self.sidekiq = sidekiq
        self.bullmq = bullmq
    }

    private func isBull(_ queue: String) -> Bool { bullmq.queues[queue] != nil }

    public func fetch(from order: [String], count: Int) async throws -> [FetchedJob] {
        // Runs of consecutive queues of one backend, in order, until `count` jobs are taken.
        var jobs: [FetchedJob] = []
        var i = 0
        while i < order.count && jobs.count < count {
            let bull = isBull(order[i])
            var run: [String] = []
            while i < order.count && isBull(order[i]) == bull {
                run.append(order[i])
                i += 1
            }
            let backend: any QueueBackend = bull ? bullmq : sidekiq
            jobs += try await backend.fetch(from: run, count: count - jobs.count)
        }
        return jobs
    }

    public func waitForJob(on queue: String, timeout: Double) async throws -> FetchedJob? {
        try await (isBull(queue) ? bullmq as any QueueBackend : sidekiq).waitForJob(on: queue, timeout: timeout)
    }

    private func split(_ moves: [JobTransitions.Move]) -> (sidekiq: [Int], bull: [Int]) {
        var s: [Int] = []
        var b: [Int] = []
        for (i, move) in moves.enumerated() {
            if isBull(move.receipt.queue) && bullmq.holds(jid: String(decoding: move.receipt.member, as: UTF8.self)) { b.append(i) } else { s.append(i) }
        }
        return (s, b)
    }

    public func complete(_ moves: [JobTransitions.Move], batch: UInt64, resent: Bool) async throws -> Bool {
        let (s, b) = split(moves)
        var ok = true
        if !b.isEmpty { ok = try await bullmq.complete(b.map { moves[$0] }, batch: batch, resent: resent) && ok }
        if !s.isEmpty { ok = try await sidekiq.complete(s.map { moves[$0] }, batch: batch, resent: resent) && ok }
        return ok
    }

    public func apply(_ moves: [JobTransitions.Move], fromInflightOf process: String, journalField: String) async throws -> [Bool] {
        let (s, b) = split(moves)
        var flags = [Bool](repeating: false, count: moves.count)
        if !b.isEmpty {
            for (i, done) in zip(b, try await bullmq.apply(b.map { moves[$0] }, fromInflightOf: process, journalField: journalField)) { flags[i] = done }
        }
        if !s.isEmpty {
            for (i, done) in zip(s, try await sidekiq.apply(s.map { moves[$0] }, fromInflightOf: process, journalField: journalField)) { flags[i] = done }
        }
        return flags
    }

    public func journal(for receipt: DeliveryReceipt) -> String { sidekiq.journal(for: receipt) }

    /// A BullMQ job's entry goes to the batch's field plus `b`, written by `BullMQBackend` in the transaction of its
    /// scripts; the Sidekiq side writes the batch's own field in its own. Each side's entries are durable with its moves.
    public func journalField(_ batchField: String, for receipt: DeliveryReceipt) -> String {
        isBull(receipt.queue) ? bullmq.journalField(batchField, for: receipt) : sidekiq.journalField(batchField, for: receipt)
    }

    public func inflightJobs(of process: String, limit: Int?) async throws -> [FetchedJob] {
        let bull = try await bullmq.inflightJobs(of: process, limit: limit)
        if let limit, bull.count >= limit { return bull }
        return bull + (try await sidekiq.inflightJobs(of: process, limit: limit.map { $0 - bull.count }))
    }

    public func heartbeat(_ beat: ProcessBeat) async throws -> ProcessSignal? {
        _ = try await bullmq.heartbeat(beat)
        return try await sidekiq.heartbeat(beat)
    }

    public func setJobStopper(_ stop: @escaping @Sendable (_ jid: String, _ failure: JobFailure) -> Void) {
        sidekiq.setJobStopper(stop)
        bullmq.setJobStopper(stop)
    }

    public func deadProcesses() async throws -> [String] { try await sidekiq.deadProcesses() }
    public func claim(deadProcess process: String) async throws -> Bool { try await sidekiq.claim(deadProcess: process) }
    public func forget(deadProcess process: String) async throws { try await sidekiq.forget(deadProcess: process) }
    public func deregister() async throws { try await sidekiq.deregister() }
    public func promoteDueJobs() async throws { try await sidekiq.promoteDueJobs() }
    /// Progress goes to Conveyor's hash for every job (`conveyor job`, the dashboard); a BullMQ job's also to BullMQ's
    /// own `progress` (its job hash and event stream).
    public func writeProgress(jid: String, fields: [(String, String)], expireSeconds: Int) async throws {
        try await sidekiq.writeProgress(jid: jid, fields: fields, expireSeconds: expireSeconds)
        _ = try await bullmq.writeBullMQProgress(jid: jid, fields: fields)
    }

    /// A BullMQ job's log lines go to BullMQ's own job log; the Sidekiq side keeps none.
    public func appendJobLog(jid: String, line: String) async throws {
        try await bullmq.appendJobLog(jid: jid, line: line)
    }

    /// Cancel requests (`conveyor cancel`, `it-<jid>`) are for the Sidekiq side's jobs: a BullMQ job's outcome is
    /// BullMQ's completed or failed, with no cancelled state, so its flags are not read.
    public func cancellations(running: [String], knownVersion: String?) async throws -> CancelRequests {
        try await sidekiq.cancellations(running: running.filter { !bullmq.holds(jid: $0) }, knownVersion: knownVersion)
    }

    public func close() {
        bullmq.close()
        sidekiq.close()
    }
}
