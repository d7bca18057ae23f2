public import ConveyorCore
public import Curl
import Foundation
import Synchronization

/// Sends one encrypted, VAPID-signed push with libcurl, on blocking threads, to an endpoint checked again at connect.
public final class PushSender: Sendable {
    /// A push service's answer is small (an id, a reason): anything longer is cut off, never read whole.
    public static let maxResponseBytes = 64 * 1024

    public let configuration: PushConfiguration
    private let pool: BlockingPool
    private let handles: CurlHandlePool
    /// Signed tokens per origin (`aud`), reused until half their life is left; bounded, as origins come from outside.
    private let tokens = Mutex<[String: (authorization: String, expiresAt: Int)]>([:])

    public init(configuration: PushConfiguration) {
        self.configuration = configuration
        pool = BlockingPool(name: "conveyor-push", maximumThreads: configuration.concurrency)
        handles = CurlHandlePool(maximumIdle: configuration.concurrency)
    }

    /// What the push service answered, or why nothing was sent.
    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public var retryAfter: Duration?
        public var location: String?
    }

    /// POSTs `request`: the payload encrypted for its subscription, `TTL`, `Urgency`, `Topic`, VAPID authorization.
    /// Throws a permanent `PushEndpointRefused` when every address of the endpoint's host was refused at connect,
    /// a transient `PushTransport` when the service could not be reached.
    public func send(_ request: PushSendRequest, deadline: ContinuousClock.Instant) async throws(JobFailure) -> Answer {
        guard let key = configuration.key, let subject = configuration.subject else {
            throw .permanent(.pushConfiguration, "no VAPID key: set CONVEYOR_VAPID_PRIVATE_KEY and CONVEYOR_VAPID_SUBJECT (conveyor vapid generate)")
        }
        var headers = [HTTPHeader("TTL", String(request.ttl))]
        if let urgency = request.urgency { headers.append(HTTPHeader("Urgency", urgency)) }
        if let topic = request.topic { headers.append(HTTPHeader("Topic", topic)) }
        var body: [UInt8] = []
        if let payload = request.payload {
            do {
                body = try WebPushEncryption.encrypt(payload, userAgentKey: request.userAgentKey, authSecret: request.authSecret)
            } catch {
                throw .permanent(.payloadTooLarge, "\(error)")
            }
            headers.append(HTTPHeader("Content-Encoding", "aes128gcm"))
            headers.append(HTTPHeader("Content-Type", "application/octet-stream"))
        }
        do {
            headers.append(HTTPHeader("Authorization", try authorization(key: key, subject: subject, audience: request.endpoint.origin)))
        } catch {
            throw .permanent(.pushConfiguration, "could not sign the VAPID token: \(error)")
        }
        let filter = CurlConnectFilter(
            schemes: request.endpoint.isInsecureLoopback ? ["http"] : ["https"], allowLoopback: request.endpoint.isInsecureLoopback)
        let http = HTTPRequest(
            method: "POST", url: request.endpoint.url, headers: headers, body: body,
            transfer: CurlTransferOptions(
                connectTimeout: .seconds(min(10, configuration.timeout)), timeout: .seconds(configuration.timeout), deadline: deadline,
                maxResponseBytes: Self.maxResponseBytes))
        var withFilter = http
        withFilter.connectFilter = filter
        let prepared = withFilter
        let handles = self.handles
        let outcome: Result<HTTPResponse, CurlError>
        do {
            outcome = try await pool.run { () -> Result<HTTPResponse, CurlError> in
                do {
                    return .success(try handles.withHandle { easy in try easy.perform(prepared) })
                } catch let error as CurlError {
                    return .failure(error)
                }
            }
        } catch {
            throw .transient(.pushTransport, "\(request.endpoint.origin): \(error)")
        }
        switch outcome {
        case .success(let response):
            return Answer(status: response.status, body: response.body, retryAfter: response.retryAfter,
                          location: response.header("location").map { String($0.prefix(512)) })
        case .failure(let error):
            let refused = filter.refused
            if !refused.isEmpty {
                throw .permanent(.pushEndpointRefused,
                                 "subscription.endpoint host \(request.endpoint.host) resolves only to refused addresses: \(refused.joined(separator: ", ")); no connection was made")
            }
            if error.kind == .responseTooLarge {
                throw .transient(.pushTransport, "\(request.endpoint.origin): response over \(Self.maxResponseBytes) bytes")
            }
            throw .transient(.pushTransport, "\(request.endpoint.origin): \(error.message)")
        }
    }

    /// `vapid t=…, k=…` for `audience`, from the cache while it has at least half its life left.
    func authorization(key: VAPIDKey, subject: String, audience: String) throws -> String {
        let now = Saturating.int(Date().timeIntervalSince1970)
        if let cached = tokens.withLock({ $0[audience] }), cached.expiresAt - now > configuration.expiration / 2 {
            return cached.authorization
        }
        let expiresAt = now + configuration.expiration
        let value = try key.authorization(audience: audience, subject: subject, expiresAt: expiresAt)
        tokens.withLock { cache in
            if cache.count >= 4096 { cache.removeAll() }
            cache[audience] = (value, expiresAt)
        }
        return value
    }
}
