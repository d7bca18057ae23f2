import ArgumentParser
import ConveyorCore
import Foundation
import Images
import Logging
import Mail
import Operations
import Redis
import SidekiqQueue
import Storage
import Summaries
import Video
import Web

/// `conveyor config`: the configuration a worker started here would run with, every setting validated the way the
/// worker validates it, secrets masked. Exits 64 when a value cannot be used; warns about unknown `CONVEYOR_*`
/// names, so a typo does not pass silently.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Print the effective configuration (secrets masked) and check every setting.")

    @Flag(help: "One JSON object instead of a table.")
    var json = false

    @OptionGroup var redis: RedisOptions

    func run() throws {
        let environment = redis.environment(ProcessInfo.processInfo.environment)
        let errors = Settings.validate(environment)
        let unknown = Settings.unknown(in: environment)
        let rows = Settings.known.map { name -> (String, String, String) in
            guard let value = environment[name], !value.isEmpty else { return (name, "", "default") }
            return (name, Settings.masked(name, value), "environment")
        }
        if json {
            var o = JSONObject()
            o["version"] = .string(Conveyor.version)
            o["settings"] = .array(
                rows.map { name, value, source in
                    JSONValue.object(JSONObject([("name", .string(name)), ("value", source == "default" ? .null : .string(value)), ("source", .string(source))]))
                })
            o["unknown"] = .array(unknown.map { .string($0) })
            o["errors"] = .array(errors.map { .string(Settings.scrubbed($0, environment: environment)) })
            print(String(decoding: o.bytes, as: UTF8.self))
        } else {
            let width = rows.map(\.0.count).max() ?? 10
            for (name, value, source) in rows {
                let shown = source == "default" ? "(default)" : value
                print(name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + shown)
            }
        }
        for name in unknown {
            FileHandle.standardError.write(Data("warning: \(name) is not a Conveyor setting (a typo?); it is ignored\n".utf8))
        }
        for error in errors { FileHandle.standardError.write(Data("error: \(Settings.scrubbed(error, environment: environment))\n".utf8)) }
        if !errors.isEmpty { throw ExitCode(64) }
    }
}

