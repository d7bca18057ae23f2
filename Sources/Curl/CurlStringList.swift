internal import CCurl

/// Owns a `curl_slist` (HTTP headers, SMTP recipients). Set it on a handle with
/// `CurlEasy.setOption(_:list:)`; the handle keeps the list alive while the option is set.
public final class CurlStringList {
    private(set) var head: UnsafeMutablePointer<curl_slist>?
    public private(set) var count = 0

    public init(_ items: [String] = []) {
        for item in items { append(item) }
    }

    /// Appends a copy of `item`.
    public func append(_ item: String) {
        if let next = curl_slist_append(head, item) {
            head = next
            count += 1
        }
    }

    deinit { curl_slist_free_all(head) }
}

@available(*, unavailable)
extension CurlStringList: Sendable {}
