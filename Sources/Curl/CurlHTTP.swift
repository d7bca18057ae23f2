/// One HTTP header field.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// An HTTP request for `CurlEasy.perform(_:)`.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]?
    /// A file range sent as the body instead of `body`, read while sending.
    public var bodyFile: CurlFileBody?
    /// Timeouts, deadline and response size cap; `upload` and `uploadFile` are taken from `body` and `bodyFile`.
    public var transfer: CurlTransferOptions
    /// PEM file of CA certificates to trust instead of the system's (`CURLOPT_CAINFO`).
    public var caFile: String?
    /// The URL's path is sent exactly as given (`CURLOPT_PATH_AS_IS`): signed requests must not see it rewritten.
    public var pathAsIs: Bool
    /// Checks every address before connecting, and allows only its schemes, no redirect and no proxy (untrusted URLs).
    public var connectFilter: CurlConnectFilter?

    public init(
        method: String = "GET", url: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil,
        transfer: CurlTransferOptions = CurlTransferOptions(), bodyFile: CurlFileBody? = nil, caFile: String? = nil,
        pathAsIs: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.bodyFile = bodyFile
        self.transfer = transfer
        self.caFile = caFile
        self.pathAsIs = pathAsIs
    }
}

/// An HTTP response of any status.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// Body bytes written to the request's `transfer.responseFile` (the body is then not in `body`).
    public var fileBytes: Int = 0
    public var timing: CurlTiming
    /// `retry-after-ms`, else `Retry-After` (seconds or an HTTP date, as libcurl reads it); nil when absent.
    public var retryAfter: Duration?

    /// The first header named `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

extension CurlEasy {
    /// Sends `request` on this handle (reusing its kept-alive connection when possible) and returns the
    /// response, whatever its status. Blocks: run it on a blocking thread.
    ///
    /// Throws `CurlError` for transport failures, timeouts and deadline aborts, and for header fields with
    /// CR, LF or NUL (libcurl would send them as they are).
    public func perform(_ request: HTTPRequest) throws(CurlError) -> HTTPResponse {
        reset()
        let safeURL = redactedURL(request.url)
        for header in request.headers {
            let bad = header.name.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 || $0 == 58 }
                || header.value.utf8.contains { $0 == 13 || $0 == 10 || $0 == 0 }
            if bad || header.name.isEmpty {
                throw CurlError(kind: .invalidRequest, code: 0,
                                message: "header \(header.name.debugDescription) has an empty name or contains CR, LF, NUL or ':'", url: safeURL)
            }
        }
        try setOption(.url, request.url)
        if request.pathAsIs { try setOption(.pathAsIs, 1) }
        if let filter = request.connectFilter { try apply(filter) }
        if let caFile = request.caFile { try setOption(.caInfo, caFile) }
        let method = request.method.uppercased()
        var transfer = request.transfer
        transfer.upload = nil
        transfer.uploadFile = nil
        switch method {
        case "GET": try setOption(.httpGet, 1)
        case "HEAD": try setOption(.noBody, 1)
        default:
            if let file = request.bodyFile {
                try setOption(.post, 1)
                try setOption(.postFieldSize, large: file.length)
                transfer.uploadFile = file
            } else if let body = request.body {
                try setOption(.post, 1)
                try setOption(.postFieldSize, large: Int64(body.count))
                transfer.upload = body
            }
            if method != "POST" { try setOption(.customRequest, method) }
        }
        let list = CurlStringList(request.headers.map { "\($0.name): \($0.value)" })
        // No "Expect: 100-continue" round trip before the body.
        list.append("Expect:")
        try setOption(.httpHeader, list: list)

        var raw: CurlTransfer
        do {
            raw = try perform(transfer)
        } catch {
            var error = error
            if error.url == nil { error.url = safeURL }
            throw error
        }
        var headers: [HTTPHeader] = []
        for line in raw.headerLines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = String(line[..<colon])
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers.append(HTTPHeader(name, String(value)))
        }
        var response = HTTPResponse(
            status: raw.responseCode, headers: headers, body: raw.body, fileBytes: raw.responseFileBytes, timing: raw.timing, retryAfter: nil)
        // A server's value, so clamped to a day: `inf` or `1e300` would trap the Duration conversion.
        let maxRetryAfterSeconds = 86_400
        if let ms = response.header("retry-after-ms").flatMap({ Double($0.trimmingSpaces) }), ms.isFinite, ms >= 0 {
            response.retryAfter = .milliseconds(min(ms, Double(maxRetryAfterSeconds) * 1000))
        } else if let seconds = raw.retryAfterSeconds {
            response.retryAfter = .seconds(min(max(seconds, 0), maxRetryAfterSeconds))
        }
        return response
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        let start = firstIndex { $0 != " " } ?? endIndex
        var end = endIndex
        while end > start, self[index(before: end)] == " " { end = index(before: end) }
        return self[start..<end]
    }
}