/// Every setting Conveyor reads, and the checks `conveyor worker` applies to them at start-up.
enum Settings {
    static let known: [String] = [
        "REDIS_URL", "CONVEYOR_REDIS_CA_FILE", "CONVEYOR_REDIS_CERT_FILE", "CONVEYOR_REDIS_KEY_FILE", "CONVEYOR_REDIS_TLS_INSECURE",
        "CONVEYOR_REDIS_SENTINEL_USERNAME", "CONVEYOR_REDIS_SENTINEL_PASSWORD", "CONVEYOR_REDIS_WAIT_REPLICAS", "CONVEYOR_REDIS_WAIT_TIMEOUT_MS",
        "DATABASE_URL", "CONVEYOR_NAMESPACE", "CONVEYOR_QUEUES", "CONVEYOR_CONCURRENCY", "CONVEYOR_LOG_LEVEL",
        "CONVEYOR_LOG_FORMAT", "CONVEYOR_METRICS_ADDR", "CONVEYOR_METRICS_POLL_SECONDS",
        "CONVEYOR_RESULTS_BATCH", "CONVEYOR_RESULTS_BUFFER", "CONVEYOR_RESULTS_FLUSH_MS", "CONVEYOR_RESULTS_WRITERS",
        "CONVEYOR_MEDIA_ROOT", "CONVEYOR_MEDIA_STORE", "CONVEYOR_SCRATCH_DIR", "CONVEYOR_MEDIA_CACHE_CONTROL",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "CONVEYOR_S3_PATH_STYLE", "CONVEYOR_S3_CA_FILE", "CONVEYOR_S3_MULTIPART_MB",
        "CONVEYOR_S3_PART_MB", "CONVEYOR_S3_PARALLEL_PARTS", "CONVEYOR_S3_ALLOWED_BUCKETS",
        "CONVEYOR_IMAGE_MAX_MEGAPIXELS", "CONVEYOR_IMAGE_MAX_DIMENSION", "CONVEYOR_IMAGE_MAX_FILE_MB", "CONVEYOR_IMAGE_MAX_FRAMES",
        "CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS", "CONVEYOR_IMAGE_TIMEOUT_SECONDS", "CONVEYOR_IMAGE_WEBP_EFFORT",
        "CONVEYOR_IMAGE_AVIF_EFFORT", "CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD", "CONVEYOR_IMAGE_IN_PROCESS",
        "CONVEYOR_HELPERS", "CONVEYOR_HELPER_MAX_JOBS", "CONVEYOR_HELPER_MEMORY_MB", "CONVEYOR_HELPER_CPU_SECONDS",
        "CONVEYOR_HELPER_OPEN_FILES", "CONVEYOR_HELPER_SANDBOX", "CONVEYOR_HELPER_BIN", "VIPS_CONCURRENCY",
        "CONVEYOR_VIDEO_MAX_PIXELS", "CONVEYOR_VIDEO_MAX_DURATION", "CONVEYOR_AUDIO_MAX_DURATION", "CONVEYOR_VIDEO_MAX_FILE_MB", "CONVEYOR_VIDEO_PRESET", "CONVEYOR_VIDEO_CRF",
        "CONVEYOR_VIDEO_PROBE_TIMEOUT", "CONVEYOR_VIDEO_TRANSCODE_TIMEOUT", "CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY",
        "CONVEYOR_VIDEO_HELPERS", "CONVEYOR_VIDEO_HELPER_MEMORY_MB", "CONVEYOR_VIDEO_FFMPEG_LOG", "CONVEYOR_VIDEO_IN_PROCESS",
        "SMTP_URL", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS", "SMTP_CA_FILE", "SMTP_CONNECT_TIMEOUT", "SMTP_TIMEOUT",
        "SMTP_RATE_LIMIT", "CONVEYOR_MAIL_FROM", "CONVEYOR_MAIL_REPLY_TO", "CONVEYOR_MAIL_MESSAGE_ID_DOMAIN",
        "CONVEYOR_MAIL_TEMPLATES", "CONVEYOR_MAIL_DEFAULT_LOCALE", "CONVEYOR_MAIL_LIST_TEMPLATES", "CONVEYOR_MAIL_OUTBOX",
        "CONVEYOR_MAIL_CONCURRENCY",
        "CONVEYOR_LLM_PROVIDERS", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "CONVEYOR_LLM_OPENAI_MAX_TOKENS_FIELD",
        "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "CONVEYOR_LLM_TIMEOUT", "CONVEYOR_LLM_CONNECT_TIMEOUT",
        "CONVEYOR_LLM_MAX_INPUT_CHARS", "CONVEYOR_LLM_MAX_OUTPUT_TOKENS", "CONVEYOR_LLM_CACHE_TTL", "CONVEYOR_LLM_LOCK_TTL",
        "CONVEYOR_LLM_MODEL_ALIAS", "CONVEYOR_LLM_BREAKER_WINDOW", "CONVEYOR_LLM_BREAKER_MIN_CALLS",
        "CONVEYOR_LLM_BREAKER_FAILURE_RATE", "CONVEYOR_LLM_BREAKER_SLOW_CALL", "CONVEYOR_LLM_BREAKER_SLOW_RATE",
        "CONVEYOR_LLM_BREAKER_OPEN", "CONVEYOR_LLM_BREAKER_HALF_OPEN_CALLS", "CONVEYOR_LLM_AUTH_FAILURE_OPEN",
        "CONVEYOR_WEB_ADDR", "CONVEYOR_WEB_PASSWORD", "CONVEYOR_WEB_READ_ONLY", "CONVEYOR_WEB_REFRESH_SECONDS", "CONVEYOR_WEB_METRICS_URLS",
        "CONVEYOR_WEB_PAGE_SIZE", "CONVEYOR_WEB_HOSTS",
    ]

