import ArgumentParser

@main
struct Conveyor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conveyor",
        abstract: "Job worker and media pipeline: runs jobs from Redis queues.",
        subcommands: [
            WorkerCommand.self, EnqueueCommand.self, MigrateCommand.self, StatsCommand.self, DeadCommand.self,
            RetryCommand.self, HelperCommand.self,
        ])
}
