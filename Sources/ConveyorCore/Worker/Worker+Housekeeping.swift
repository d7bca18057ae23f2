import Foundation
import Logging

extension Worker {
    // MARK: Heartbeat

    /// Proves this process alive for `heartbeatTTL` seconds, with what it runs (Sidekiq's process list and Busy
    /// page read it), and acts on a signal an operator sent from there.
    func heartbeat() async throws {
        let running = runningJobs.withLock { $0 }.map { token, job in
            ProcessBeat.Running(token: token, queue: job.queue, raw: job.raw, runAt: job.runAt)
        }
        let beat = ProcessBeat(
            identity: identity, hostname: ProcessInfo.processInfo.hostName, pid: Int(getpid()), startedAt: startedAt,
            tag: configuration.tag, concurrency: configuration.concurrency, queues: configuration.queues.names,
            busy: dispatcher.running, quiet: quiet.isSet, residentKilobytes: Self.residentKilobytes(), running: running,
            lease: configuration.heartbeatTTL)
        switch try await backend.heartbeat(beat) {
        case .quiet?: quietDown()
        case .stop?: shutdown()
        case nil: break
        }
    }

    func heartbeatLoop() async {
        let outage = OutageLog("heartbeat")
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.heartbeatInterval)
            if Task.isCancelled { return }
            do {
                try await heartbeat()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
        }
    }

    private static func residentKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    // MARK: Reaping dead processes

    func reaperLoop() async {
        let outage = OutageLog("reaping dead processes")
        while !Task.isCancelled {
            do {
                try await reapDeadProcesses()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: configuration.heartbeatInterval * jitter)
        }
    }

    /// Puts the in-flight jobs of every process whose heartbeat lease expired back on their queues, counting the
    /// lost run as a failed attempt: a job that kills its worker every time ends in the dead set as `WorkerLost`.
    func reapDeadProcesses() async throws {
        for other in try await backend.deadProcesses() where other != identity {
            try await reap(other)
        }
    }

    private func reap(_ dead: String) async throws {
        guard try await backend.claim(deadProcess: dead) else { return }
        var requeued = 0
        var buried = 0
        while true {
            let items = try await backend.inflightJobs(of: dead, limit: 500)
            if items.isEmpty { break }
            let now = JobTime.now()
            var moves: [JobTransitions.Move] = []
            var outcomes: [JobOutcome?] = []
            for item in items {
                do {
                    let job = try Job(item)
                    let policy = registry[job.jobClass]?.retry ?? .default
                    let (payload, isDead) = JobTransitions.reaped(job, identity: dead, policy: policy, now: now)
                    if isDead {
                        // Whoever decides a job's end records it: the reaper journals the outcome with the move.
                        let outcome = JobOutcome(
                            jid: job.jid, jobClass: job.jobClass, queue: job.queue, status: .dead, attempts: Saturating.add(job.previousFailures, 1),
                            result: nil, failure: JobTransitions.workerLost(dead), enqueuedAt: job.enqueuedAt,
                            startedAt: now, finishedAt: now, payload: payload)
                        var move = JobTransitions.Move(
                            receipt: item.receipt, target: .dead(payload: payload.bytes), counts: .failed, journal: journalEntry(for: outcome))
                        // Its unique lock goes with it, as with any terminal outcome.
                        move.uniqueRelease = UniqueJob.release(for: job)
                        moves.append(move)
                        outcomes.append(outcome)
                    } else {
                        moves.append(.init(receipt: item.receipt, target: .queue(job.queue, payload: payload.bytes, head: true), counts: .failed))
                        outcomes.append(nil)
                    }
                } catch {
                    let payload = JobTransitions.quarantined(raw: item.raw, queue: "unknown", failure: error, now: now)
                    let outcome = JobOutcome(
                        jid: payload["jid"]?.stringValue ?? "", jobClass: "conveyor.malformed", queue: "unknown", status: .dead,
                        attempts: 1, result: nil, failure: error, enqueuedAt: nil, startedAt: now, finishedAt: now, payload: payload)
                    moves.append(.init(receipt: item.receipt, target: .dead(payload: payload.bytes), counts: .failed, journal: journalEntry(for: outcome)))
                    outcomes.append(outcome)
                }
            }
            let field = JobTransitions.reapJournalField(journalSequence.add(1, ordering: .relaxed).newValue)
            let applied = try await backend.apply(moves, fromInflightOf: dead, journalField: field)
            var entries: [String: [JobTransitions.Move.JournalEntry]] = [:]
            let journals = moves.map { backend.journal(for: $0.receipt) }
            for (i, done) in applied.enumerated() where done {
                if let outcome = outcomes[i] {
                    buried += 1
                    if var entry = moves[i].journal {
                        entry.field = backend.journalField(field, for: moves[i].receipt)
                        entries[journals[i], default: []].append(entry)
                    }
                    logger.error(
                        "job lost its worker too many times; moved to the dead set",
                        metadata: ["job.id": "\(outcome.jid)", "job.class": "\(outcome.jobClass)", "dead_process": "\(dead)"])
                    for observer in observers { observer.jobFinished(outcome) }
                } else {
                    requeued += 1
                }
            }
            for (key, batch) in entries { journal?.journaled(key: key, entries: batch) }
        }
        try await backend.forget(deadProcess: dead)
        if requeued + buried > 0 {
            logger.warning(
                "reaped the jobs of a dead worker process",
                metadata: ["dead_process": "\(dead)", "requeued": "\(requeued)", "dead": "\(buried)"])
        }
        for observer in observers { observer.jobsReaped(count: requeued + buried, requeued: requeued, dead: buried) }
    }

    // MARK: Scheduled and retried jobs

    func promoterLoop() async {
        let outage = OutageLog("moving due scheduled and retried jobs")
        while !Task.isCancelled {
            do {
                try await promoteDueJobs()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            try? await Task.sleep(for: configuration.pollInterval * Double.random(in: 0.5...1.5))
        }
    }

    /// Moves due jobs from `schedule` and `retry` onto their queues, each only once across all processes.
    func promoteDueJobs() async throws {
        try await backend.promoteDueJobs()
    }

    // MARK: Shutdown

    /// Pushes everything still in this process's in-flight list back to the head of its queue, unchanged:
    /// a job interrupted by shutdown does not spend an attempt.
    func requeueInflight() async -> Int {
        var requeued = 0
        do {
            while true {
                let items = try await backend.inflightJobs(of: identity, limit: 500)
                if items.isEmpty { break }
                requeued += try await backend.apply(items.map(Self.requeue), fromInflightOf: identity, journalField: "").filter { $0 }.count
            }
        } catch {
            // The jobs stay in the in-flight list; the reaper of a live process will return them.
            stopLeftJobs.store(true, ordering: .sequentiallyConsistent)
            logger.error("could not push unfinished jobs back; another worker's reaper will", metadata: ["error": "\(error)"])
        }
        return requeued
    }

    /// Back to the head of its queue (the one its payload names, else the one it was taken from), unchanged and
    /// uncounted.
    static func requeue(_ item: FetchedJob) -> JobTransitions.Move {
        let queue = (try? Job(raw: item.raw))?.queue ?? item.queue
        return .init(receipt: item.receipt, target: .queue(queue, payload: item.raw, head: true), counts: .none)
    }

    // MARK: Reconciling after a lost fetch reply

    /// After a fetch failed, the jobs it moved in the backend may sit in this process's in-flight list with nobody
    /// running them (the reply was lost with the connection). With fetches held, every job in the list that this
    /// process does not hold goes back to the head of its queue, unchanged: no attempt counted. Retried until the backend
    /// answers, so such a job waits at most about one heartbeat interval after it is back.
    func reconcileLoop() async {
        let outage = OutageLog("returning jobs whose fetch reply was lost")
        while !Task.isCancelled {
            // Woken by a failed fetch, or by shutdown after it cancelled this loop.
            await reconcileNeeded.wait()
            if Task.isCancelled { return }
            await ledger.close()
            reconcileNeeded.reset()
            var attempt = 0
            // Shutdown gives up: the gate opens so the fetchers can see it, and whatever is left in the list goes
            // back with the rest of the in-flight jobs (or to a live worker's reaper).
            while !Task.isCancelled && !quiet.isSet {
                do {
                    let returned = try await reconcile()
                    outage.succeeded(logger: logger)
                    if returned > 0 {
                        logger.warning("returned jobs whose fetch reply was lost to their queues", metadata: ["returned": "\(returned)"])
                    }
                    break
                } catch {
                    outage.failed(error, logger: logger)
                    attempt += 1
                    try? await Task.sleep(for: .milliseconds(min(1000, 50 * (1 << min(attempt, 5)))))
                }
            }
            ledger.open()
        }
    }

    /// One reconciliation pass; call with the ledger's gate closed. Returns how many jobs went back.
    func reconcile() async throws -> Int {
        let orphans = ledger.orphans(in: try await backend.inflightJobs(of: identity, limit: nil))
        if orphans.isEmpty { return 0 }
        return try await backend.apply(orphans.map(Self.requeue), fromInflightOf: identity, journalField: "").filter { $0 }.count
    }

    func deregister() async {
        do {
            try await backend.deregister()
        } catch {
            logger.error("could not deregister this process", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Cancellation

    /// How often running jobs are checked for a cancel flag and the recently-cancelled list for a change.
    static let cancelPollInterval: Duration = .milliseconds(250)

    /// Every `cancelPollInterval`: reads the cancel requests (one pipeline: the list's version and each running
    /// job's flag) and stops the running jobs they name, so a cancelled job stops within a second on any process.
    func cancelWatchLoop() async {
        let outage = OutageLog("reading cancel requests")
        while !Task.isCancelled {
            do {
                try await checkCancellations()
                outage.succeeded(logger: logger)
            } catch {
                outage.failed(error, logger: logger)
            }
            try? await Task.sleep(for: Self.cancelPollInterval)
        }
    }

    func checkCancellations() async throws {
        let running = watchdog.runningJIDs
        let known = cancelRequests.withLock { $0.version }
        let requests = try await backend.cancellations(running: running, knownVersion: known)
        let recent = cancelRequests.withLock { state -> Set<String> in
            if let list = requests.recent {
                state.recent = list
                state.version = requests.version
            }
            return state.recent
        }
        let stop = requests.flagged.union(running.filter { recent.contains($0) })
        let stopped = watchdog.cancel(stop)
        if stopped > 0 { logger.notice("cancelled running jobs", metadata: ["jids": "\(stop.sorted().joined(separator: ","))"]) }
    }
}
