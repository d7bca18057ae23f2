internal import CLibSSL
import Foundation

/// How a connection speaks TLS: which certificate authorities it trusts and which certificate it presents.
///
/// The server's certificate is always verified, host name included, unless `insecure` is set (tests only).
public struct RedisTLS: Sendable, Equatable {
    /// PEM file of the certificate authorities to trust; `nil` trusts the system's.
    public var caFile: String?
    /// PEM client certificate and its key, for servers that require mutual TLS (`tls-auth-clients yes`).
    public var certFile: String?
    public var keyFile: String?
    /// Accepts any server certificate. For tests against a throwaway server, never for production.
    public var insecure: Bool

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecure = insecure
    }
}

/// One OpenSSL client context (`SSL_CTX`): trusted authorities, client certificate, verification mode.
final class TLSContext {
    let handle: OpaquePointer

    init(_ tls: RedisTLS) throws(RedisError) {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw .connection("TLS: cannot create a context: \(Self.lastError())") }
        handle = ctx
        _ = conveyor_ssl_ctx_set_min_tls12(ctx)
        if let caFile = tls.caFile {
            guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
                throw .connection("TLS: cannot load the certificate authorities in \(caFile) (CONVEYOR_REDIS_CA_FILE): \(Self.lastError())")
            }
        } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
            throw .connection("TLS: cannot load the system's certificate authorities: \(Self.lastError())")
        }
        if let certFile = tls.certFile {
            guard SSL_CTX_use_certificate_chain_file(ctx, certFile) == 1 else {
                throw .connection("TLS: cannot load the client certificate \(certFile) (CONVEYOR_REDIS_CERT_FILE): \(Self.lastError())")
            }
            let keyFile = tls.keyFile ?? certFile
            guard SSL_CTX_use_PrivateKey_file(ctx, keyFile, SSL_FILETYPE_PEM) == 1 else {
                throw .connection("TLS: cannot load the client key \(keyFile) (CONVEYOR_REDIS_KEY_FILE): \(Self.lastError())")
            }
            guard SSL_CTX_check_private_key(ctx) == 1 else {
                throw .connection("TLS: the client key \(keyFile) does not match the certificate \(certFile)")
            }
        }
        SSL_CTX_set_verify(ctx, tls.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nil)
    }

    deinit { SSL_CTX_free(handle) }

    /// The oldest error on this thread's OpenSSL error queue, and clears the queue.
    static func lastError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "unknown error" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

@available(*, unavailable)
extension TLSContext: Sendable {}
