import Foundation
import Redis
import Testing

/// `rediss://` against the TLS-only test Redis, which requires a client certificate.
@Suite struct TLSTests {
    @Test(arguments: ["localhost", "127.0.0.1"])
    func commandsAndAPipelineOverMutualTLS(host: String) throws {
        let redis = try RedisConnection(TestEnv.tls(host: host))
        let key = TestEnv.unique("tls")
        #expect(try redis.command("PING") == .status("PONG"))
        let big = [UInt8](repeating: 7, count: 1_000_000)
        try redis.command("SET", key, big).check()
        #expect(try redis.command("GET", key).bytes == big)
        let replies = try redis.pipeline((0..<2000).map { RedisCommand("RPUSH", key + ":l", $0) } + [RedisCommand("DEL", key, key + ":l")])
        #expect(replies[1999] == .integer(2000))
        #expect(replies[2000] == .integer(2))
    }

    @Test func threadOverTLS() async throws {
        let thread = RedisThread(try TestEnv.tls(), name: "tls-thread")
        defer { thread.stop() }
        #expect(try await thread.run { try $0.command("ECHO", "over tls").text } == "over tls")
    }

    @Test func anotherAuthorityIsRefused() throws {
        let message = failure { _ = try RedisConnection(TestEnv.tls(ca: TestEnv.value("CONVEYOR_TEST_REDIS_OTHER_CA_FILE"))) }
        #expect(message?.contains("certificate was refused") == true, "\(message ?? "no error")")
        #expect(message?.contains("issuer") == true || message?.contains("self-signed") == true, "\(message ?? "no error")")
    }

    @Test func systemAuthoritiesDoNotTrustTheTestCA() throws {
        guard case .tcp(_, let port) = try TestEnv.tls().address else { return }
        let message = failure { _ = try RedisConnection(RedisEndpoint(url: "rediss://localhost:\(port)")) }
        #expect(message?.contains("certificate was refused") == true, "\(message ?? "no error")")
    }

    @Test func expiredCertificateIsRefused() throws {
        let message = failure { _ = try RedisConnection(TestEnv.tls(url: TestEnv.value("CONVEYOR_TEST_REDIS_EXPIRED_URL"), certificate: false)) }
        #expect(message?.contains("certificate has expired") == true, "\(message ?? "no error")")
    }

    @Test func hostNameMismatchIsRefused() throws {
        // 127.0.0.2 reaches the same server, but the certificate names only localhost and 127.0.0.1.
        let message = failure { _ = try RedisConnection(TestEnv.tls(host: "127.0.0.2")) }
        #expect(message?.contains("IP address mismatch") == true, "\(message ?? "no error")")
    }

    @Test func insecureSkipsVerification() throws {
        let redis = try RedisConnection(TestEnv.tls(host: "127.0.0.2", ca: TestEnv.value("CONVEYOR_TEST_REDIS_OTHER_CA_FILE"), insecure: true))
        #expect(try redis.command("PING") == .status("PONG"))
    }

    @Test func serverRequiringAClientCertificateRefusesOneWithout() throws {
        let message = failure {
            let redis = try RedisConnection(TestEnv.tls(certificate: false))
            // TLS 1.3: the server checks the client's certificate after the handshake; the first read sees its alert.
            try redis.command("PING").check()
        }
        // The alert names it ("certificate required"), unless the server's reset arrived first and discarded it.
        #expect(message?.contains("certificate required") == true || message?.contains("set CONVEYOR_REDIS_CERT_FILE") == true, "\(message ?? "no error")")
    }

    @Test func plainTextToATLSPortFails() throws {
        guard case .tcp(_, let port) = try TestEnv.tls().address else { return }
        let message = failure {
            let redis = try RedisConnection(RedisEndpoint(address: .tcp(host: "127.0.0.1", port: port)), commandTimeout: 2)
            try redis.command("PING").check()
        }
        #expect(message != nil)
    }
}
