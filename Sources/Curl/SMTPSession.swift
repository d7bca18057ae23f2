internal import CCurl
internal import CShims

/// One SMTP server reply: the code and the text of its last line(s).
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    /// 0 when no reply arrived.
    public var code: Int
    /// The reply text without the code, multi-line replies joined with "; ".
    public var text: String
    public var description: String { code == 0 ? "no reply" : "\(code) \(text)" }
}

/// A send that did not end with the server's 250 to the final `.`.
public struct SMTPSendError: Error, Sendable, CustomStringConvertible {
    public var curl: CurlError
    /// The last reply received (`CURLINFO_RESPONSE_CODE` plus the text libcurl passed to the header callback).
    public var reply: SMTPReply
    /// The message had been handed over completely (the server may have accepted it even though no reply came).
    public var dataSent: Bool
    public var description: String { "\(curl.message) (server: \(reply))" }
}

/// How an `SMTPSession` connects.
public struct SMTPSessionOptions: Sendable {
    /// `smtp://host:port` or `smtps://host:port`, no credentials.
    public var url: String
    public var username: String?
    public var password: String?
    /// `.all` makes STARTTLS mandatory on `smtp://`.
    public var useSSL: CurlUseSSL
    public var connectTimeout: Duration
    public var timeout: Duration
    /// false: close the connection after every message (`CURLOPT_FORBID_REUSE`), for comparison only.
    public var reuseConnection: Bool
    /// PEM file of CA certificates to trust instead of the system's (`CURLOPT_CAINFO`), for a private relay.
    public var caFile: String?

    public init(url: String, username: String? = nil, password: String? = nil, useSSL: CurlUseSSL = .all,
                connectTimeout: Duration = .seconds(10), timeout: Duration = .seconds(120), reuseConnection: Bool = true,
                caFile: String? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.useSSL = useSSL
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.reuseConnection = reuseConnection
        self.caFile = caFile
    }
}

/// Collects the server's reply lines that libcurl hands to the header callback during one transfer.
final class SMTPReplyLines {
    var lines: [String] = []
    var uploadDone = false
}

private let collectReply: curl_write_callback = { data, size, count, user in
    let n = size * count
    guard n > 0, let data, let user else { return n }
    let collector = Unmanaged<SMTPReplyLines>.fromOpaque(user).takeUnretainedValue()
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) { String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self) }
    collector.lines.append(String(line.filter { $0 != "\r" && $0 != "\n" && $0 != "\r\n" }))
    return n
}

/// An SMTP client connection: one `CurlEasy` handle whose kept-alive connection is reused from message to
/// message (the next send starts at `MAIL FROM`, skipping connect, TLS, EHLO and AUTH). Not thread-safe: one
/// session per sending thread.
public final class SMTPSession {
    public let options: SMTPSessionOptions
    private let easy: CurlEasy
    private let replies = SMTPReplyLines()
    /// Connections opened so far (1 when every message reused the first).
    public private(set) var connectionsOpened = 0
    public private(set) var messagesSent = 0

    public init(_ options: SMTPSessionOptions) throws(CurlError) {
        self.options = options
        easy = try CurlEasy()
        try easy.setOption(.url, options.url)
        try easy.setOption(.useSSL, options.useSSL.rawValue)
        if let username = options.username { try easy.setOption(.username, username) }
        if let password = options.password { try easy.setOption(.password, password) }
        try easy.setOption(.upload, 1)
        try easy.setOption(.maxConnects, 1)
        if !options.reuseConnection { try easy.setOption(.forbidReuse, 1) }
        if let caFile = options.caFile { try easy.setOption(.caInfo, caFile) }
        let me = Unmanaged.passUnretained(replies).toOpaque()
        _ = cshims_curl_setopt_write_function(easy.handle, CURLOPT_HEADERFUNCTION, collectReply)
        _ = cshims_curl_setopt_ptr(easy.handle, CURLOPT_HEADERDATA, me)
    }

    /// Sends one message to one recipient. Blocks; call it on a blocking thread.
    ///
    /// `message` is the RFC 5322 text with CRLF line ends; libcurl dot-stuffs it and adds the final `.`.
    /// `from` and `to` must be validated bare addresses: libcurl 7.88 does not refuse CR/LF in them.
    public func send(_ message: [UInt8], from: String, to: String, deadline: ContinuousClock.Instant? = nil) throws(SMTPSendError) -> SMTPReply {
        replies.lines.removeAll(keepingCapacity: true)
        let transferOptions = CurlTransferOptions(connectTimeout: options.connectTimeout, timeout: options.timeout, deadline: deadline, upload: message)
        do {
            try easy.setOption(.mailFrom, "<\(from)>")
            try easy.setOption(.mailRecipients, list: CurlStringList(["<\(to)>"]))
            try easy.setOption(.inFileSize, large: Int64(message.count))
            let transfer = try easy.perform(transferOptions)
            connectionsOpened += transfer.timing.newConnections
            messagesSent += 1
            return lastReply(code: transfer.responseCode)
        } catch {
            var code = 0
            _ = cshims_curl_getinfo_long(easy.handle, CURLINFO_RESPONSE_CODE, &code)
            var connects = 0
            _ = cshims_curl_getinfo_long(easy.handle, CURLINFO_NUM_CONNECTS, &connects)
            connectionsOpened += connects
            // A 354 (go ahead) as the last reply means the whole message may have reached the server.
            throw SMTPSendError(curl: error, reply: lastReply(code: code), dataSent: code == 354)
        }
    }

    /// The text of the reply carrying `code`, from the last lines collected.
    private func lastReply(code: Int) -> SMTPReply {
        guard code != 0 else { return SMTPReply(code: 0, text: "") }
        let prefix = String(code)
        var texts: [String] = []
        for line in replies.lines.reversed() {
            guard line.hasPrefix(prefix) else { if texts.isEmpty { continue } else { break } }
            let rest = line.dropFirst(prefix.count)
            if rest.first == " " && !texts.isEmpty { break }
            texts.insert(String(rest.dropFirst()), at: 0)
        }
        return SMTPReply(code: code, text: texts.joined(separator: "; "))
    }
}

@available(*, unavailable)
extension SMTPSession: Sendable {}
