public import Redis
import Postgres

/// `/readyz`: Redis answers PING and, when a database is configured, PostgreSQL accepts connections.
public enum Readiness {
    public static func check(redis: RedisEndpoint, databaseURL: String?) -> (ready: Bool, detail: String) {
        var lines: [String] = []
        var ready = true
        do {
            let connection = try RedisConnection(redis, connectTimeout: 1, commandTimeout: 1)
            let reply = try connection.command("PING")
            if reply.text == "PONG" { lines.append("redis ok") } else {
                ready = false
                lines.append("redis: unexpected reply to PING")
            }
        } catch {
            ready = false
            lines.append("redis: \(error)")
        }
        if let databaseURL, !databaseURL.isEmpty {
            if postgresIsReachable(url: databaseURL) { lines.append("postgres ok") } else {
                ready = false
                lines.append("postgres: not accepting connections")
            }
        }
        return (ready, lines.joined(separator: "\n"))
    }
}
