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
}
