import Foundation
import Postgres
import Testing

/// The families read their settings from the one reader: a value in conveyor.yml reaches them exactly as one from
/// the environment. A worker started with a conveyor.yml alone (no environment but PATH and HOME) refuses an image by
/// the file's image limit and sends mail with the file's sender into the file's outbox.
@Suite(.enabled(if: TestEnv.binary != nil && TestEnv.hasServers, "needs CONVEYOR_BIN, REDIS_URL and DATABASE_URL"))
struct FamilySettingsFromFileTests {
    @Test func aWorkerUsesTheFamilySettingsOfItsConfigFile() throws {
        let namespace = TestEnv.unique("famfile")
        let media = FileManager.default.temporaryDirectory.appendingPathComponent(namespace).path
        let outbox = media + "/outbox"
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        // 4 KiB of noise: over the file's 0.001 MB (1,049 bytes) limit; under the default 50 MB limit it would reach
        // the decoder and fail as an unreadable image instead.
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: media + "/big.jpg"))
        let path = try SettingsCatalogueTests.file("""
            redis.url: "\(TestEnv.redisURL!)"
            namespace: \(namespace)
            queues: [media, mail]
            concurrency: 2
            shutdown.timeout: 5s
            database.url: "\(TestEnv.databaseURL ?? "")"
            media.root: "\(media)"
            image:
              max_file_mb: 0.001
            helpers: 1
            mail:
              from: "File Sender <file-sender@conveyor.test>"
              outbox: "\(outbox)"
            """)
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: media)
        }
        // What `conveyor config` shows is what the worker below uses.
        let shown = try SettingsCatalogueTests.settings(SettingsCatalogueTests.run(["config", "--json", "--config", path]))
        #expect(shown["CONVEYOR_IMAGE_MAX_FILE_MB"]?["value"] as? String == "0.001")
        #expect((shown["CONVEYOR_IMAGE_MAX_FILE_MB"]?["source"] as? String)?.hasPrefix("file:") == true)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnv.binary!)
        process.arguments = ["worker", "--config", path]
        process.environment = SettingsCatalogueTests.bare
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("\(namespace).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let workerLog = { (try? String(contentsOf: log, encoding: .utf8))?.suffix(3000) ?? "" }

        let image = try SettingsCatalogueTests.run([
            "enqueue", "image.thumbnail", "--config", path, "--args",
            #"{"source": "big.jpg", "destination": "thumbs/big", "variants": [{"name": "a", "width": 16, "height": 16, "fit": "cover", "format": "webp"}]}"#,
        ])
        #expect(image.code == 0, "\(image.err)")
        let mail = try SettingsCatalogueTests.run([
            "enqueue", "email.send", "--config", path, "--args",
            #"{"template": "password_reset", "to": "alice@example.net", "locale": "en", "data": {"name": "Alice", "product": "Acme", "reset_url": "https://acme.example/reset?t=1", "expires_minutes": 30}, "idempotency_key": "\#(namespace)"}"#,
        ])
        #expect(mail.code == 0, "\(mail.err)")

        // The image job died by the file's limit.
        let jid = image.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let connection = try PostgresConnection(url: TestEnv.databaseURL!)
        var row: [String?] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            let rows = try connection.query("SELECT status, error_class, error_message FROM conveyor.job_results WHERE jid = $1", [jid]).rows
            if let first = rows.first { row = first; break }
            usleep(50_000)
        }
        #expect(process.isRunning, "the worker exited: \(workerLog())")
        #expect(row.count == 3 && row[0] == "dead" && row[1] == "ImageTooLarge", "\(row) \(workerLog())")
        #expect(row.last??.contains("4096 bytes exceeds the limit of 1049 bytes") == true && row.last??.contains("CONVEYOR_IMAGE_MAX_FILE_MB") == true, "\(row)")

        // The mail went into the file's outbox with the file's sender.
        var eml = ""
        let mailDeadline = Date().addingTimeInterval(60)
        while Date() < mailDeadline, process.isRunning {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: outbox))?.filter { $0.hasSuffix(".eml") } ?? []
            if let file = files.first, let text = try? String(contentsOfFile: outbox + "/" + file, encoding: .utf8), text.contains("\r\n\r\n") {
                eml = text
                break
            }
            usleep(50_000)
        }
        #expect(eml.contains("file-sender@conveyor.test"), "outbox: \(eml.prefix(500)) \(workerLog())")
        #expect(eml.contains("alice@example.net"))
    }
}
