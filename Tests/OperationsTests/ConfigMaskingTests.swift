import Foundation
import Testing

/// `conveyor config` prints every setting with one masking rule for every URL form: no password (in the userinfo,
/// alone as `redis://PASSWORD@host`, or in a query parameter) and nothing unparsable with an `@` reaches its output,
/// table or JSON, stdout or stderr.
@Suite(.enabled(if: TestEnv.binary != nil && TestEnv.redisURL != nil, "needs CONVEYOR_BIN and REDIS_URL"))
struct ConfigMaskingTests {
    /// Each URL with the secrets it carries.
    static let forms: [(url: String, secrets: [String])] = [
        ("redis+sentinel://:SentPwA1@h1:26379,h2:26379/mymaster", ["SentPwA1"]),
        ("rediss+sentinel://ops:SentPwB2@h1:26379/mymaster?sentinel_password=SentQryB2&db=1", ["SentPwB2", "SentQryB2"]),
        ("redis+sentinel://h1:26379/mymaster?sentinel_password=SentQryC3", ["SentQryC3"]),
        ("redis+cluster://:ClusterPwD4@n1:6379,n2:6379", ["ClusterPwD4"]),
        ("rediss+cluster://ops:ClusterPwE5@n1:6379?password=ClusterQryE5", ["ClusterPwE5", "ClusterQryE5"]),
        ("redis://LonePwF6@127.0.0.1:6379/0", ["LonePwF6"]),
        ("redis://:Pct%40PwG7@127.0.0.1:6379/0", ["Pct%40PwG7", "Pct@PwG7"]),
        ("redis://:Two@AtsH8@host:6379", ["Two@AtsH8", "AtsH8"]),
        ("redis://:Slash/PwI9@host:6379", ["Slash/PwI9", "PwI9"]),
        ("redis://:Quest?PwJ10@host:6379", ["PwJ10"]),
        ("redis://:Hash#PwK11@host:6379", ["PwK11"]),
        ("not a url NoSchemeL12@host", ["NoSchemeL12"]),
        ("ops:BareM13@host:6379", ["BareM13"]),
        ("redis://127.0.0.1:6379/0?AUTH=QryAuthN14", ["QryAuthN14"]),
        ("postgres://ops:PgPwO15@127.0.0.1/db?sslpassword=PgQryO15", ["PgPwO15", "PgQryO15"]),
        ("smtps://mailer:SmtpP16@mail.example:465", ["SmtpP16"]),
    ]

    @Test func noSecretOfAnyURLFormReachesTheOutput() throws {
        for (url, secrets) in Self.forms {
            for variable in ["REDIS_URL", "DATABASE_URL", "SMTP_URL", "CONVEYOR_WEB_METRICS_URLS"] {
                for arguments in [["config"], ["config", "--json"]] {
                    let r = try TestEnv.conveyor(arguments, environment: [variable: url])
                    let all = r.out + r.err
                    #expect(r.code == 0 || r.code == 64, "\(variable)=\(url): exit \(r.code)")
                    #expect(!all.contains("Fatal error"))
                    for secret in secrets {
                        #expect(!all.contains(secret), "\(variable)=\(url) \(arguments) shows \(secret):\n\(all)")
                    }
                    #expect(all.contains(variable), "\(variable) is listed")
                }
            }
        }
    }

    @Test func maskingKeepsWhatIsNotSecret() throws {
        let r = try TestEnv.conveyor(["config"], environment: [
            "REDIS_URL": "rediss+sentinel://ops:pw@h1:26379,h2:26380/mymaster?sentinel_password=x&db=1",
            "DATABASE_URL": "redis://LonePw@127.0.0.1:6379/0",
        ])
        #expect(r.out.contains("rediss+sentinel://ops:****@h1:26379,h2:26380/mymaster?sentinel_password=****&db=1"), "\(r.out)")
        #expect(r.out.contains("redis://****@127.0.0.1:6379/0"), "\(r.out)")
    }
}
