// mail-bench: email.send throughput to a local SMTP sink, through the real handler (template rendering,
// message building, SMTP over libcurl), with one kept-alive connection per sending thread or a new connection
// per message. Usage: mail-bench SMTP_URL MESSAGES CONNECTIONS reuse|fresh
import ConveyorCore
import Curl
import Foundation
import Logging
import Mail

let arguments = CommandLine.arguments
guard arguments.count == 5, let count = Int(arguments[2]), let connections = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: mail-bench SMTP_URL MESSAGES CONNECTIONS reuse|fresh\n".utf8))
    exit(64)
}
let reuse = arguments[4] == "reuse"
let configuration = MailConfiguration(
    from: try MailAddress("bench@example.com"), templates: MailConfiguration.bundledTemplates,
    outbox: URL(fileURLWithPath: "/nonexistent"), concurrency: connections)
let transport = SMTPTransport(
    options: SMTPSessionOptions(url: arguments[1], useSSL: .none, reuseConnection: reuse), connections: connections)
let handler = EmailSendHandler(configuration: configuration, transport: transport, ledger: InMemoryMailLedger())
let logger: Logger = {
    var l = Logger(label: "mail-bench")
    l.logLevel = .warning
    return l
}()

func arguments(_ i: Int) -> JSONObject {
    JSONObject([("template", "welcome"), ("to", .string("user\(i)@example.net")),
                ("data", ["name": .string("User \(i)"), "product": "Acme", "login_url": "https://acme.example/login"])])
}

let start = ContinuousClock.now
try await withThrowingTaskGroup(of: Void.self) { group in
    let perWorker = (count + connections - 1) / connections
    for w in 0..<connections {
        group.addTask {
            for i in (w * perWorker)..<min(count, (w + 1) * perWorker) {
                let job = JobContext(jid: "bench-\(i)", jobClass: "email.send", queue: "mail", arguments: arguments(i), attempt: 1,
                                     deadline: .now + .seconds(60), payload: JSONObject(), logger: logger)
                _ = try await handler.perform(job)
            }
        }
    }
    try await group.waitForAll()
}
let elapsed = ContinuousClock.now - start
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
print(String(format: "%d %.3f %.1f", count, seconds, Double(count) / seconds))
