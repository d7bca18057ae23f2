public import ConveyorCore

/// BullMQ worker mode: `conveyor worker` also takes the jobs of BullMQ queues.
public enum BullMQSettings {
    public static let queues = Setting("CONVEYOR_BULLMQ_QUEUES", key: "bullmq.queues", flag: "--bullmq-queues", .list, note: "none",
            doc: "BullMQ queues this worker also serves (`images,mail`): a BullMQ job's `name` is the Conveyor job class and its `data` the arguments. Without `CONVEYOR_QUEUES` a worker given BullMQ queues serves only those.", check: { text in
            for name in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                do { try BullMQOptions.validate(name: name, as: "queue name") } catch { return (error as? JobFailure)?.message ?? "\(error)" }
            }
            return nil
        })

    public static let prefix = Setting("CONVEYOR_BULLMQ_PREFIX", key: "bullmq.prefix", default: "bull",
            doc: "The BullMQ key prefix the producers use (`prefix` of their `Queue`).", check: { text in
            do { try BullMQOptions.validate(name: text, as: "prefix") } catch { return (error as? JobFailure)?.message ?? "\(error)" }
            return nil
        })

    public static let scripts = Setting("CONVEYOR_BULLMQ_SCRIPTS", key: "bullmq.scripts", note: "found through `python3 -c 'import bullmq'`",
            doc: "The `bullmq/commands` directory of the pinned PyPI `bullmq` 3.4.4 (BullMQ's Lua scripts, checked by SHA-1 at start-up; the image sets it).")

    public static let lockDuration = Setting("CONVEYOR_BULLMQ_LOCK_DURATION", key: "bullmq.lock_duration", .duration(1...3600), default: "30s",
            doc: "How long the lock of a BullMQ job this worker runs lasts without renewal (renewed every half of it; checked twice a second, and a job whose lock is lost has its handler cancelled). Shorter locks recover a crashed worker's jobs sooner.")

    public static let stalledInterval = Setting("CONVEYOR_BULLMQ_STALLED_INTERVAL", key: "bullmq.stalled_interval", .duration(0.5...3600), default: "30s",
            doc: "How often this worker runs the queue's shared stalled-job check (a job whose lock expired goes back to wait; past `maxStalledCount` 1 it fails).")

    public static let removeOnComplete = Setting("CONVEYOR_BULLMQ_REMOVE_ON_COMPLETE", key: "bullmq.remove_on_complete", default: "keep",
            doc: "What completed BullMQ jobs keep when the job's own `removeOnComplete` says nothing (the worker option of BullMQ): `keep` (all), `remove` (at once), a count (`1000`: the newest that many) or an age (`24h`: for that long).",
            check: { BullMQOptions.keepProblem($0) })

    public static let removeOnFail = Setting("CONVEYOR_BULLMQ_REMOVE_ON_FAIL", key: "bullmq.remove_on_fail", default: "keep",
            doc: "The same for failed BullMQ jobs (`removeOnFail`).", check: { BullMQOptions.keepProblem($0) })

    public static let limiter = Setting("CONVEYOR_BULLMQ_LIMITER", key: "bullmq.limiter", default: "off",
            doc: "BullMQ's worker `limiter`: at most MAX jobs started per DURATION on each BullMQ queue (`100/1s`, `30/1m`), counted in the queue's limiter key that every worker of the queue shares, Node ones included. A queue's own global rate limit (`Queue.setGlobalRateLimit`) wins over it. A limited worker waits for the window to end, taking nothing.",
            check: { BullMQOptions.limiterProblem($0) })

    public static let all = [queues, prefix, scripts, lockDuration, stalledInterval, removeOnComplete, removeOnFail, limiter]

    public static let group = SettingGroup(
        "BullMQ", note: "Conveyor runs BullMQ's own Lua scripts from the pinned package; old Bull (v3/v4) queues are refused.", all)
}

