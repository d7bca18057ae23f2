public import ConveyorCore

/// `push.send` and `push.fanout` (the Push family).
public enum PushSettings {
    public static let vapidPrivateKey = Setting("CONVEYOR_VAPID_PRIVATE_KEY", note: "none: push jobs fail with `PushConfiguration`", secret: true,
            doc: "The VAPID signing key (P-256): the path of a PEM file, or the key as PEM or base64url (the 32-byte private scalar web-push prints). `conveyor vapid generate` makes one and prints the public key the front end passes to `pushManager.subscribe`.")

    public static let vapidSubject = Setting("CONVEYOR_VAPID_SUBJECT", note: "required with a key",
            doc: "The JWT's `sub`: a `mailto:` or `https:` URL a push service can reach the operator at (RFC 8292).", check: { text in
            text.hasPrefix("mailto:") || text.hasPrefix("https://") ? nil : "expected a mailto: or https:// URL"
        })

    public static let vapidExpiration = Setting("CONVEYOR_VAPID_EXPIRATION", .int(60...86_400), default: "43200",
            doc: "Seconds a VAPID JWT is valid (its `exp`); at most 24 hours (RFC 8292). A token is reused per push service until half its life is left.")

    public static let pushConcurrency = Setting("CONVEYOR_PUSH_CONCURRENCY", .int(1...1024), default: "32",
            doc: "`push.send` jobs at once per process.")

    public static let pushTimeout = Setting("CONVEYOR_PUSH_TIMEOUT", .int(1...300), default: "30",
            doc: "Seconds for one POST to a push service (connect included); the job's timeout is this plus 30.")

    public static let pushAllowInsecureLoopback = Setting("CONVEYOR_PUSH_ALLOW_INSECURE_LOOPBACK", .onOff, default: "off",
            doc: "Tests only: also accept `http://127.0.0.1:port/...` endpoints (a local stand-in push service). Warned about at start-up; every other endpoint stays `https` to a public address.")

    public static let all = [vapidPrivateKey, vapidSubject, vapidExpiration, pushConcurrency, pushTimeout, pushAllowInsecureLoopback]

    public static let group = SettingGroup(
        "Web Push", note: "Push endpoints are untrusted: `https` only, no IP literals, no names resolving to loopback, private or link-local addresses (checked at connect), no redirects.", all)
}

/// The push family's settings, read from the effective environment.
public struct PushConfiguration: Sendable {
    public var key: VAPIDKey?
    public var subject: String?
    public var expiration: Int
    public var concurrency: Int
    public var timeout: Int
    public var allowInsecureLoopback: Bool

    public init(environment: [String: String]) throws(JobFailure) {
        if let value = environment[PushSettings.vapidPrivateKey.name], !value.isEmpty {
            do { key = try VAPIDKey(setting: value) } catch { throw .permanent(.invalidConfiguration, error.description) }
        }
        if let value = environment[PushSettings.vapidSubject.name], !value.isEmpty {
            guard value.utf8.count <= 512, !Job.containsControlCharacters(value), value.hasPrefix("mailto:") || value.hasPrefix("https://") else {
                throw .permanent(.invalidConfiguration, "CONVEYOR_VAPID_SUBJECT must be a mailto: or https:// URL of at most 512 bytes")
            }
            subject = value
        }
        if key != nil, subject == nil {
            throw .permanent(.invalidConfiguration, "CONVEYOR_VAPID_PRIVATE_KEY needs CONVEYOR_VAPID_SUBJECT (a mailto: or https:// contact, RFC 8292)")
        }
        expiration = try EnvironmentNumber.int(PushSettings.vapidExpiration.name, in: environment, default: 43_200, range: 60...86_400)
        concurrency = try EnvironmentNumber.int(PushSettings.pushConcurrency.name, in: environment, default: 32, range: 1...1024)
        timeout = try EnvironmentNumber.int(PushSettings.pushTimeout.name, in: environment, default: 30, range: 1...300)
        allowInsecureLoopback = try EnvironmentSwitch.value(PushSettings.pushAllowInsecureLoopback.name, in: environment, default: false)
    }
}
