import ArgumentParser
import ConveyorCore
import Foundation
import Logging
import Redis
import Schedules
import ServiceLifecycle
import SidekiqQueue

/// `conveyor schedules list|run NAME|disable NAME|enable NAME`: the schedules workers wrote into Redis.
struct SchedulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedules",
        abstract: "The config file's periodic jobs as workers wrote them into Redis (sidekiq-cron's layout).",
        discussion: "Exit codes: 0 done, 1 failed, 3 Redis unreachable, 4 no such schedule, 64 bad usage.",
        subcommands: [List.self, Run.self, Enable.self, Disable.self])

    static func connect(_ redis: RedisOptions) throws -> (RedisConnection, ScheduleStore, QueueKeys) {
        let keys = redis.keys
        let endpoint = try redis.endpoint()
        do {
            return (try RedisConnection(endpoint), ScheduleStore(prefix: keys.prefix), keys)
        } catch {
            FileHandle.standardError.write(Data("conveyor: Redis \(endpoint): \(error)\n".utf8))
            throw ExitCode(3)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each schedule: cron line and zone, status, next and last run, last jid.")
        @OptionGroup var redis: RedisOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let (conn, store, _) = try SchedulesCommand.connect(redis)
            let now = Int64(Date().timeIntervalSince1970)
            let names = try store.names(on: conn)
            var rows: [JSONValue] = []
            for name in names {
                let h = try store.info(name, on: conn)
                let next = (try? CronExpression(h["cron"] ?? ""))?.next(after: now)
                rows.append(
                    .object(
                        JSONObject([
                            ("name", .string(name)), ("cron", .string(h["cron"] ?? "")), ("class", .string(h["klass"] ?? "")),
                            ("status", .string(h["status"] ?? "")), ("next", next.map { .string(ScheduleStore.iso($0)) } ?? .null),
                            ("last_enqueue_time", .string(h["last_enqueue_time"] ?? "")), ("last_jid", .string(h["conveyor_last_jid"] ?? "")),
                            ("catch_up", .string(h["catch_up"] ?? "")), ("file", .string(h["conveyor_file"] ?? "")),
                        ])))
            }
            if json {
                print(JSONValue.array(rows).text)
                return
            }
            if rows.isEmpty { print("(no schedules)") }
            for r in rows {
                let f = { (k: String) in r[k]?.stringValue ?? "-" }
                print("\(f("name"))  \"\(f("cron"))\"  \(f("class"))  \(f("status"))  next \(f("next"))  last \(f("last_enqueue_time").isEmpty ? "never" : f("last_enqueue_time"))  \(f("last_jid"))")
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Push the schedule's job now (also when disabled); prints its jid.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The schedule's name.") var name: String

        func run() throws {
            let (conn, store, keys) = try SchedulesCommand.connect(redis)
            guard let schedule = try store.schedule(name, on: conn) else {
                FileHandle.standardError.write(Data("conveyor: no schedule \(name.prefix(200)) in Redis\n".utf8))
                throw ExitCode(4)
            }
            guard !keys.cluster else { throw ValidationError("schedules are not supported on a Redis Cluster") }
            let now = Date().timeIntervalSince1970
            let result = try store.claim(
                schedule, tick: Int64(now.rounded(.down)), now: now, queueKey: keys.queue(schedule.queue), queuesKey: keys.queues, on: conn,
                force: true)
            guard case .pushed(let jid) = result else {
                let why = result == .disabled ? "is no longer in Redis" : "already ran this second"
                FileHandle.standardError.write(Data("conveyor: schedule \(name) \(why)\n".utf8))
                throw ExitCode(1)
            }
            CLIAudit.record("run schedule \(name) now (\(jid))", keys: keys, connection: conn)
            print(jid)
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let the schedule's ticks run again.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The schedule's name.") var name: String
        func run() throws { try SchedulesCommand.setStatus(name, true, redis) }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the schedule's ticks (kept across restarts) until enabled.")
        @OptionGroup var redis: RedisOptions
        @Argument(help: "The schedule's name.") var name: String
        func run() throws { try SchedulesCommand.setStatus(name, false, redis) }
    }

    static func setStatus(_ name: String, _ enabled: Bool, _ redis: RedisOptions) throws {
        let (conn, store, keys) = try connect(redis)
        guard try store.setEnabled(name, enabled, on: conn) else {
            FileHandle.standardError.write(Data("conveyor: no schedule \(name.prefix(200)) in Redis\n".utf8))
            throw ExitCode(4)
        }
        CLIAudit.record("\(enabled ? "enable" : "disable") schedule \(name)", keys: keys, connection: conn)
        print("\(name) \(enabled ? "enabled" : "disabled")")
    }
}

/// The worker's part: the file's `schedules:` checked against the registered classes (exit 64 on any problem), diffed
/// into Redis, and the scheduler service that evaluates them.
enum SchedulesWiring {
    static func service(
        settings: SettingsReader, registry: JobRegistry, endpoint: RedisEndpoint, keys: QueueKeys, logger: Logger,
        exporter: (@escaping @Sendable () -> String) -> Void
    ) throws -> (any Service)? {
        guard let file = settings.file else { return nil }
        let (schedules, problems) = Schedule.check(file) { registry.classes[$0]?.queue }
        if !problems.isEmpty { throw ValidationError(problems.joined(separator: "\n")) }
        if keys.cluster, !schedules.isEmpty {
            throw ValidationError("\(file.path): schedules are not supported on a Redis Cluster yet")
        }
        let store = ScheduleStore(prefix: keys.prefix)
        try store.sync(schedules, on: try RedisConnection(endpoint))
        guard !schedules.isEmpty else { return nil }
        logger.info("schedules", metadata: ["names": "\(schedules.map(\.name).joined(separator: ","))"])
        let log = logger
        let metrics = ScheduleMetrics()
        exporter { metrics.render() }
        return SchedulerService(
            schedules: schedules, store: store, connect: { try RedisConnection(endpoint) }, queueKey: { keys.queue($0) },
            queuesKey: keys.queues,
            onPush: { schedule, tick, lateness in
                log.info(
                    "schedule tick pushed",
                    metadata: ["schedule": "\(schedule.name)", "tick": "\(tick)", "lateness_s": "\(String(format: "%.3f", lateness))"])
            },
            metrics: metrics, onError: { error in log.warning("schedules: \(error)") })
    }
}
