import Foundation
import Redis
import Testing

/// What `scripts/test.sh` exported: the private servers' URLs and the test certificates.
enum TestEnv {
    static func value(_ name: String) throws -> String {
        guard let v = ProcessInfo.processInfo.environment[name], !v.isEmpty else {
            throw SetupError("\(name) is not set: run the tests through scripts/test.sh, which starts the servers")
        }
        return v
    }

    static func plain() throws -> RedisEndpoint { try RedisEndpoint(url: value("REDIS_URL")) }

    /// The TLS server (client certificate required), trusting the test CA and presenting the client certificate.
    static func tls(url: String? = nil, host: String? = nil, ca: String? = nil, certificate: Bool = true, insecure: Bool = false) throws -> RedisEndpoint {
        var environment = ["CONVEYOR_REDIS_CA_FILE": try ca ?? value("CONVEYOR_TEST_REDIS_CA_FILE")]
        if certificate {
            environment["CONVEYOR_REDIS_CERT_FILE"] = try value("CONVEYOR_TEST_REDIS_CERT_FILE")
            environment["CONVEYOR_REDIS_KEY_FILE"] = try value("CONVEYOR_TEST_REDIS_KEY_FILE")
        }
        if insecure { environment["CONVEYOR_REDIS_TLS_INSECURE"] = "1" }
        var endpoint = try RedisEndpoint(url: url ?? value("CONVEYOR_TEST_REDIS_TLS_URL"), environment: environment)
        if let host, case .tcp(_, let port) = endpoint.address { endpoint.address = .tcp(host: host, port: port) }
        return endpoint
    }

    static func unique(_ prefix: String) -> String { "\(prefix)-\(UInt32.random(in: 0...UInt32.max))" }
}

struct SetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, checking every 50 ms; fails the test after `timeout`.
func eventually(
    _ what: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(timeout) waiting for: \(what)", sourceLocation: sourceLocation)
    throw SetupError("timed out waiting for \(what)")
}

/// The error a throwing expression threw, as text.
func failure(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return "\(error)"
    }
}