    /// Read by the project's scripts and tests, not by the worker: not reported as unknown.
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

    /// `CONVEYOR_*` names in `environment` that nothing reads.
    static func unknown(in environment: [String: String]) -> [String] {
        let all = Set(known).union(scripts)
        return environment.keys.filter { $0.hasPrefix("CONVEYOR_") && !all.contains($0) }.sorted()
    }

    /// Every problem with the settings, each naming its variable; empty when a worker would start.
    static func validate(_ environment: [String: String]) -> [String] {
        var errors: [String] = []
        func check(_ body: () throws -> Void) {
            do { try body() } catch let failure as JobFailure { errors.append(failure.message) } catch { errors.append("\(error)") }
        }
        check { _ = try EnvironmentNumber.int("CONVEYOR_CONCURRENCY", in: environment, default: 10, range: 1...10_000) }
        check { _ = try EnvironmentNumber.double("CONVEYOR_METRICS_POLL_SECONDS", in: environment, default: 5, range: 0.5...3600) }
        check { _ = try ResultStore.Configuration(environment: environment) }
        if let address = environment["CONVEYOR_METRICS_ADDR"], !address.isEmpty {
            check {
                do { _ = try MetricsServer.address(address) } catch {
                    throw JobFailure.permanent(.invalidConfiguration, "CONVEYOR_METRICS_ADDR=\(address): expected host:port with an IPv4 host, like 127.0.0.1:9464")
                }
            }
        }
        check { _ = try ReplicaWait(environment: environment) }
        if let url = environment["REDIS_URL"], !url.isEmpty {
            check { _ = try RedisEndpoint(url: url, environment: environment) }
        }
        if let text = environment["CONVEYOR_LOG_LEVEL"], !text.isEmpty, Logger.Level(rawValue: text.lowercased()) == nil {
            errors.append("CONVEYOR_LOG_LEVEL=\(text) is not one of trace, debug, info, notice, warning, error, critical")
        }
        if let text = environment["CONVEYOR_LOG_FORMAT"], !text.isEmpty, LineLogHandler.Format(rawValue: text.lowercased()) == nil {
            errors.append("CONVEYOR_LOG_FORMAT=\(text) is neither text nor json")
        }
        if let text = environment["CONVEYOR_QUEUES"], !text.isEmpty {
            check {
                do { _ = try QueueSelection(parsing: text) } catch { throw JobFailure.permanent(.invalidConfiguration, "CONVEYOR_QUEUES=\(text): \(error)") }
            }
        }
        // The images family's settings without its media root, which the worker would create when missing.
        var withoutRoot = environment
        withoutRoot["CONVEYOR_MEDIA_ROOT"] = nil
        check { _ = try ImagesConfiguration(environment: withoutRoot) }
        check { _ = try VideoConfiguration(environment: environment) }
        check {
            guard case .s3 = try MediaStoreSettings(environment: withoutRoot).kind else { return }
            _ = try S3Configuration(environment: environment)
        }
        check { _ = try MailConfiguration(environment: environment) }
        check { _ = try SummariesConfiguration(environment: environment) }
        check { _ = try WebConfiguration(environment: environment) }
        return errors
    }

    /// Names whose whole value is a secret.
    static let secretNameParts = ["KEY", "PASSWORD", "TOKEN", "SECRET"]
    /// Query parameters whose value is a secret (`sentinel_password=`, `password=`, `auth=`, `token=`...), matched
    /// case-insensitively as substrings of the parameter name.
    static let secretParameterParts = ["pass", "pwd", "secret", "token", "auth", "key", "credential"]

