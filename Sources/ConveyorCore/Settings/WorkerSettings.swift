import Foundation

/// The worker's own settings and those every command reads (the config file, logging).
public enum WorkerSettings {
    public static let configFile = Setting("CONVEYOR_CONFIG_FILE", key: "", flag: "--config", note: "none", 
            doc: "A YAML file of settings under their keys (`concurrency: 10`, `media.store: s3://bucket`); flags and the environment win over it. Unknown keys are errors.")

    public static let concurrency = Setting("CONVEYOR_CONCURRENCY", flag: "--concurrency", .int(1...10_000), default: "10", 
            doc: "Jobs running at once in one worker process (1-10000, as `--concurrency`)")

    public static let queues = Setting("CONVEYOR_QUEUES", flag: "--queues", note: "every queue of the registered classes, weighted `critical:8,default:4,<class queues>:2,low:1`", 
            doc: "Queues `conveyor worker` takes jobs from (same syntax as `--queues`)", check: { text in
            do {
                _ = try QueueSelection(parsing: text)
                return nil
            } catch let failure as JobFailure { return failure.message } catch { return "\(error)" }
        })

    public static let shutdownTimeout = Setting("CONVEYOR_SHUTDOWN_TIMEOUT", flag: "--shutdown-timeout", .duration(0...86_400), default: "25s", 
            doc: "On SIGTERM, how long running jobs may finish before they are pushed back to their queues.")

    public static let heartbeatInterval = Setting("CONVEYOR_HEARTBEAT_INTERVAL", flag: "--heartbeat-interval", .duration(0.01...3600), default: "5s",
            doc: "How often this process heartbeats (Sidekiq's process list, the reaper's liveness).")
    public static let heartbeatTtl = Setting("CONVEYOR_HEARTBEAT_TTL", flag: "--heartbeat-ttl", .duration(1...86_400), default: "30s",
            doc: "Silence after which another process reaps this one's in-flight jobs.")
    public static let pollInterval = Setting("CONVEYOR_POLL_INTERVAL", flag: "--poll-interval", .duration(0.01...3600), default: "1s",
            doc: "How often due scheduled and retried jobs are moved to their queues.")
    public static let deadMaxJobs = Setting("CONVEYOR_DEAD_MAX_JOBS", key: "dead.max_jobs", flag: "--dead-max-jobs", .int(0...100_000_000), default: "10000",
            doc: "Dead set size limit (oldest dropped first).")
    public static let deadMaxDays = Setting("CONVEYOR_DEAD_MAX_DAYS", key: "dead.max_days", flag: "--dead-max-days", .number(0...3650), default: "180",
            doc: "Dead set age limit in days.")
    public static let tag = Setting("CONVEYOR_TAG", flag: "--tag", default: "conveyor", doc: "Shown in Sidekiq's process list.")

    public static let logLevel = Setting("CONVEYOR_LOG_LEVEL", flag: "--log-level", .choice(["trace", "debug", "info", "notice", "warning", "error", "critical"]), default: "info", 
            doc: "`trace` … `critical`; `info` logs one line per finished job. Lines are `time level label: key=value ... [module] message`; control characters in any value are escaped (`\\n`, `\\u{1B}`) and values are cut at 512 characters, so a job's class or arguments cannot forge or flood log lines. An outage of Redis is logged once per connection when it starts and once when it ends.")

    public static let logFormat = Setting("CONVEYOR_LOG_FORMAT", .choice(["text", "json"]), default: "text", 
            doc: "`json` writes one JSON object per line (`time`, `level`, `label`, `source`, `message`, then each metadata key such as `job.id`, `job.class`, `queue`, `error_class` as a field of its own), for log shippers")

    public static let all = [
        configFile, concurrency, queues, shutdownTimeout, heartbeatInterval, heartbeatTtl, pollInterval, deadMaxJobs, deadMaxDays, tag, logLevel, logFormat,
    ]

    public static let group = SettingGroup("Worker", note: "`conveyor worker`; the log settings apply to every command.", all)
}
