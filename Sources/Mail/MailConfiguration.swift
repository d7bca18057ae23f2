public import ConveyorCore
public import Foundation

/// Email settings read from the environment (see docs/configuration.md, Email).
public struct MailConfiguration: Sendable {
    public enum StartTLS: String, Sendable {
        /// `smtp://` must upgrade with STARTTLS or the send fails (permanent: a configuration error).
        case required
        /// Upgrade when the server offers it; plain text otherwise. Only for trusted networks.
        case optional
        /// Never upgrade: local test sinks only.
        case off
    }

    public struct SMTP: Sendable {
        /// `smtp://host:587` or `smtps://host:465`, without credentials.
        public var url: String
        public var username: String?
        public var password: String?
        public var startTLS: StartTLS
        public var connectTimeout: Duration
        /// Longest one send may take, DATA included (RFC 5321 gives servers 10 minutes to answer the final `.`).
        public var timeout: Duration
        /// CA certificates (PEM) to trust for the server instead of the system's.
        public var caFile: String?

        public init(url: String, username: String? = nil, password: String? = nil, startTLS: StartTLS = .required,
                    connectTimeout: Duration = .seconds(10), timeout: Duration = .seconds(120), caFile: String? = nil) {
            self.url = url
            self.username = username
            self.password = password
            self.startTLS = startTLS
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.caFile = caFile
        }
    }

    public var from: MailAddress
    public var replyTo: MailAddress?
    /// The right-hand side of generated Message-IDs.
    public var messageIDDomain: String
    public var templates: URL
    public var defaultLocale: String
    public var outbox: URL
    /// nil: write `.eml` files into `outbox`.
    public var smtp: SMTP?
    /// Messages per second across all worker processes; nil: unlimited.
    public var rateLimit: Int?
    /// Templates that are notifications: they need `data.unsubscribe_url` and get `List-Unsubscribe`.
    public var listTemplates: Set<String>
    /// Concurrent `email.send` jobs per process, and so SMTP connections per process.
    public var concurrency: Int
    /// How long a claimed ledger key stays held before another attempt may take it over.
    public var ledgerLease: Duration

    public init(from: MailAddress, replyTo: MailAddress? = nil, messageIDDomain: String? = nil, templates: URL, defaultLocale: String = "en",
                outbox: URL, smtp: SMTP? = nil, rateLimit: Int? = nil, listTemplates: Set<String> = ["notification"],
                concurrency: Int = 4, ledgerLease: Duration = .seconds(900)) {
        self.from = from
        self.replyTo = replyTo
        self.messageIDDomain = messageIDDomain ?? String(from.address.split(separator: "@").last ?? "localhost")
        self.templates = templates
        self.defaultLocale = defaultLocale
        self.outbox = outbox
        self.smtp = smtp
        self.rateLimit = rateLimit
        self.listTemplates = listTemplates
        self.concurrency = concurrency
        self.ledgerLease = ledgerLease
    }

    /// The repository's `templates/mail/`, found from the working directory or from this source file.
    public static var bundledTemplates: URL {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("templates/mail")
        if FileManager.default.fileExists(atPath: cwd.path) { return cwd }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("templates/mail")
    }

    /// Reads the configuration; a malformed value is a permanent `MailConfiguration` failure naming the variable.
    public init(environment env: [String: String]) throws(JobFailure) {
        func value(_ name: String) -> String? { env[name].flatMap { $0.isEmpty ? nil : $0 } }
        func int(_ name: String, _ fallback: Int, _ range: ClosedRange<Int>) throws(JobFailure) -> Int {
            guard let text = value(name) else { return fallback }
            guard let n = Int(text), range.contains(n) else {
                throw .permanent(.mailConfiguration, "\(name)=\(text.debugDescription) must be an integer in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        let from = try MailAddress(parsing: value("CONVEYOR_MAIL_FROM") ?? "Conveyor <no-reply@conveyor.localhost>", field: "CONVEYOR_MAIL_FROM")
        let replyTo = try value("CONVEYOR_MAIL_REPLY_TO").map { (text) throws(JobFailure) in try MailAddress(parsing: text, field: "CONVEYOR_MAIL_REPLY_TO") }
        var smtp: SMTP?
        if let raw = value("SMTP_URL") {
            smtp = try MailConfiguration.parseSMTP(raw, env: env)
            smtp?.connectTimeout = .seconds(try int("SMTP_CONNECT_TIMEOUT", 10, 1...300))
            smtp?.timeout = .seconds(try int("SMTP_TIMEOUT", 120, 1...900))
            smtp?.caFile = value("SMTP_CA_FILE")
        }
        let rate = try int("SMTP_RATE_LIMIT", 0, 0...100_000)
        self.init(
            from: from, replyTo: replyTo, messageIDDomain: value("CONVEYOR_MAIL_MESSAGE_ID_DOMAIN"),
            templates: value("CONVEYOR_MAIL_TEMPLATES").map { URL(fileURLWithPath: $0) } ?? MailConfiguration.bundledTemplates,
            defaultLocale: value("CONVEYOR_MAIL_DEFAULT_LOCALE") ?? "en",
            outbox: URL(fileURLWithPath: value("CONVEYOR_MAIL_OUTBOX") ?? ".run/mail"),
            smtp: smtp, rateLimit: rate > 0 ? rate : nil,
            listTemplates: Set((value("CONVEYOR_MAIL_LIST_TEMPLATES") ?? "notification").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }),
            concurrency: try int("CONVEYOR_MAIL_CONCURRENCY", 4, 1...256))
        if let domain = value("CONVEYOR_MAIL_MESSAGE_ID_DOMAIN") { try checkHeaderSafe(domain, field: "CONVEYOR_MAIL_MESSAGE_ID_DOMAIN") }
    }

    /// Splits credentials out of `SMTP_URL` (percent-decoded); `SMTP_USERNAME` / `SMTP_PASSWORD` win over them.
    static func parseSMTP(_ raw: String, env: [String: String]) throws(JobFailure) -> SMTP {
        guard var components = URLComponents(string: raw), let scheme = components.scheme?.lowercased(), scheme == "smtp" || scheme == "smtps",
            let host = components.host, !host.isEmpty
        else {
            throw .permanent(.mailConfiguration, "SMTP_URL must look like smtp://host:587 or smtps://user:pass@host:465")
        }
        let username = env["SMTP_USERNAME"].flatMap { $0.isEmpty ? nil : $0 } ?? components.user
        let password = env["SMTP_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 } ?? components.password
        components.user = nil
        components.password = nil
        let startTLSText = env["SMTP_STARTTLS"].flatMap { $0.isEmpty ? nil : $0 } ?? "required"
        guard let startTLS = StartTLS(rawValue: startTLSText) else {
            throw .permanent(.mailConfiguration, "SMTP_STARTTLS=\(startTLSText.debugDescription) must be required, optional or off")
        }
        return SMTP(url: components.string ?? raw, username: username, password: password, startTLS: startTLS)
    }
}
