import BullMQQueue
import ConveyorCore
import Foundation
import Images
import Mail
import Operations
import Push
import Redis
import Schedules
import SidekiqQueue
import Storage
import Summaries
import Telemetry
import Media
import Web

/// Every setting of this build, one group per configuration type, and what derives from them: the one reader, the
/// checks every command shares, the docs table and the example conveyor.yml. A new setting is one declaration in
/// its group; a new group is one line here.
enum Catalogue {
    static let groups: [SettingGroup] = [
        WorkerSettings.group, RedisSettings.group, OperationsSettings.group, WebSettings.group, MediaSettings.group,
        ImagesSettings.group, VideoSettings.group, MailSettings.group, SummariesSettings.group, BullMQSettings.group, PushSettings.group,
        TracingSettings.group,
    ]

    static let settings: [Setting] = groups.flatMap(\.settings)

    /// Read by the project's scripts and tests, not by Conveyor: not warned about.
    static let scripts: Set<String> = [
        "CONVEYOR_BIN", "CONVEYOR_TEST_TIMEOUT", "CONVEYOR_REDIS_PORT", "CONVEYOR_PG_PORT", "CONVEYOR_BENCH_CONCURRENCY",
        "CONVEYOR_S3_PORT", "CONVEYOR_TEST_S3_ENDPOINT", "CONVEYOR_TEST_S3_ACCESS_KEY", "CONVEYOR_TEST_S3_SECRET_KEY",
        "CONVEYOR_REDIS_TLS_PORT", "CONVEYOR_REDIS_EXPIRED_PORT", "CONVEYOR_SENTINEL_PORT", "CONVEYOR_TEST_REDIS_TLS_URL",
        "CONVEYOR_TEST_REDIS_EXPIRED_URL", "CONVEYOR_TEST_REDIS_CA_FILE", "CONVEYOR_TEST_REDIS_OTHER_CA_FILE",
        "CONVEYOR_TEST_REDIS_CERT_FILE", "CONVEYOR_TEST_REDIS_KEY_FILE", "CONVEYOR_TEST_REDIS_SOCKET", "CONVEYOR_TEST_SENTINEL_URL",
        "CONVEYOR_SENTINEL_TLS_PORT", "CONVEYOR_TEST_TLS_SENTINEL_URL", "CONVEYOR_TEST_SENTINEL_PASSWORD",
        "CONVEYOR_REDIS_CLUSTER_PORT", "CONVEYOR_TEST_REDIS_CLUSTER_URL", "CONVEYOR_REDIS_TLS_CLUSTER_PORT",
        "CONVEYOR_TEST_REDIS_TLS_CLUSTER_URL",
    ]

    /// The one reader: `flags` first, then the process environment, then the config file that `--config` or
    /// `CONVEYOR_CONFIG_FILE` names.
    static func reader(flags: [String: SettingsReader.FlagValue]) -> SettingsReader {
        let environment = ProcessInfo.processInfo.environment
        let path = flags[WorkerSettings.configFile.name]?.value ?? environment[WorkerSettings.configFile.name].flatMap { $0.isEmpty ? nil : $0 }
        let file = path.map { SettingsFile(path: $0) }
        return SettingsReader(catalogue: settings, flags: flags, environment: environment, file: file, ignoring: scripts)
    }

    /// Every check `conveyor worker` and `conveyor web` make before they start, added to `reader.problems`: the
    /// declarations' (already there), then each configuration type's own, fed the effective values.
    /// The worker leaves out the dashboard's own rules (a password for a non-loopback address): a worker pod may
    /// carry the dashboard's settings without running it. `conveyor config` checks everything both check.
    static func checkEverything(_ reader: inout SettingsReader, dashboard: Bool = true) {
        let environment = reader.effectiveEnvironment
        func check(_ body: () throws -> Void) {
            do { try body() } catch let failure as JobFailure { reader.add(problem: failure.message) } catch { reader.add(problem: "\(error)") }
        }
        // Values the declarations already refused are not reported twice through the types that read them.
        let refused = Set(reader.problemSettings)
        func clean(_ names: [Setting]) -> Bool { !names.contains { refused.contains($0.name) } }

        checkRedis(&reader)
        // The images family's settings without its media root, which the worker would create when missing.
        var withoutRoot = environment
        withoutRoot[MediaSettings.mediaRoot.name] = nil
        if clean(ImagesSettings.all) { check { _ = try ImagesConfiguration(environment: withoutRoot) } }
        if clean(VideoSettings.all) { check { _ = try VideoConfiguration(environment: environment) } }
        if clean(MediaSettings.all) {
            check {
                guard case .s3 = try MediaStoreSettings(environment: withoutRoot).kind else { return }
                _ = try S3Configuration(environment: environment)
            }
        }
        if clean(MailSettings.all) { check { _ = try MailConfiguration(environment: environment) } }
        if clean(SummariesSettings.all) { check { _ = try SummariesConfiguration(environment: environment) } }
        if clean(PushSettings.all) { check { _ = try PushConfiguration(environment: environment) } }
        if dashboard, clean(WebSettings.all) { check { _ = try WebConfiguration(settings: reader) } }
        // The file's schedules:, exactly as `conveyor worker` checks them before it starts (classes from the static table).
        if let file = reader.file {
            let (schedules, problems) = Schedule.check(file) { Composition.classQueues[$0] }
            for problem in problems { reader.add(problem: problem) }
            if !schedules.isEmpty, clean(RedisSettings.all), RedisOptions.keys(reader).cluster {
                reader.add(problem: "\(file.path): schedules are not supported on a Redis Cluster yet")
            }
            // And its limits:, as the worker checks them.
            let (limits, limitProblems) = FlowLimit.check(file) { Composition.classQueues[$0] != nil }
            for problem in limitProblems { reader.add(problem: problem) }
            if !limits.isEmpty, clean(RedisSettings.all), RedisOptions.keys(reader).cluster {
                reader.add(problem: "\(file.path): limits are not supported on a Redis Cluster yet")
            }
        }
    }

