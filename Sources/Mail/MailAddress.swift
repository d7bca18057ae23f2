public import ConveyorCore
import Foundation

/// A validated mailbox: `local@domain` in the RFC 5321 subset Conveyor sends to, plus an optional display name.
///
/// The same validated value feeds the envelope (`MAIL FROM` / `RCPT TO`) and the `From:` / `To:` headers.
public struct MailAddress: Sendable, Equatable, CustomStringConvertible {
    /// `local@domain`, ASCII only.
    public let address: String
    public let displayName: String?

    /// Validates `address` and `displayName`; CR/LF/NUL anywhere is `HeaderInjection`, anything else invalid is
    /// `InvalidAddress`. Both are permanent.
    public init(_ address: String, displayName: String? = nil, field: String = "address") throws(JobFailure) {
        try checkHeaderSafe(address, field: field)
        if let displayName { try checkHeaderSafe(displayName, field: "\(field) display name") }
        try MailAddress.validate(address)
        self.address = address
        self.displayName = displayName.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Parses `Name <local@domain>` or a bare `local@domain` (configuration values such as `CONVEYOR_MAIL_FROM`).
    public init(parsing text: String, field: String) throws(JobFailure) {
        try checkHeaderSafe(text, field: field)
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            let inner = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") { name = String(name.dropFirst().dropLast()) }
            try self.init(inner, displayName: name.isEmpty ? nil : name, field: field)
        } else {
            try self.init(trimmed, field: field)
        }
    }

    public var description: String { displayName.map { "\($0) <\(address)>" } ?? address }

    /// `local@domain` with a dot-atom local part of at most 64 octets and a domain of LDH labels (at least two,
    /// at most 63 octets each, 253 in all); no address literals. No quoted local parts, no SMTPUTF8: rare
    /// for transactional mail, and each is a way to smuggle `<`, `>`, `,` or spaces into the envelope.
    static func validate(_ address: String) throws(JobFailure) {
        guard address.utf8.count <= 254 else { throw .invalidAddress(address, "longer than 254 octets") }
        guard address.unicodeScalars.allSatisfy({ $0.isASCII }) else {
            throw .invalidAddress(address, "non-ASCII characters (internationalized addresses are not supported)")
        }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .invalidAddress(address, "expected exactly one @") }
        let local = parts[0], domain = parts[1]
        guard !local.isEmpty, local.utf8.count <= 64 else { throw .invalidAddress(address, "the local part must be 1 to 64 octets") }
        for atom in local.split(separator: ".", omittingEmptySubsequences: false) {
            guard !atom.isEmpty else { throw .invalidAddress(address, "empty dot-separated part in the local part") }
            guard atom.unicodeScalars.allSatisfy(isAtext) else {
                throw .invalidAddress(address, "the local part may only hold letters, digits and !#$%&'*+-/=?^_`{|}~.")
            }
        }
        // An address literal (`user@[127.0.0.1]`) would let a job aim mail at any host, internal ones included,
        // past the MX records: refused, as docs/jobs.md says (a domain of LDH labels only).
        if domain.hasPrefix("[") || domain.hasSuffix("]") {
            throw .invalidAddress(address, "address literals such as [127.0.0.1] are not accepted; give a domain name")
        }
        guard domain.utf8.count <= 253 else { throw .invalidAddress(address, "the domain is longer than 253 octets") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else { throw .invalidAddress(address, "the domain needs at least two labels") }
        for label in labels {
            guard !label.isEmpty, label.utf8.count <= 63,
                label.unicodeScalars.allSatisfy({ isLetterOrDigit($0) || $0 == "-" }),
                label.first != "-", label.last != "-"
            else { throw .invalidAddress(address, "domain label \(String(label).debugDescription) is not letters, digits and inner hyphens") }
        }
    }

    private static func isLetterOrDigit(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
    }

    private static func isAtext(_ s: Unicode.Scalar) -> Bool {
        isLetterOrDigit(s) || "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(s)
    }
}
