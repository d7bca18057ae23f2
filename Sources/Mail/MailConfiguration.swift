public import ConveyorCore
public import Foundation

/// Email settings, read from the one reader (see docs/configuration.md, Email).
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
    /// Messages per second to one recipient domain, across every process (`SMTP_RATE_LIMIT_PER_DOMAIN`); nil: none.
    public var domainRateLimit: Int?
    /// Templates that are notifications: they need `data.unsubscribe_url` and get `List-Unsubscribe`.
    public var listTemplates: Set<String>
    /// Concurrent `email.send` jobs per process, and so SMTP connections per process.
    public var concurrency: Int
    /// How long a claimed ledger key stays held before another attempt may take it over.
    public var ledgerLease: Duration

    public init(from: MailAddress, replyTo: MailAddress? = nil, messageIDDomain: String? = nil, templates: URL, defaultLocale: String = "en",
                outbox: URL, smtp: SMTP? = nil, rateLimit: Int? = nil, domainRateLimit: Int? = nil, listTemplates: Set<String> = ["notification"],
                concurrency: Int = 4, ledgerLease: Duration = .seconds(900)) {
        self.from = from
        self.replyTo = replyTo
        self.messageIDDomain = messageIDDomain ?? String(from.address.split(separator: "@").last ?? "localhost")
        self.templates = templates
        self.defaultLocale = defaultLocale
        self.outbox = outbox
        self.smtp = smtp
        self.rateLimit = rateLimit
        self.domainRateLimit = domainRateLimit
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

    /// Reads `MailSettings` from the one reader; a refused or malformed value is a permanent `MailConfiguration`
    /// failure naming the setting and its source.
    public init(settings: SettingsReader) throws(JobFailure) {
        typealias M = MailSettings
        try settings.refuse(M.all, as: .mailConfiguration)
        let from = try MailAddress(parsing: settings.text(M.mailFrom) ?? M.mailFrom.defaultValue!, field: M.mailFrom.name)
        let replyTo = try settings.text(M.mailReplyTo).map { (text) throws(JobFailure) in try MailAddress(parsing: text, field: M.mailReplyTo.name) }
        var smtp: SMTP?
        if let raw = settings.text(M.smtpUrl) {
            smtp = try MailConfiguration.parseSMTP(raw, settings: settings)
            smtp?.connectTimeout = .seconds(settings.int(M.smtpConnectTimeout))
            smtp?.timeout = .seconds(settings.int(M.smtpTimeout))
            smtp?.caFile = settings.text(M.smtpCaFile)
        }
        let rate = settings.int(M.smtpRateLimit)
        let domain = settings.text(M.mailMessageIdDomain)
        self.init(
            from: from, replyTo: replyTo, messageIDDomain: domain,
            templates: settings.text(M.mailTemplates).map { URL(fileURLWithPath: $0) } ?? MailConfiguration.bundledTemplates,
            defaultLocale: settings.text(M.mailDefaultLocale) ?? "en",
            outbox: URL(fileURLWithPath: settings.text(M.mailOutbox) ?? ".run/mail"),
            smtp: smtp, rateLimit: rate > 0 ? rate : nil, domainRateLimit: settings.int(M.smtpRateLimitPerDomain) > 0 ? settings.int(M.smtpRateLimitPerDomain) : nil,
            listTemplates: Set(settings.list(M.mailListTemplates)),
            concurrency: settings.int(M.mailConcurrency))
        if let domain { try checkHeaderSafe(domain, field: M.mailMessageIdDomain.name) }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
    }

    /// Splits credentials out of `SMTP_URL` (percent-decoded); `SMTP_USERNAME` / `SMTP_PASSWORD` win over them.
    static func parseSMTP(_ raw: String, settings: SettingsReader) throws(JobFailure) -> SMTP {
        typealias M = MailSettings
        guard var components = URLComponents(string: raw), let scheme = components.scheme?.lowercased(), scheme == "smtp" || scheme == "smtps",
            let host = components.host, !host.isEmpty
        else {
            throw .permanent(.mailConfiguration, "\(M.smtpUrl.name) must look like smtp://host:587 or smtps://user:pass@host:465")
        }
        let username = settings.text(M.smtpUsername) ?? components.user
        let password = settings.text(M.smtpPassword) ?? components.password
        components.user = nil
        components.password = nil
        // The declaration allows only these words.
        let startTLS = StartTLS(rawValue: (settings.text(M.smtpStarttls) ?? "required").lowercased()) ?? .required
        return SMTP(url: components.string ?? raw, username: username, password: password, startTLS: startTLS)
    }
}
