import ConveyorCore
import Images
import Mail
import Operations
import Postgres
import Push
import Sandbox
import Summaries
import Media

/// What the executable puts together from the families: one list, and everything else derived from it. A command
/// that needs only a family's static facts (`conveyor migrate` its tables, `conveyor enqueue` its queues,
/// `conveyor helper` its native operations) builds nothing else: no helper pool, no Redis connection.
enum Composition {
    /// Every job family of this build; a new family adds its own line.
    static let families: [any JobFamilyDefinition.Type] = [
        BuiltinJobs.self,
        MailJobs.self,
        ImagesJobs.self,
        MediaJobs.self,
        SummariesJobs.self,
        PushJobs.self,
    ]

    /// Every table in schema `conveyor`: operations' own, then each family's.
    static let migrations: [Migration] =
        OperationsMigrations.all + families.flatMap { ($0 as? any DeclaresMigrations.Type)?.migrations ?? [] }

    /// Every class's own queue (what `conveyor enqueue` picks when none is given).
    static let classQueues: [String: String] = {
        var queues: [String: String] = [:]
        for family in families {
            for name in family.classNames { queues[name] = family.queue }
        }
        return queues
    }()

    /// Every native operation `conveyor helper` serves.
    static let helperOperations: HelperOperations = families.reduce(HelperOperations()) { all, family in
        guard let declared = family as? any DeclaresHelperOperations.Type else { return all }
        return all.merging(declared.helperOperations)
    }

    /// Builds every family for a worker process from one context.
    static func build(_ context: FamilyContext) throws -> [JobFamily] {
        try families.map { try $0.family(context) }
    }
}