    /// A value as it may be shown, by one rule for every form: a secret-named variable is `****`; in a URL of any
    /// scheme (`redis://`, `rediss+sentinel://`, `redis+cluster://`, `postgres://`, `smtp://`...) the password of the
    /// userinfo is `****` (the whole userinfo when it has no `:`, as in `redis://PASSWORD@host`) and so is the value
    /// of every password-like query parameter; anything with an `@` that does not read as such a URL is `****`.
    static func masked(_ name: String, _ value: String) -> String {
        if secretNameParts.contains(where: { name.uppercased().contains($0) }) { return "****" }
        var secrets: [String] = []
        return maskedValue(value, secrets: &secrets)
    }

    /// `masked` for a value of any name; `secrets` gets what was hidden (as written and percent-decoded).
    static func maskedValue(_ value: String, secrets: inout [String]) -> String {
        func hidden(_ secret: Substring) {
            secrets.append(String(secret))
            if let plain = String(secret).removingPercentEncoding, plain != secret { secrets.append(plain) }
        }
        func whole() -> String {
            hidden(Substring(value))
            return "****"
        }
        // The fragment and query first: a `?` or `#` inside a password makes the rest unreadable, and then any `@`
        // left outside the userinfo makes the whole value unparsable.
        var main = Substring(value)
        var fragment: Substring?
        if let hash = main.firstIndex(of: "#") {
            fragment = main[main.index(after: hash)...]
            main = main[..<hash]
        }
        var query: Substring?
        if let mark = main.firstIndex(of: "?") {
            query = main[main.index(after: mark)...]
            main = main[..<mark]
        }
        var out = ""
        if let separator = main.range(of: "://") {
            let scheme = main[..<separator.lowerBound]
            guard !scheme.isEmpty, scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }) else {
                return value.contains("@") ? whole() : value
            }
            let rest = main[separator.upperBound...]
            let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            let path = rest[authorityEnd...]
            let ats = authority.filter { $0 == "@" }.count
            guard ats <= 1, !path.contains("@") else { return whole() }
            out = scheme + "://"
            if let at = authority.firstIndex(of: "@") {
                let userinfo = authority[..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    hidden(userinfo[userinfo.index(after: colon)...])
                    out += userinfo[..<colon] + ":****@"
                } else {
                    hidden(userinfo)
                    out += "****@"
                }
                out += authority[authority.index(after: at)...]
            } else {
                out += authority
            }
            out += path
        } else {
            guard !main.contains("@") else { return whole() }
            out = String(main)
        }
        if let query {
            var parameters: [String] = []
            for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard let equals = parameter.firstIndex(of: "=") else {
                    guard !parameter.contains("@") else { return whole() }
                    parameters.append(String(parameter))
                    continue
                }
                let key = parameter[..<equals]
                let plainKey = (String(key).removingPercentEncoding ?? String(key)).lowercased()
                if secretParameterParts.contains(where: { plainKey.contains($0) }) {
                    hidden(parameter[parameter.index(after: equals)...])
                    parameters.append(key + "=****")
                } else {
                    guard !parameter.contains("@") else { return whole() }
                    parameters.append(String(parameter))
                }
            }
            out += "?" + parameters.joined(separator: "&")
        }
        if let fragment {
            guard !fragment.contains("@") else { return whole() }
            out += "#" + fragment
        }
        return out
    }

    /// `text` (an error message) with every setting's value that `masked` would hide replaced by its masked form,
    /// then every secret inside one by `****`, so a message quoting a URL or a password cannot show it.
    static func scrubbed(_ text: String, environment: [String: String]) -> String {
        var out = text
        var secrets: [String] = []
        for (name, value) in environment where !value.isEmpty && known.contains(name) {
            if secretNameParts.contains(where: { name.contains($0) }) {
                secrets.append(value)
                continue
            }
            let shown = maskedValue(value, secrets: &secrets)
            if shown != value { out = out.replacingOccurrences(of: value, with: shown) }
        }
        for secret in secrets.sorted(by: { $0.count > $1.count }) where !secret.isEmpty {
            out = out.replacingOccurrences(of: secret, with: "****")
        }
        return out
    }
}
