public import ConveyorCore
public import Foundation

/// An RFC 5322 message ready to hand to a transport: validated envelope plus the exact bytes to send.
public struct MailMessage: Sendable {
    public var from: MailAddress
    public var to: MailAddress
    public var replyTo: MailAddress?
    public var subject: String
    public var text: String
    public var html: String
    /// The `Message-ID` value without angle brackets: `id-left@domain`.
    public var messageID: String
    public var date: Date
    /// `List-Unsubscribe` URL (https); adds `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
    public var unsubscribeURL: String?
    /// Extra headers (`X-Conveyor-Template`…), validated like every other value.
    public var extraHeaders: [(name: String, value: String)]

    public init(
        from: MailAddress, to: MailAddress, replyTo: MailAddress? = nil, subject: String, text: String, html: String,
        messageID: String, date: Date = Date(), unsubscribeURL: String? = nil, extraHeaders: [(name: String, value: String)] = []
    ) {
        self.from = from
        self.to = to
        self.replyTo = replyTo
        self.subject = subject
        self.text = text
        self.html = html
        self.messageID = messageID
        self.date = date
        self.unsubscribeURL = unsubscribeURL
        self.extraHeaders = extraHeaders
    }

    /// A `Message-ID` that depends only on the job's idempotency key (or jid), so every retry of the job sends
    /// the same one and a duplicate is recognisable. Keys outside the dot-atom alphabet are hex-encoded.
    public static func messageID(forKey key: String, domain: String) -> String {
        let safe = !key.isEmpty && key.utf8.count <= 128
            && key.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" }
        let left = safe ? key : "x" + key.utf8.map { String(format: "%02x", $0) }.joined()
        return "conveyor.\(left)@\(domain)"
    }

    /// RFC 5322 §3.3 date-time in UTC: `Sun, 22 Nov 2026 04:43:56 +0000`.
    public static func formatDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        return formatter.string(from: date)
    }

    /// The whole message with CRLF line ends: headers, then `multipart/alternative` with text/plain before
    /// text/html (RFC 2046 §5.1.4: increasing preference). Throws `HeaderInjection` for CR/LF in any header value.
    public func rendered(boundary: String? = nil) throws(JobFailure) -> [UInt8] {
        try checkHeaderSafe(subject, field: "subject")
        try checkHeaderSafe(messageID, field: "Message-ID")
        if let unsubscribeURL {
            try checkHeaderSafe(unsubscribeURL, field: "List-Unsubscribe URL")
            guard unsubscribeURL.hasPrefix("https://"), unsubscribeURL.count <= 900,
                unsubscribeURL.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "<" && $0 != ">" })
            else {
                throw .permanent(.invalidArguments, "unsubscribe URL \(unsubscribeURL.debugDescription) must be an https URL of printable ASCII without spaces or angle brackets")
            }
        }
        for header in extraHeaders {
            try checkHeaderSafe(header.value, field: header.name)
            guard !header.name.isEmpty, header.name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }) else {
                throw .headerInjection("header name \(header.name.debugDescription)", "characters outside printable ASCII or a colon")
            }
        }
        let textBytes = Array(text.utf8), htmlBytes = Array(html.utf8)
        let boundary = boundary ?? MailMessage.randomBoundary()

        var head = ""
        head += HeaderEncoding.field("From", HeaderEncoding.mailbox(from))
        head += HeaderEncoding.field("To", HeaderEncoding.mailbox(to))
        if let replyTo { head += HeaderEncoding.field("Reply-To", HeaderEncoding.mailbox(replyTo)) }
        head += HeaderEncoding.field("Subject", HeaderEncoding.unstructured(subject))
        head += HeaderEncoding.field("Date", [MailMessage.formatDate(date)])
        head += HeaderEncoding.field("Message-ID", ["<\(messageID)>"])
        if let unsubscribeURL {
            head += HeaderEncoding.field("List-Unsubscribe", ["<\(unsubscribeURL)>"])
            head += HeaderEncoding.field("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"])
        }
        for header in extraHeaders { head += HeaderEncoding.field(header.name, HeaderEncoding.unstructured(header.value)) }
        head += "MIME-Version: 1.0\r\n"
        head += HeaderEncoding.field("Content-Type", ["multipart/alternative;", "boundary=\"\(boundary)\""])
        head += "\r\n"
        // RFC 5322 §2.1.1: no line may pass 998 octets (a single unbreakable word in a subject could).
        for line in head.split(separator: "\r\n") where line.utf8.count > 998 {
            throw .permanent(.headerTooLong, "header line of \(line.utf8.count) octets starting \(String(line.prefix(40)).debugDescription) exceeds 998")
        }

        var body = "This is a multipart message in MIME format.\r\n"
        for (type, bytes) in [("text/plain", textBytes), ("text/html", htmlBytes)] {
            let encoding = BodyEncoding.choose(for: bytes)
            body += "\r\n--\(boundary)\r\n"
            body += "Content-Type: \(type); charset=UTF-8\r\n"
            body += "Content-Transfer-Encoding: \(encoding.rawValue)\r\n\r\n"
            body += encoding.encode(bytes)
        }
        body += "\r\n--\(boundary)--\r\n"
        return Array(head.utf8) + Array(body.utf8)
    }

    /// `=_` cannot occur in quoted-printable or base64 output, so the boundary never appears inside a part.
    static func randomBoundary() -> String {
        "=_conveyor_" + (0..<12).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }
}
