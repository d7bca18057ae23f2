import Redis
import Testing

@Suite struct EndpointTests {
    @Test func tlsSchemeAndPercentDecodedUser() throws {
        let e = try RedisEndpoint(url: "rediss://conveyor:p%40ss%3Aword@cache.example.com:6380/2")
        #expect(e.address == .tcp(host: "cache.example.com", port: 6380))
        #expect(e.username == "conveyor")
        #expect(e.password == "p@ss:word")
        #expect(e.database == 2)
        #expect(e.tls == RedisTLS())
        #expect(e.description == "rediss://cache.example.com:6380/2")
        #expect(!e.description.contains("p@ss") && !e.description.contains("conveyor"))
    }

    @Test func plainURLsKeepTheirMeaning() throws {
        #expect(try RedisEndpoint(url: "redis://127.0.0.1:6390/0") == RedisEndpoint(address: .tcp(host: "127.0.0.1", port: 6390)))
        #expect(try RedisEndpoint(url: "redis://:secret@[::1]:7000").password == "secret")
        #expect(try RedisEndpoint(url: "redis://:secret@[::1]:7000").address == .tcp(host: "::1", port: 7000))
        #expect(try RedisEndpoint(url: "redis://") .address == .tcp(host: "127.0.0.1", port: 6379))
        #expect(try RedisEndpoint(url: "unix:///run/redis.sock?db=3") == RedisEndpoint(address: .unix(path: "/run/redis.sock"), database: 3))
        #expect(try RedisEndpoint(url: "redis://h:1/0").tls == nil)
    }

    @Test func sentinelURL() throws {
        let e = try RedisEndpoint(url: "redis+sentinel://app:pw@s1:26379,s2,[::1]:26380/mymaster/4")
        #expect(e.address == .sentinel(nodes: [.init(host: "s1", port: 26379), .init(host: "s2", port: 26379), .init(host: "::1", port: 26380)], master: "mymaster"))
        #expect(e.database == 4)
        #expect(e.username == "app" && e.password == "pw")
        #expect(e.tls == nil)
        #expect(e.description == "redis+sentinel://s1:26379,s2:26379,[::1]:26380/mymaster/4")
        let tls = try RedisEndpoint(url: "rediss+sentinel://s1/mymaster")
        #expect(tls.tls != nil && tls.database == 0)
    }

    @Test func badURLsAreRefusedWithoutThePassword() {
        for url in ["http://x", "redis://:hunter2@h:notaport", "redis+sentinel://:hunter2@s1:26379", "redis://:hunter2@h/x", "redis://:bad%zz@h"] {
            #expect(throws: RedisError.self) { try RedisEndpoint(url: url) }
            do { _ = try RedisEndpoint(url: url) } catch { #expect(!"\(error)".contains("hunter2"), "\(error)") }
        }
    }

    @Test func tlsSettingsFromTheEnvironment() throws {
        let env = ["CONVEYOR_REDIS_CA_FILE": "/etc/hostname", "CONVEYOR_REDIS_TLS_INSECURE": "1"]
        let e = try RedisEndpoint(url: "rediss://h", environment: env)
        #expect(e.tls == RedisTLS(caFile: "/etc/hostname", insecure: true))
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis://h", environment: env) }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "rediss://h", environment: ["CONVEYOR_REDIS_CERT_FILE": "/etc/hostname"]) }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "rediss://h", environment: ["CONVEYOR_REDIS_CA_FILE": "/nonexistent"]) }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "rediss://h", environment: ["CONVEYOR_REDIS_TLS_INSECURE": "maybe"]) }
        #expect(try RedisEndpoint(url: "redis://h", environment: [:]).tls == nil)
    }

    @Test func sentinelCredentialsComeFromTheEnvironmentAndNeedSentinels() throws {
        let e = try RedisEndpoint(
            url: "redis+sentinel://:data@s1/m",
            environment: ["CONVEYOR_REDIS_SENTINEL_USERNAME": "watcher", "CONVEYOR_REDIS_SENTINEL_PASSWORD": "s%ecret"])
        #expect(e.password == "data")
        #expect(e.sentinelUsername == "watcher")
        #expect(e.sentinelPassword == "s%ecret")
        #expect(!e.description.contains("s%ecret"))
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis://h", environment: ["CONVEYOR_REDIS_SENTINEL_PASSWORD": "x"]) }
        #expect(throws: RedisError.self) { try RedisEndpoint(url: "redis+sentinel://s1/m", environment: ["CONVEYOR_REDIS_SENTINEL_USERNAME": "u"]) }
    }
}
