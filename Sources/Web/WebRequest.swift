import Foundation

/// One HTTP request as the dashboard sees it, independent of the server that received it (the handler tests build
/// these directly; `WebServer` builds them from Hummingbird's requests).
public struct WebRequest: Sendable {
    public var method: String
    /// Path segments, percent-decoded (`/queues/a%2Fb` is `["queues", "a/b"]`).
    public var segments: [String]
    public var query: [String: [String]]
    /// `application/x-www-form-urlencoded` body fields (POST).
    public var form: [String: [String]]
    /// Header names lowercased.
    public var headers: [String: String]
    /// The peer's address, for the action log.
    public var remote: String

    public init(
        method: String, path: String, query: String = "", form: String = "", headers: [String: String] = [:], remote: String = "-"
    ) {
        self.method = method.uppercased()
        self.segments = path.split(separator: "/").map { FormCoding.decode(String($0), plusIsSpace: false) }
        self.query = FormCoding.parse(query)
        self.form = FormCoding.parse(form)
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        self.remote = remote
    }

    /// The first non-empty value of a query parameter.
    public func parameter(_ name: String) -> String? { query[name]?.first { !$0.isEmpty } }
    /// The first non-empty value of a form field.
    public func field(_ name: String) -> String? { form[name]?.first { !$0.isEmpty } }

    public var cookies: [String: String] {
        var out: [String: String] = [:]
        for part in (headers["cookie"] ?? "").split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, out[pair[0]] == nil { out[pair[0]] = pair[1] }
        }
        return out
    }
}

/// A response: status, headers, body.
public struct WebResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func html(_ text: String, status: Int = 200) -> WebResponse {
        WebResponse(status: status, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(text.utf8))
    }

    public static func text(_ text: String, status: Int) -> WebResponse {
        WebResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }

    /// 303 See Other: the browser follows with a GET, so a reload does not repeat the action.
    public static func redirect(_ location: String) -> WebResponse {
        WebResponse(status: 303, headers: [("Location", location)])
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// `application/x-www-form-urlencoded` in both directions.
public enum FormCoding {
    public static func parse(_ text: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for part in text.split(separator: "&") where !part.isEmpty {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(String(pair[0]), plusIsSpace: true)
            let value = pair.count > 1 ? decode(String(pair[1]), plusIsSpace: true) : ""
            out[name, default: []].append(value)
        }
        return out
    }

    /// Percent-decoding that never fails: a malformed escape stays as it is; invalid UTF-8 becomes U+FFFD.
    public static func decode(_ text: String, plusIsSpace: Bool) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        let utf8 = Array(text.utf8)
        var i = 0
        while i < utf8.count {
            let c = utf8[i]
            if c == UInt8(ascii: "%"), i + 2 < utf8.count, let h = hex(utf8[i + 1]), let l = hex(utf8[i + 2]) {
                bytes.append(h << 4 | l)
                i += 3
            } else {
                bytes.append(plusIsSpace && c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Encodes one query value or path segment.
    public static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// `a=1&b=2` from pairs, empty values left out.
    public static func query(_ pairs: [(String, String?)]) -> String {
        pairs.compactMap { name, value in
            guard let value, !value.isEmpty else { return nil }
            return encode(name) + "=" + encode(value)
        }.joined(separator: "&")
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
