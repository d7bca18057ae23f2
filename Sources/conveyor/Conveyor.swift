import ArgumentParser

@main
struct Conveyor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "Job worker and media pipeline: runs jobs from Redis queues.",
        version: Conveyor.version,
        subcommands: [
            WorkerCommand.self, EnqueueCommand.self, MigrateCommand.self, StatsCommand.self, DeadCommand.self,
            RetryCommand.self, QueueCommand.self, ProcessCommand.self, WebCommand.self, ConfigCommand.self, HelperCommand.self, VapidCommand.self,
            SchedulesCommand.self, ScheduledCommand.self, CancelCommand.self, JobCommand.self, BullMQCommand.self,
        ])

    /// `conveyor --version`.
    static let version = "0.3.0"
}
