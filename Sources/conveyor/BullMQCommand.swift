import ArgumentParser
import BullMQQueue
import ConveyorCore
import Foundation

/// `conveyor bullmq stats`: the BullMQ queues' jobs by state, beside what `conveyor stats` shows of the Sidekiq ones.
struct BullMQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bullmq",
        abstract: "The BullMQ queues this deployment serves: their jobs by state, failed jobs listed and retried, active jobs and their locks.",
        discussion: "Exit codes: 0 done, 1 failed, 3 Redis unreachable, 64 bad usage.",
        subcommands: [Stats.self, Failed.self, Retry.self, Active.self])

    /// `text` on one line (control characters as spaces), cut to `limit` characters: a reason or id from Redis
    /// cannot rewrite the terminal.
    static func oneLine(_ text: String, _ limit: Int) -> String {
        let flat = String(text.prefix(limit).map { $0.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f } ? $0 : " " })
        return text.count > limit ? flat + "…" : flat
    }

    /// The keys of a queue named on the command line, its name checked.
    static func inspection(_ queue: String, settings: SettingsReader) throws -> BullMQInspection {
        do { try BullMQOptions.validate(name: queue, as: "queue name") } catch { throw ValidationError(error.message) }
        return BullMQInspection(prefix: settings.text(BullMQSettings.prefix) ?? "bull", queue: queue)
    }

    struct Failed: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A BullMQ queue's failed jobs, newest first: id, class (name), attempts, when, and the reason.")

        @OptionGroup var redis: RedisOptions
        @Argument(help: "The BullMQ queue.") var queue: String
        @Option(help: "How many (1-1000).") var limit = 20
        @Option(help: "Skip this many of the newest.") var offset = 0
        @Flag(help: "One JSON object: total and jobs.") var json = false

        func validate() throws {
            guard (1...BullMQInspection.maximumListed).contains(limit) else { throw ValidationError("--limit must be 1 to \(BullMQInspection.maximumListed)") }
            guard (0...1_000_000_000).contains(offset) else { throw ValidationError("--offset must be 0 to 1000000000") }
        }

        func run() throws {
            let settings = SetCommands.run { try redis.settings() }
            let inspection = try BullMQCommand.inspection(queue, settings: settings)
            let (total, jobs) = SetCommands.run { try inspection.failed(offset: offset, count: limit, on: redis.connect()) }
            if json {
                let list: [JSONValue] = jobs.map { job in
                    var o: JSONObject = [
                        "id": .string(job.id), "name": .string(job.name), "failedReason": .string(job.failedReason),
                        "attemptsMade": JSONValue(job.attemptsMade), "data": .string(job.data),
                    ]
                    if let a = job.attempts { o["attempts"] = JSONValue(a) }
                    if let t = job.finishedAt { o["finishedOn"] = JSONValue(t) }
                    return .object(o)
                }
                print(JSONValue.object(["total": JSONValue(total), "jobs": .array(list)]).text)
                return
            }
            print("\(total) failed in \(queue)" + (jobs.isEmpty ? "" : ", newest first:"))
            for job in jobs {
                let attempts = job.attempts.map { "\(job.attemptsMade)/\($0)" } ?? "\(job.attemptsMade)"
                print("\(SetCommands.pad(BullMQCommand.oneLine(job.id, 40), 12)) \(SetCommands.pad(BullMQCommand.oneLine(job.name, 40), 20)) attempts \(SetCommands.pad(attempts, 6)) \((job.finishedAt.map(SetCommands.iso) ?? "-"))  \(BullMQCommand.oneLine(job.failedReason, 200))")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move failed BullMQ jobs back to wait (BullMQ's own reprocessJob, as Job.retry and bull-board do).",
            discussion: """
                Each job keeps its attempts made, as BullMQ's retry does: a job that used all its attempts runs once more.                 --reset-attempts starts its count again. A job that is not in the failed set (retried already, or never                 failed) is reported and left alone. Exit 1 when a named job could not be retried.
                """)

        @OptionGroup var redis: RedisOptions
        @Argument(help: "The BullMQ queue.") var queue: String
        @Argument(help: "Job ids (or --all).") var ids: [String] = []
        @Flag(help: "Every failed job of the queue (at most 100000 at once), oldest first.") var all = false
        @Flag(help: "Reset each job's attempts made (and started) to 0.") var resetAttempts = false
        @Flag(help: "One JSON object per job, or the count for --all.") var json = false

        func validate() throws {
            guard all != !ids.isEmpty else { throw ValidationError("name job ids or --all, not both and not neither") }
            guard ids.count <= 10_000 else { throw ValidationError("at most 10000 ids at once (--all for every failed job)") }
            if let bad = ids.first(where: { !BullMQInspection.isValidID($0) }) {
                throw ValidationError("\(BullMQCommand.oneLine(bad, 80)) is not a BullMQ job id (1-256 bytes, no ':' or control characters)")
            }
        }

        func run() throws {
            let settings = SetCommands.run { try redis.settings() }
            let inspection = try BullMQCommand.inspection(queue, settings: settings)
            let scripts: BullMQScripts
            do {
                scripts = try BullMQScripts(directory: try settings.text(BullMQSettings.scripts) ?? BullMQScripts.discover())
            } catch {
                FileHandle.standardError.write(Data("conveyor bullmq retry: \(error)\n".utf8))
                throw ExitCode(64)
            }
            if all {
                let count = SetCommands.run { try inspection.retryAll(resetAttempts: resetAttempts, scripts: scripts, on: redis.connect()) }
                print(json ? JSONValue.object(["retried": JSONValue(count)]).text : "retried \(count) failed job\(count == 1 ? "" : "s") of \(queue)")
                return
            }
            let results = SetCommands.run { try inspection.retry(ids, resetAttempts: resetAttempts, scripts: scripts, on: redis.connect()) }
            var failed = false
            var out = JSONObject()
            for (id, result) in results {
                let word: String
                switch result {
                case .retried: word = "retried"
                case .missing: word = "missing"; failed = true
                case .notFailed: word = "not failed"; failed = true
                case .refused(let code): word = "refused (\(code))"; failed = true
                }
                if json { out[id] = .string(word) } else { print("\(id): \(word)") }
            }
            if json { print(JSONValue.object(out).text) }
            if failed { throw ExitCode(1) }
        }
    }

    struct Active: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A BullMQ queue's active jobs and their locks; one without a lock is stalled (the next stalled check moves it back to wait).")

        @OptionGroup var redis: RedisOptions
        @Argument(help: "The BullMQ queue.") var queue: String
        @Option(help: "How many (1-1000).") var limit = 50
        @Flag(help: "One JSON object: total and jobs.") var json = false

        func validate() throws {
            guard (1...BullMQInspection.maximumListed).contains(limit) else { throw ValidationError("--limit must be 1 to \(BullMQInspection.maximumListed)") }
        }

        func run() throws {
            let settings = SetCommands.run { try redis.settings() }
            let inspection = try BullMQCommand.inspection(queue, settings: settings)
            let (total, jobs) = SetCommands.run { try inspection.active(limit: limit, on: redis.connect()) }
            if json {
                let list: [JSONValue] = jobs.map { job in
                    var o: JSONObject = ["id": .string(job.id), "name": .string(job.name), "worker": .string(job.worker), "stalled": .bool(job.lock.isStalled)]
                    if case .expiresIn(let left) = job.lock { o["lock_ms_left"] = JSONValue(left) }
                    if let t = job.startedAt { o["processedOn"] = JSONValue(t) }
                    return .object(o)
                }
                print(JSONValue.object(["total": JSONValue(total), "jobs": .array(list)]).text)
                return
            }
            print("\(total) active in \(queue)")
            for job in jobs {
                let lock: String
                switch job.lock {
                case .expiresIn(let ms): lock = "locked \(ms) ms"
                case .noExpiry: lock = "locked (no expiry)"
                case .none: lock = "STALLED (no lock)"
                }
                print("\(SetCommands.pad(BullMQCommand.oneLine(job.id, 40), 12)) \(SetCommands.pad(BullMQCommand.oneLine(job.name, 40), 20)) \(SetCommands.pad(lock, 20)) since \((job.startedAt.map(SetCommands.iso) ?? "-"))  \(BullMQCommand.oneLine(job.worker, 200))")
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Jobs of each BullMQ queue by state (waiting, prioritized, delayed and due, active, paused, completed, failed, stalled).",
            discussion: """
                The queues named, or those of CONVEYOR_BULLMQ_QUEUES; the key prefix is CONVEYOR_BULLMQ_PREFIX (default \
                bull). "ready" is what the depth gauge for autoscaling counts: waiting + prioritized + due delayed + paused. \
                "stalled" is the stalled check's candidate list: active jobs whose lock was not renewed since its last run.
                """)

        @OptionGroup var redis: RedisOptions
        @Argument(help: "BullMQ queue names (default: CONVEYOR_BULLMQ_QUEUES).") var queues: [String] = []
        @Flag(help: "One JSON object per queue name.") var json = false

        func run() throws {
            let settings = SetCommands.run { try redis.settings() }
            let names = queues.isEmpty ? settings.list(BullMQSettings.queues) : queues
            guard !names.isEmpty else { throw ValidationError("name the BullMQ queues, or set CONVEYOR_BULLMQ_QUEUES") }
            let prefix = settings.text(BullMQSettings.prefix) ?? "bull"
            var keys: [String: BullMQKeys] = [:]
            for name in names {
                do { try BullMQOptions.validate(name: name, as: "queue name") } catch { throw ValidationError(error.message) }
                keys[name] = BullMQKeys(prefix: prefix, queue: name)
            }
            let counts = SetCommands.run { try BullMQDepth.counts(of: keys, on: redis.connect()) }
            let sorted = counts.sorted { $0.key < $1.key }
            if json {
                var out = JSONObject()
                for (name, c) in sorted {
                    out[name] = .object([
                        "waiting": JSONValue(c.waiting), "prioritized": JSONValue(c.prioritized), "delayed": JSONValue(c.delayed),
                        "delayed_due": JSONValue(c.delayedDue), "active": JSONValue(c.active), "paused": JSONValue(c.paused),
                        "completed": JSONValue(c.completed), "failed": JSONValue(c.failed), "stalled": JSONValue(c.stalled), "ready": JSONValue(c.depth),
                    ])
                }
                print(JSONValue.object(out).text)
                return
            }
            let columns = ["QUEUE", "READY", "WAITING", "PRIORITIZED", "DELAYED", "DUE", "ACTIVE", "PAUSED", "COMPLETED", "FAILED", "STALLED"]
            let width = max(12, (sorted.map(\.key.count).max() ?? 0) + 2)
            print(SetCommands.pad(columns[0], width) + columns.dropFirst().map { SetCommands.pad($0, 12) }.joined())
            for (name, c) in sorted {
                let values = [c.depth, c.waiting, c.prioritized, c.delayed, c.delayedDue, c.active, c.paused, c.completed, c.failed, c.stalled]
                print(SetCommands.pad(name, width) + values.map { SetCommands.pad(String($0), 12) }.joined())
            }
        }
    }
}
