import ConveyorCore
import Images
import Mail
import Operations
import Postgres
import Summaries
import Video

/// What the executable puts together from the families. Each family's part is a static value, so a command that
/// needs one of them (`conveyor migrate` needs only the tables) builds nothing else: no helper pool, no Redis.
enum Composition {
    /// Every family's tables in schema `conveyor`; a new family adds its own line.
    static let migrations: [Migration] =
        OperationsMigrations.all
        + MailMigrations.all
        + MediaMigrations.all
        + PostgresSummaryStore.migrations

    /// Every class's own queue, from the families' static tables (`conveyor enqueue` builds no family); a new
    /// family adds its own line.
    static let classQueues: [String: String] = {
        var queues: [String: String] = ["noop": "default", "sleep": "default"]
        for (names, queue) in [
            (ImagesJobs.classNames, ImagesJobs.queue), (VideoJobs.classNames, VideoJobs.queue),
            (MailJobs.classNames, MailJobs.queue), (SummariesJobs.classNames, SummariesJobs.queue),
        ] {
            for name in names { queues[name] = queue }
        }
        return queues
    }()
}
