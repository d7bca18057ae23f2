import Foundation
import Postgres

/// The test server from `DATABASE_URL` (started by scripts/test.sh), and a private schema per test.
enum TestDatabase {
    static var url: String? { ProcessInfo.processInfo.environment["DATABASE_URL"] }

    static func connect() throws -> PostgresConnection {
        guard let url else { throw PostgresError(kind: .invalidInput, message: "DATABASE_URL is not set (run scripts/test.sh)") }
        return try PostgresConnection(url: url)
    }

    static func uniqueName(_ base: String) -> String {
        "\(base)_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
    }
}
