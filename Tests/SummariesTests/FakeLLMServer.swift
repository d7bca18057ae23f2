import ConveyorCore
import ConveyorTesting
import Curl
import Foundation
import Summaries

/// The Python provider stand-in (`fake_llm_server.py`), one per test, on a free loopback port. It exits when
/// its stdin closes, so it never outlives the test process.
final class FakeLLMServer: @unchecked Sendable {
    let server: ScriptServer
    var port: Int { server.port }

    init() throws {
        server = try ScriptServer(
            script: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("fake_llm_server.py"), portAfter: "PORT ")
    }

    func stop() { server.stop() }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Environment for `SummariesConfiguration` pointing both providers here.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = [
            "OPENAI_API_KEY": "test-openai-key", "OPENAI_BASE_URL": base + "/openai/v1", "OPENAI_MODEL": "gpt-test",
            "ANTHROPIC_API_KEY": "test-anthropic-key", "ANTHROPIC_BASE_URL": base + "/anthropic", "ANTHROPIC_MODEL": "claude-test",
        ]
        env.merge(extra) { $1 }
        return env
    }

    func fault(_ provider: String, _ mode: String, count: Int = -1, delay: Double = 0, retryAfter: String? = nil) throws {
        var spec: [(String, JSONValue)] = [("provider", .string(provider)), ("mode", .string(mode)), ("count", JSONValue(count)), ("delay", JSONValue(delay))]
        if let retryAfter { spec.append(("retry_after", .string(retryAfter))) }
        let response = try CurlEasy().perform(HTTPRequest(method: "POST", url: base + "/control/fault", body: JSONValue.object(JSONObject(spec)).bytes))
        guard response.status == 200 else { throw TestError("fault control returned \(response.status)") }
    }

    /// Requests each provider has received so far, and the last request body of each.
    func stats() throws -> (openai: Int, anthropic: Int, last: JSONValue) {
        let response = try CurlEasy().perform(HTTPRequest(url: base + "/control/stats"))
        let json = try JSONValue(parsing: response.body)
        return (json["openai"]?.intValue ?? -1, json["anthropic"]?.intValue ?? -1, json["last"] ?? .null)
    }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A clock the test moves by hand, for breaker waits (OPEN's 60 s, cooldowns) without sleeping.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: Duration = .zero
    private let origin = ContinuousClock.now

    var now: ContinuousClock.Instant { lock.withLock { origin + offset + (ContinuousClock.now - origin) } }
    func advance(_ by: Duration) { lock.withLock { offset += by } }
}
