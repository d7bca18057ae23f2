import Foundation
import Testing

@Suite(.enabled(if: TestEnv.hasServers && TestEnv.binary != nil, "needs DATABASE_URL, REDIS_URL and CONVEYOR_BIN"))
struct MigrateCommandTests {
    @Test func migrateCreatesJobResultsAndReportsStatusAsJSON() throws {
        let first = try TestEnv.conveyor(["migrate"])
        #expect(first.code == 0, "\(first.err)")
        let second = try TestEnv.conveyor(["migrate", "--json"])
        #expect(second.code == 0)
        #expect(second.out.contains("\"applied\":[]"))
        let status = try TestEnv.conveyor(["migrate", "--status", "--json"])
        #expect(status.out.contains("\"component\":\"operations\",\"version\":1,\"name\":\"job_results\""))
        #expect(status.out.contains("\"pending\":[]"))
    }

    /// `migrate` needs only the families' tables: it builds no family (no helper pool, no Redis connection), so a
    /// Redis that is down, a helper binary that is missing or another family's bad setting does not concern it.
    @Test func migrateBuildsNoFamilyAndKnowsEveryFamilysTables() throws {
        let r = try TestEnv.conveyor(
            ["migrate", "--status", "--json"],
            environment: ["REDIS_URL": "redis://127.0.0.1:1/0", "CONVEYOR_HELPER_BIN": "/nonexistent/conveyor", "CONVEYOR_VIDEO_CRF": "99"])
        #expect(r.code == 0, "\(r.err)")
        #expect(r.err.isEmpty, "\(r.err)")
        for component in ["operations", "mail", "media", "summaries"] {
            #expect(r.out.contains("\"component\":\"\(component)\""), "\(component) missing: \(r.out)")
        }
    }

    /// `enqueue` needs only a class's queue: it builds no family either.
    @Test func enqueueBuildsNoFamilyAndUsesTheClasssQueue() throws {
        let namespace = TestEnv.unique("enq")
        let r = try TestEnv.conveyor(
            ["enqueue", "image.thumbnail", "--args", #"{"source":"uploads/a.jpg"}"#, "--namespace", namespace],
            environment: ["CONVEYOR_HELPER_BIN": "/nonexistent/conveyor", "CONVEYOR_VIDEO_CRF": "99"])
        #expect(r.code == 0, "\(r.err)")
        #expect(r.err.isEmpty, "\(r.err)")
        let redis = try TestEnv.redis()
        #expect(try redis.command("LLEN", namespace + ":queue:media").int == 1)
        _ = try redis.command("DEL", namespace + ":queue:media", namespace + ":queues")
    }

    @Test func unreachableDatabaseExitsWithCode3() throws {
        let r = try TestEnv.conveyor(["migrate", "--database-url", "postgres://127.0.0.1:1/x"])
        #expect(r.code == 3)
        #expect(r.err.contains("postgres connection"))
    }
}
