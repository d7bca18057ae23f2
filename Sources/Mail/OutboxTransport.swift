public import Foundation
import ConveyorCore

/// Writes each message as `<folder>/<Message-ID>.eml` instead of sending it: the transport when no `SMTP_URL`
/// is configured, so a newcomer can open what would have been sent.
///
/// The file is written to a temporary name and renamed, so a reader never sees half a message; the name comes
/// from the Message-ID, so a retried job overwrites its own file instead of adding a second one.
public struct OutboxTransport: MailTransport {
    public let folder: URL
    public var name: String { "outbox" }

    public init(folder: URL) { self.folder = folder }

    public func send(_ message: [UInt8], envelope: MailEnvelope, messageID: String, timeout: Duration) async throws -> MailDelivery {
        let folder = self.folder
        let fileName = OutboxTransport.fileName(for: messageID)
        let head = "X-Conveyor-Envelope-From: \(envelope.from)\r\nX-Conveyor-Envelope-To: \(envelope.to)\r\n"
        return try await BlockingPool.shared.run {
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let url = folder.appendingPathComponent(fileName)
                try (Data(head.utf8) + Data(message)).write(to: url, options: .atomic)
                return MailDelivery(transport: "outbox", detail: url.path)
            } catch {
                throw JobFailure.transient(.mailOutboxWrite, "cannot write \(fileName) into \(folder.path) (\(MailSettings.mailOutbox.name)): \(error)")
            }
        }
    }

    /// A file name from the Message-ID: the characters safe in paths, the rest replaced.
    static func fileName(for messageID: String) -> String {
        let safe = messageID.unicodeScalars.map { s -> Character in
            ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "-" || s == "_" || s == "." || s == "@"
                ? Character(s) : "_"
        }
        return String(safe.prefix(200)) + ".eml"
    }
}
