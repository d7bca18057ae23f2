public import ConveyorCore

/// A bucket and a key prefix inside it: `CONVEYOR_MEDIA_STORE=s3://bucket[/prefix]`.
public struct S3Location: Sendable, Equatable {
    public var bucket: String
    /// Without leading or trailing slash; empty for the whole bucket.
    public var prefix: String

    public init(bucket: String, prefix: String = "") {
        self.bucket = bucket
        self.prefix = prefix
    }

    /// `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is dropped). The bucket must follow S3's naming
    /// rules; the prefix must have no empty, `.` or `..` segment and no control characters.
    public init(parsing text: String) throws(JobFailure) {
        guard text.hasPrefix("s3://") else {
            throw .permanent(.invalidConfiguration, "\(text.debugDescription) is not an s3://bucket[/prefix] location")
        }
        var rest = Substring(text.dropFirst(5))
        while rest.hasSuffix("/") { rest = rest.dropLast() }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        bucket = String(rest[..<slash])
        prefix = slash == rest.endIndex ? "" : String(rest[rest.index(after: slash)...])
        if let problem = Self.bucketNameProblem(bucket) {
            throw .permanent(.invalidConfiguration, "\(text): bucket name \(bucket.debugDescription) \(problem)")
        }
        if !prefix.isEmpty {
            let segments = prefix.split(separator: "/", omittingEmptySubsequences: false)
            if segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
                throw .permanent(.invalidConfiguration, "\(text): the prefix has an empty, . or .. segment")
            }
            if prefix.unicodeScalars.contains(where: { $0.value < 32 || $0.value == 127 }) {
                throw .permanent(.invalidConfiguration, "\(text): the prefix contains control characters")
            }
        }
    }

    /// The object key for `key` under the prefix.
    public func objectKey(_ key: String) -> String {
        prefix.isEmpty ? key : "\(prefix)/\(key)"
    }

    /// `s3://bucket` or `s3://bucket/prefix`, as `CONVEYOR_MEDIA_STORE` names it.
    public var url: String { "s3://" + bucket + (prefix.isEmpty ? "" : "/" + prefix) }

    /// Why `name` is not a valid S3 bucket name (general purpose buckets), or nil.
    static func bucketNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return "must be 3 to 63 characters long" }
        func isLowerOrDigit(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        guard bytes.allSatisfy({ isLowerOrDigit($0) || $0 == 46 || $0 == 45 }) else {
            return "may hold only lowercase letters, digits, dots and hyphens"
        }
        guard isLowerOrDigit(bytes.first!), isLowerOrDigit(bytes.last!) else { return "must begin and end with a letter or digit" }
        guard !name.contains("..") else { return "must not have two adjacent dots" }
        let octets = name.split(separator: ".")
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) { return "must not be formatted as an IP address" }
        if name.hasPrefix("xn--") || name.hasPrefix("sthree-") { return "must not begin with xn-- or sthree-" }
        if name.hasSuffix("-s3alias") || name.hasSuffix("--ol-s3") { return "must not end with -s3alias or --ol-s3" }
        return nil
    }
}
