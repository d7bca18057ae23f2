import Foundation
import Postgres
import Testing

/// The catalogue through the real binary: every declared setting shows its default and the source that set it (flag,
/// environment, file with its line); a bad value is refused (exit 64) naming its source, whichever it is, all at
/// once; typos get the nearest name; the docs table is the catalogue's; a worker runs from a conveyor.yml alone.
@Suite(.enabled(if: TestEnv.binary != nil && TestEnv.hasServers, "needs CONVEYOR_BIN, REDIS_URL and DATABASE_URL"))
struct SettingsCatalogueTests {
    /// Only PATH and HOME: nothing of the test runner's environment reaches the binary.
    static let bare: [String: String] = [
        "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "HOME": ProcessInfo.processInfo.environment["HOME"] ?? "/tmp",
    ]

    /// Runs the binary with exactly `environment`.
    static func run(_ arguments: [String], environment: [String: String] = bare) throws -> (code: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnv.binary!)
        process.arguments = arguments
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// `config --json`'s settings by name.
    static func settings(_ r: (code: Int32, out: String, err: String)) throws -> [String: [String: Any]] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.out.prefix(500)) \(r.err)")
        let list = try #require(object["settings"] as? [[String: Any]])
        var out: [String: [String: Any]] = [:]
        for s in list { out[s["name"] as! String] = s }
        return out
    }

    static func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-\(TestEnv.unique("cfg")).yml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func everyDeclaredSettingAppearsWithItsDefault() throws {
        let r = try Self.run(["config", "--json"])
        #expect(r.code == 0, "\(r.err)")
        let all = try Self.settings(r)
        #expect(all.count >= 110, "\(all.count) settings")
        for (name, s) in all {
            #expect(s["source"] as? String == "default", "\(name): \(s)")
            #expect((s["value"] as? String) == (s["default"] as? String), "\(name): value \(s["value"] ?? "nil") default \(s["default"] ?? "nil")")
            #expect(!((s["key"] as? String) ?? "x").contains(" "), "\(name)")
        }
        for name in ["CONVEYOR_CONCURRENCY", "REDIS_URL", "DATABASE_URL", "CONVEYOR_MEDIA_STORE", "CONVEYOR_IMAGE_MAX_MEGAPIXELS", "SMTP_STARTTLS",
                     "OPENAI_BASE_URL", "CONVEYOR_WEB_ADDR", "CONVEYOR_SHUTDOWN_TIMEOUT", "CONVEYOR_LOG_FORMAT"] {
            #expect(all[name] != nil, "\(name) is declared")
        }
        #expect(all["CONVEYOR_CONCURRENCY"]?["default"] as? String == "10")
        #expect(all["CONVEYOR_MEDIA_STORE"]?["key"] as? String == "media.store")
        let only = try Self.run(["config", "--only-set"])
        #expect(only.code == 0 && only.out.isEmpty, "nothing is set: \(only.out)")
    }

    /// Every setting with a default, set to that default by the environment and then by the file (one line each),
    /// reads back with that source (and the file's line); every flag `config` takes shows `flag`.
    @Test func everySettingShowsTheSourceThatSetIt() throws {
        let defaults = try Self.settings(Self.run(["config", "--json"])).compactMapValues { s -> (String, String)? in
            guard let value = s["default"] as? String, let key = s["key"] as? String, !key.isEmpty, s["secret"] as? Bool != true else { return nil }
            return (key, value)
        }
        #expect(defaults.count > 70, "\(defaults.count)")
        var environment = Self.bare
        for (name, (_, value)) in defaults { environment[name] = value }
        let byEnv = try Self.run(["config", "--json"], environment: environment)
        #expect(byEnv.code == 0, "every default is a valid value: \(byEnv.err)")
        let envSettings = try Self.settings(byEnv)
        for name in defaults.keys { #expect(envSettings[name]?["source"] as? String == "env", "\(name): \(envSettings[name] ?? [:])") }

        let ordered = defaults.sorted { $0.key < $1.key }
        var text = "# every default, one per line\n"
        for (_, (key, value)) in ordered { text += "\(key): \(Self.yaml(value))\n" }
        let path = try Self.file(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let byFile = try Self.run(["config", "--json", "--config", path])
        #expect(byFile.code == 0, "\(byFile.err)")
        let fileSettings = try Self.settings(byFile)
        for (index, (name, _)) in ordered.enumerated() {
            let s = fileSettings[name] ?? [:]
            #expect(s["source"] as? String == "file:\(path):\(index + 2)", "\(name): \(s)")
            #expect(s["line"] as? Int == index + 2, "\(name): \(s)")
        }
        #expect(fileSettings["CONVEYOR_CONFIG_FILE"]?["source"] as? String == "flag")

        let flags = try Self.run(
            ["config", "--json", "--concurrency", "7", "--queues", "a,b", "--shutdown-timeout", "5s", "--log-level", "debug",
             "--metrics-addr", "127.0.0.1:9464", "--redis-url", "redis://127.0.0.1:6390/1", "--namespace", "ns", "--addr", "127.0.0.1:9393"],
            environment: environment)
        #expect(flags.code == 0, "\(flags.err)")
        let flagSettings = try Self.settings(flags)
        for name in ["CONVEYOR_CONCURRENCY", "CONVEYOR_QUEUES", "CONVEYOR_SHUTDOWN_TIMEOUT", "CONVEYOR_LOG_LEVEL", "CONVEYOR_METRICS_ADDR", "REDIS_URL",
                     "CONVEYOR_NAMESPACE", "CONVEYOR_WEB_ADDR"] {
            #expect(flagSettings[name]?["source"] as? String == "flag", "\(name): \(flagSettings[name] ?? [:])")
        }
        #expect(flagSettings["CONVEYOR_CONCURRENCY"]?["value"] as? String == "7")
        // The environment wins over the file.
        let both = try Self.run(["config", "--json", "--config", path], environment: Self.bare.merging(["CONVEYOR_CONCURRENCY": "3"]) { $1 })
        #expect(try Self.settings(both)["CONVEYOR_CONCURRENCY"]?["value"] as? String == "3")
    }

    /// The catalogue's ranges are the families' own: every declared bound is accepted by the configuration types
    /// that read it (all lower bounds at once, then all upper bounds, then every allowed word), and one past a
    /// whole-number bound is refused.
    @Test func declaredBoundsAreTheFamiliesBounds() throws {
        let all = try Self.settings(Self.run(["config", "--json"]))
        for bound in ["min", "max"] {
            var environment = Self.bare
            for (name, s) in all {
                guard let n = s[bound] as? Double ?? (s[bound] as? Int).map(Double.init) else { continue }
                environment[name] = s["type"] as? String == "duration" ? "\(n)s" : (Int(exactly: n).map(String.init) ?? "\(n)")
            }
            #expect(environment.count > 60, "\(environment.count)")
            let r = try Self.run(["config"], environment: environment)
            #expect(r.code == 0, "every \(bound) is accepted: \(r.err)")
        }
        for (name, s) in all {
            for word in (s["allowed"] as? [String]) ?? [] {
                let r = try Self.run(["config"], environment: Self.bare.merging([name: word]) { $1 })
                #expect(r.code == 0, "\(name)=\(word): \(r.err)")
            }
            guard s["type"] as? String == "int", let max = s["max"] as? Int, max < Int.max else { continue }
            let r = try Self.run(["config"], environment: Self.bare.merging([name: String(max + 1)]) { $1 })
            #expect(r.code == 64 && r.err.contains("\(name)=\(max + 1) in the environment"), "\(name)=\(max + 1): \(r.err)")
        }
    }

    static func yaml(_ value: String) -> String {
        "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// The same bad value by flag, by environment and by file: exit 64 from `config` and from `worker`, one line that
    /// names where it came from.
    @Test(arguments: [
        ("--concurrency", "CONVEYOR_CONCURRENCY", "concurrency", "0"),
        ("--concurrency", "CONVEYOR_CONCURRENCY", "concurrency", "100000"),
        ("--concurrency", "CONVEYOR_CONCURRENCY", "concurrency", "9223372036854775808"),
        ("--concurrency", "CONVEYOR_CONCURRENCY", "concurrency", "-1"),
        ("--metrics-addr", "CONVEYOR_METRICS_ADDR", "metrics.addr", ":99999"),
        ("--shutdown-timeout", "CONVEYOR_SHUTDOWN_TIMEOUT", "shutdown.timeout", "inf"),
        ("--shutdown-timeout", "CONVEYOR_SHUTDOWN_TIMEOUT", "shutdown.timeout", "1e400"),
        ("--log-level", "CONVEYOR_LOG_LEVEL", "log.level", "loud"),
        ("--queues", "CONVEYOR_QUEUES", "queues", "a:x"),
        ("--redis-url", "REDIS_URL", "redis.url", "http://127.0.0.1"),
    ])
    func aBadValueNamesItsSource(flag: String, variable: String, key: String, value: String) throws {
        let path = try Self.file("# first line\n\(key): \(Self.yaml(value))\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for command in [["config"], ["worker"]] {
            let byFlag = try Self.run(command + ["\(flag)=\(value)"])
            #expect(byFlag.code == 64, "\(command) \(flag) \(value): \(byFlag.err)")
            #expect(byFlag.err.contains("\(flag) \(value)"), "\(byFlag.err)")
            let byEnv = try Self.run(command, environment: Self.bare.merging([variable: value]) { $1 })
            #expect(byEnv.code == 64, "\(variable)=\(value): \(byEnv.err)")
            #expect(byEnv.err.contains("\(variable)=\(value) in the environment"), "\(byEnv.err)")
            let byFile = try Self.run(command + ["--config", path])
            #expect(byFile.code == 64, "\(key): \(value): \(byFile.err)")
            #expect(byFile.err.contains("\(key): \(value) in \(path) line 2"), "\(byFile.err)")
        }
    }

    /// Values the families read are refused at the border too, named by source: URLs by scheme, numbers finite.
    @Test(arguments: [
        ("DATABASE_URL", "database.url", "mysql://x"), ("OPENAI_BASE_URL", "openai.base_url", "notaurl"), ("SMTP_STARTTLS", "smtp.starttls", "maybe"),
        ("CONVEYOR_IMAGE_MAX_MEGAPIXELS", "image.max_megapixels", "inf"), ("CONVEYOR_IMAGE_MAX_MEGAPIXELS", "image.max_megapixels", "nan"),
        ("CONVEYOR_IMAGE_MAX_MEGAPIXELS", "image.max_megapixels", "1e400"), ("CONVEYOR_IMAGE_MAX_MEGAPIXELS", "image.max_megapixels", "0x10"),
        ("CONVEYOR_VIDEO_CRF", "video.crf", "52"), ("CONVEYOR_WEB_PAGE_SIZE", "web.page_size", "-9223372036854775808"),
        ("CONVEYOR_LLM_PROVIDERS", "llm.providers", "openai,gemini"), ("CONVEYOR_MEDIA_STORE", "media.store", "ftp://bucket"),
    ])
    func familySettingsAreCheckedAtTheBorder(variable: String, key: String, value: String) throws {
        let byEnv = try Self.run(["config"], environment: Self.bare.merging([variable: value]) { $1 })
        #expect(byEnv.code == 64, "\(variable)=\(value): \(byEnv.err)")
        #expect(byEnv.err.contains("\(variable)=\(value) in the environment"), "\(byEnv.err)")
        let path = try Self.file("\(key): \(Self.yaml(value))\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let byFile = try Self.run(["config", "--config", path])
        #expect(byFile.code == 64, "\(byFile.err)")
        #expect(byFile.err.contains("\(key): \(value) in \(path) line 1"), "\(byFile.err)")
    }

    /// A rule between settings (TLS files need a `rediss://` URL) names the file line of the setting that broke it.
    @Test func aRuleBetweenSettingsNamesTheFileLine() throws {
        let path = try Self.file("redis:\n  url: redis://127.0.0.1:1/0\n  ca_file: /etc/hostname\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        for command in [["config"], ["worker"], ["stats"]] {
            let r = try Self.run(command + ["--config", path])
            #expect(r.code == 64, "\(command): \(r.err)")
            #expect(r.err.contains("redis.ca_file: /etc/hostname in \(path) line 3"), "\(command): \(r.err)")
        }
    }

    @Test func everyProblemIsReportedAtOnce() throws {
        let path = try Self.file("video:\n  crf: 99\nconcurency: 3\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = try Self.run(
            ["worker", "--config", path, "--metrics-addr", "nonsense"],
            environment: Self.bare.merging(["CONVEYOR_LOG_FORMAT": "xml", "DATABASE_URL": "mysql://x"]) { $1 })
        #expect(r.code == 64)
        for part in ["crf: 99 in \(path) line 2", "concurency in \(path) line 3 is not a setting (did you mean concurrency?)", "--metrics-addr nonsense",
                     "CONVEYOR_LOG_FORMAT=xml in the environment", "DATABASE_URL=mysql://x in the environment"] {
            #expect(r.err.contains(part), "\(part) in:\n\(r.err)")
        }
    }

    @Test func typosGetTheNearestName() throws {
        let r = try Self.run(["config", "--json"], environment: Self.bare.merging(["CONVEYOR_CONCURENCY": "4", "SMTP_PASWORD": "x", "OTEL_ENDPOINT_X": "y"]) { $1 })
        #expect(r.code == 0, "warnings only: \(r.err)")
        #expect(r.err.contains("CONVEYOR_CONCURENCY is not a Conveyor setting (a typo?); it is ignored (did you mean CONVEYOR_CONCURRENCY?)"), "\(r.err)")
        #expect(r.err.contains("did you mean SMTP_PASSWORD?"), "\(r.err)")
        #expect(r.err.contains("OTEL_ENDPOINT_X is not a Conveyor setting"), "\(r.err)")
        let path = try Self.file("CONVEYOR_CONCURRENCY: 3\nmedia:\n  stor: s3://bucket\nschedules:\n  nightly: {cron: '0 3 * * *', class: noop}\nlimits: {}\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let f = try Self.run(["config", "--config", path])
        #expect(f.code == 64)
        #expect(f.err.contains("CONVEYOR_CONCURRENCY in \(path) line 1 is not a setting (did you mean concurrency?)"), "\(f.err)")
        #expect(f.err.contains("media.stor in \(path) line 3 is not a setting (did you mean media.store?)"), "\(f.err)")
        #expect(!f.err.contains("schedules") && !f.err.contains("limits"), "a good schedules: block and limits: are accepted: \(f.err)")
    }

    @Test func aBadScheduleIsRefusedByConfigAsByTheWorker() throws {
        let path = try Self.file("""
            schedules:
              digest:
                cron: "30 2 * * * Mars/Olympus"
                class: email.send
              typo:
                cron: "61 * * * *"
                class: noop
              ghost:
                cron: "@hourly"
                class: no.such.class
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for command in [["config"], ["worker"]] {
            let r = try Self.run(command + ["--config", path])
            #expect(r.code == 64, "\(command): \(r.err)")
            for part in ["\(path) line 3: schedule digest", "Mars/Olympus", "\(path) line 6: schedule typo", "\(path) line 10: schedule ghost",
                         "no job class \"no.such.class\""] {
                #expect(r.err.contains(part), "\(command): \(part) in:\n\(r.err)")
            }
        }
        let cluster = try Self.file("schedules:\n  nightly: {cron: '0 3 * * *', class: noop}\n")
        defer { try? FileManager.default.removeItem(atPath: cluster) }
        let c = try Self.run(["config", "--config", cluster], environment: Self.bare.merging(["REDIS_URL": "redis+cluster://127.0.0.1:1"]) { $1 })
        #expect(c.code == 64)
        #expect(c.err.contains("schedules are not supported on a Redis Cluster"), "\(c.err)")
    }

    @Test func aFileThatCannotBeReadIsAUsageError() throws {
        for (text, expected) in [("concurrency: [1, {a: 2}]\n", "line 1"), ("a: b: c\n", "not YAML"), ("- 1\n- 2\n", "top level"),
                                 ("concurrency: 3\nconcurrency: 4\n", "concurrency")] {
            let path = try Self.file(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let r = try Self.run(["config", "--config", path])
            #expect(r.code == 64, "\(text): \(r.err)")
            #expect(r.err.contains(expected), "\(text): \(r.err)")
        }
        // A syntax error next to a secret does not quote the file; nesting and size are bounded.
        let secretNearError = try Self.file("web.password: NearErrPw7xxxxxx\nconcurrency: [1\n")
        defer { try? FileManager.default.removeItem(atPath: secretNearError) }
        let near = try Self.run(["config", "--config", secretNearError])
        #expect(near.code == 64 && !(near.out + near.err).contains("NearErrPw7"), "\(near.err)")
        let deep = try Self.file("a: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "\n")
        defer { try? FileManager.default.removeItem(atPath: deep) }
        let deepRun = try Self.run(["config", "--config", deep])
        #expect(deepRun.code == 64 && deepRun.err.count < 2000, "\(deepRun.err.prefix(500))")
        let huge = try Self.file(String(repeating: "# padding\n", count: 120_000))
        defer { try? FileManager.default.removeItem(atPath: huge) }
        let hugeRun = try Self.run(["config", "--config", huge])
        #expect(hugeRun.code == 64 && hugeRun.err.contains("larger than"), "\(hugeRun.err)")
        for device in ["/dev/zero", "/dev/null", "/tmp"] {
            let r = try Self.run(["config", "--config", device])
            #expect(r.code == 64 && r.err.contains(device), "\(device): \(r.err)")
        }
        let missing = try Self.run(["worker", "--config", "/nonexistent/conveyor.yml"])
        #expect(missing.code == 64 && missing.err.contains("no such file"), "\(missing.err)")
        let viaEnv = try Self.run(["stats"], environment: Self.bare.merging(["CONVEYOR_CONFIG_FILE": "/nonexistent/c.yml"]) { $1 })
        #expect(viaEnv.code == 64 && viaEnv.err.contains("/nonexistent/c.yml"), "\(viaEnv.err)")
    }

    /// Secrets from the file and from flags are masked like the environment's, in the table, the JSON and errors.
    @Test func secretsFromEverySourceAreMasked() throws {
        let path = try Self.file("""
            redis.url: "redis+sentinel://:FileSentPw1@h1:26379/mymaster"
            web.password: FileWebPw2xxxxx
            database.url: "mysql://u:FileDbPw3@h/db"
            smtp.url: "not a url FileAtPw4@host"
            openai.api_key: FileKey5
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for arguments in [["config"], ["config", "--json"], ["worker"], ["web"]] {
            let r = try Self.run(arguments + ["--config", path])
            let all = r.out + r.err
            #expect(r.code == 64, "\(arguments): \(r.err)")
            for secret in ["FileSentPw1", "FileWebPw2", "FileDbPw3", "FileAtPw4", "FileKey5"] {
                #expect(!all.contains(secret), "\(arguments) shows \(secret):\n\(all)")
            }
        }
        let flag = try Self.run(["config", "--redis-url", "redis://:FlagPw6@127.0.0.1:1/0"])
        #expect(flag.out.contains("redis://:****@127.0.0.1:1/0") && !(flag.out + flag.err).contains("FlagPw6"), "\(flag.out)")
    }

    /// docs/configuration.md's reference tables are `conveyor config --markdown`, byte for byte.
    @Test func theDocsTableIsTheCatalogue() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/configuration.md").standardized
        let text = try String(contentsOf: docs, encoding: .utf8)
        let begin = try #require(text.range(of: "<!-- settings:begin"))
        let afterBegin = try #require(text.range(of: "-->\n", range: begin.upperBound..<text.endIndex))
        let end = try #require(text.range(of: "<!-- settings:end -->"))
        let table = String(text[afterBegin.upperBound..<end.lowerBound])
        let generated = try Self.run(["config", "--markdown"])
        #expect(generated.code == 0)
        // --update-docs rewrites exactly that part of a copy whose table is stale, and keeps the rest.
        let copy = try Self.file(text.replacingOccurrences(of: "| `CONVEYOR_CONCURRENCY` |", with: "| `CONVEYOR_STALE` |"))
        defer { try? FileManager.default.removeItem(atPath: copy) }
        #expect(try Self.run(["config", "--update-docs", copy]).code == 0)
        #expect(try String(contentsOfFile: copy, encoding: .utf8) == String(text[..<afterBegin.upperBound]) + generated.out + String(text[end.lowerBound...]))
        #expect(try Self.run(["config", "--update-docs", "/nonexistent/x.md"]).code == 64)
        #expect(table == generated.out, "docs/configuration.md is stale: run `$(swift build --show-bin-path)/conveyor config --update-docs docs/configuration.md`")
    }

    /// `--example` writes a commented file; with every setting uncommented it is accepted and read from the file.
    @Test func theExampleFileHoldsEverySettingAtItsDefault() throws {
        let r = try Self.run(["config", "--example"])
        #expect(r.code == 0)
        let all = try Self.settings(Self.run(["config", "--json"]))
        for (name, s) in all where name != "CONVEYOR_CONFIG_FILE" {
            #expect(r.out.contains("# \(s["key"] as! String):"), "\(name) is in the example")
        }
        let commented = try Self.file(r.out)
        defer { try? FileManager.default.removeItem(atPath: commented) }
        #expect(try Self.run(["config", "--config", commented]).code == 0)
        // Settings are `# key: value` lines, documentation `##` lines: uncomment every setting that has a value.
        let lines = r.out.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("# "), !line.hasSuffix(":"), !line.contains("   ## default") else { return String(line) }
            return String(line.dropFirst(2))
        }
        let uncommented = try Self.file(lines.joined(separator: "\n"))
        defer { try? FileManager.default.removeItem(atPath: uncommented) }
        let read = try Self.run(["config", "--json", "--config", uncommented])
        #expect(read.code == 0, "\(read.err)")
        let fromFile = try Self.settings(read).values.filter { ($0["source"] as? String)?.hasPrefix("file:") == true }
        #expect(fromFile.count > 70, "\(fromFile.count) settings read from the uncommented example")
    }

    @Test func webChecksTheLogLevelToo() throws {
        let r = try Self.run(["web", "--addr", "127.0.0.1:0"], environment: Self.bare.merging(["CONVEYOR_LOG_LEVEL": "loud"]) { $1 })
        #expect(r.code == 64, "\(r.err)")
        #expect(r.err.contains("CONVEYOR_LOG_LEVEL=loud in the environment"), "\(r.err)")
    }

    /// A worker whose only configuration is a conveyor.yml (no environment but PATH and HOME) serves the queues,
    /// namespace and metrics address the file names and runs a job enqueued through the same file.
    @Test func aWorkerRunsFromAConfigFileAlone() throws {
        let namespace = TestEnv.unique("cfgfile")
        let port = try WorkerProcess.freePort()
        let media = FileManager.default.temporaryDirectory.appendingPathComponent(namespace).path
        let path = try Self.file("""
            redis:
              url: "\(TestEnv.redisURL!)"
            namespace: \(namespace)
            queues: [critical, default]
            concurrency: 2
            metrics.addr: "127.0.0.1:\(port)"
            shutdown.timeout: 5s
            media.root: "\(media)"
            database.url: "\(TestEnv.databaseURL ?? "")"
            mail.outbox: "\(media)/mail"
            log:
              level: info
            """)
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: media)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestEnv.binary!)
        process.arguments = ["worker", "--config", path]
        process.environment = Self.bare
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
        let enqueued = try Self.run(["enqueue", "noop", "--config", path])
        #expect(enqueued.code == 0, "\(enqueued.err)")
        let deadline = Date().addingTimeInterval(60)
        var metrics = ""
        while Date() < deadline {
            #expect(process.isRunning, "the worker exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            if !process.isRunning { return }
            if let r = try? RawHTTP.get(port: port, path: "/metrics", timeout: 1), r.status == 200 {
                metrics = String(decoding: r.body, as: UTF8.self)
                if metrics.contains(#"conveyor_jobs_total{class="noop",outcome="succeeded",queue="default"} 1"#) { break }
            }
            usleep(50_000)
        }
        #expect(metrics.contains(#"conveyor_jobs_total{class="noop",outcome="succeeded",queue="default"} 1"#),
                "the job ran: \(metrics.suffix(2000))\n\((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? "")")
        // Its outcome reached the PostgreSQL the file names.
        let jid = enqueued.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let connection = try PostgresConnection(url: TestEnv.databaseURL!)
        var status: String?
        let rowDeadline = Date().addingTimeInterval(30)
        while Date() < rowDeadline {
            status = try connection.query("SELECT status FROM conveyor.job_results WHERE jid = $1", [jid]).scalar
            if status != nil { break }
            usleep(50_000)
        }
        #expect(status == "succeeded", "job_results row for \(jid): \(status ?? "none")")
    }
}
