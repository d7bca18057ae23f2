import ConveyorCore

/// The parts of an S3 endpoint URL that requests are built from.
struct S3Endpoint: Sendable, Equatable {
    /// `http` or `https`.
    var scheme: String
    /// Host and port as they appear in the URL (and so in the `Host` header).
    var authority: String
    /// A path prefix before the bucket (usually empty), without a trailing slash.
    var basePath: String

    var base: String { "\(scheme)://\(authority)\(basePath)" }

    init(scheme: String, authority: String, basePath: String) {
        self.scheme = scheme
        self.authority = authority
        self.basePath = basePath
    }

    /// - Parameters:
    ///   - variable: the setting named in the error.
    init(parsing text: String, variable: String) throws(JobFailure) {
        let lower = text.lowercased()
        guard let range = lower.range(of: "://"), ["http", "https"].contains(String(lower[..<range.lowerBound])) else {
            throw .permanent(.invalidConfiguration, "\(variable)=\(text) must be an http:// or https:// URL")
        }
        scheme = String(lower[..<range.lowerBound])
        var rest = text[range.upperBound...]
        guard !rest.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0 == " " }) else {
            throw .permanent(.invalidConfiguration, "\(variable)=\(text) must be scheme://host[:port] without credentials, query or fragment")
        }
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        authority = String(rest[..<slash]).lowercased()
        basePath = String(rest[slash...])
        let host = authority.hasPrefix("[") ? authority : String(authority.prefix { $0 != ":" })
        guard !host.isEmpty else { throw .permanent(.invalidConfiguration, "\(variable)=\(text) has no host") }
        if !authority.hasPrefix("["), let colon = authority.firstIndex(of: ":") {
            guard let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port) else {
                throw .permanent(.invalidConfiguration, "\(variable)=\(text) has a bad port")
            }
        }
    }
}