    /// The rules between the Redis settings (TLS files need `rediss://`, sentinel credentials need sentinels), added
    /// to `reader.problems` naming where each value came from: what every command that connects checks.
    static func checkRedis(_ reader: inout SettingsReader) {
        guard !reader.problemSettings.contains(where: { name in RedisSettings.all.contains { $0.name == name } }) else { return }
        do { _ = try RedisEndpoint(settings: reader) } catch { reader.add(problem: "\(error)") }
        do { _ = try ReplicaWait(settings: reader) } catch { reader.add(problem: error.message) }
    }

    /// The reference tables of docs/configuration.md (`conveyor config --markdown`).
    static func markdown() -> String {
        var out = ""
        for group in groups {
            out += "### \(group.title)\n\n"
            if let note = group.note { out += note + "\n\n" }
            out += "| Variable | File key | Flag | Default | Allowed | Meaning |\n|---|---|---|---|---|---|\n"
            for s in group.settings {
                let cells = [
                    "`\(s.name)`", s.key.isEmpty ? "" : "`\(s.key)`", s.flag.map { "`\($0)`" } ?? "", defaultCell(s), allowedCell(s),
                    s.doc + (s.secret ? " Secret: shown as `****`." : ""),
                ]
                out += "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
            }
            out += "\n"
        }
        return out
    }

    private static func defaultCell(_ s: Setting) -> String {
        switch (s.defaultValue, s.defaultNote) {
        case (let value?, let note?): return "`\(value)` (\(note))"
        case (let value?, nil): return "`\(value)`"
        case (nil, let note?): return note
        case (nil, nil): return "unset"
        }
    }

    private static func allowedCell(_ s: Setting) -> String {
        switch s.kind {
        case .text: return ""
        case .choice(let words): return words.map { "`\($0)`" }.joined(separator: ", ")
        case .int(let r): return "\(r.lowerBound)-\(r.upperBound)"
        case .number(let r): return "\(Self.plain(r.lowerBound))-\(Self.plain(r.upperBound))"
        case .duration(let r): return "\(Setting.describe(seconds: r.lowerBound))-\(Setting.describe(seconds: r.upperBound))"
        case .onOff: return "`on`, `off`"
        case .url(let schemes): return schemes.map { "`\($0)://`" }.joined(separator: ", ")
        case .list: return "comma-separated"
        }
    }

    private static func plain(_ n: Double) -> String {
        if let i = Int(exactly: n) { return String(i) }
        var text = String(format: "%.6f", n)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// A conveyor.yml with every setting at its default, commented out, under its group (`conveyor config --example`):
    /// documentation lines start with `##`, settings with `# key:`, so removing `# ` from the latter sets them.
    static func example() -> String {
        var out = """
            ## conveyor.yml: every Conveyor setting at its default. Remove the "# " before a setting to change it;
            ## flags and environment variables win over this file. Use: conveyor worker --config conveyor.yml (or
            ## CONVEYOR_CONFIG_FILE=conveyor.yml). Keep secrets in the environment rather than here. Periodic jobs go in a
            ## schedules: block (docs/schedules.md), for example:
            ##   schedules:
            ##     nightly-digest:
            ##       cron: "30 2 * * * Europe/Berlin"
            ##       class: email.send
            ##       args: {template: digest, to: ops@example.net}
            ##       catch_up: latest
            ## Per-key concurrency and rate limits go in a limits: block (docs/jobs.md#limits), for example:
            ##   limits:
            ##     per-tenant:
            ##       classes: [media.ingest, image.thumbnail]
            ##       key: args.tenant
            ##       concurrency: 2
            ##       rate: 30/1m

            """
        for group in groups {
            out += "\n## \(group.title.replacingOccurrences(of: "`", with: ""))\n"
            for s in group.settings where !s.key.isEmpty {
                out += "\n## \(plainText(s.doc))\n"
                var meta = "## \(s.name)"
                if let flag = s.flag { meta += ", \(flag)" }
                if case .text = s.kind {} else { meta += "; \(s.allowed)" }
                if s.secret { meta += "; secret" }
                out += meta + "\n"
                if let value = s.defaultValue {
                    out += "# \(s.key): \(yamlScalar(value))\n"
                } else {
                    out += "# \(s.key):" + (s.defaultNote.map { "   ## default: \(plainText($0))" } ?? "") + "\n"
                }
            }
        }
        return out
    }

    /// Documentation text for a YAML comment: one line, without Markdown's backticks.
    private static func plainText(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "`", with: "").split(whereSeparator: \.isNewline).joined(separator: " ")
        return flat.count > 300 ? String(flat.prefix(297)) + "..." : flat
    }

    /// `value` quoted when YAML would otherwise read it differently.
    static func yamlScalar(_ value: String) -> String {
        let plainSafe = !value.isEmpty && value.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._/-+".unicodeScalars.contains($0) }
            && !["on", "off", "yes", "no", "true", "false", "null", "~"].contains(value.lowercased())
        if plainSafe { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
