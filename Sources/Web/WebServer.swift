import Foundation
public import Hummingbird
public import Logging
import HTTPTypes
import NIOCore

/// Serves a `Dashboard` over HTTP/1.1 with Hummingbird: turns each request into a `WebRequest` (body capped at
/// 1 MiB) and the dashboard's `WebResponse` back.
public enum WebServer {
    public typealias App = Application<CallbackResponder<WebContext>>

    /// The application, ready to run in a service group (it stops on graceful shutdown).
    /// - Parameter onRunning: called with the bound port once the server listens (useful with port 0).
    public static func application(
        _ dashboard: Dashboard, logger: Logger, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> App {
        let responder = CallbackResponder<WebContext> { request, context in
            var request = request
            var form = ""
            if request.method == .post {
                let body = try await request.collectBody(upTo: 1 << 20)
                form = String(buffer: body)
            }
            var headers: [String: String] = [:]
            // HTTP/1's Host arrives as the request's authority, not among the header fields.
            if let authority = request.head.authority { headers["host"] = authority }
            for field in request.headers {
                let name = field.name.canonicalName
                if let existing = headers[name] { headers[name] = existing + (name == "cookie" ? "; " : ", ") + field.value } else { headers[name] = field.value }
            }
            let web = WebRequest(
                method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "", form: form, headers: headers,
                remote: context.remote)
            let answer = await dashboard.respond(web)
            var fields = HTTPFields()
            for (name, value) in answer.headers {
                if let n = HTTPField.Name(name) { fields.append(HTTPField(name: n, value: value)) }
            }
            return Response(
                status: HTTPResponse.Status(code: answer.status), headers: fields,
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
        }
        return Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname(dashboard.configuration.host, port: dashboard.configuration.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? dashboard.configuration.port
                dashboard.listening(on: port)
                await onRunning(port)
            },
            logger: logger)
    }
}

/// The request context: Hummingbird's, plus the peer's address for the action log.
public struct WebContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remote: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        remote = source.channel.remoteAddress?.ipAddress ?? "-"
    }
}
