import ArgumentParser
import Foundation
import Push

/// `conveyor vapid`: the Web Push VAPID key pair.
struct VapidCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vapid",
        abstract: "Web Push VAPID keys (RFC 8292).",
        subcommands: [Generate.self])

    /// `conveyor vapid generate`: a new P-256 key pair.
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new VAPID key pair: the private key for CONVEYOR_VAPID_PRIVATE_KEY, the public key for the front end.",
            discussion: """
                Text output: the private key as PEM, then the lines `CONVEYOR_VAPID_PRIVATE_KEY=<base64url>` and
                `public key (applicationServerKey): <base64url>`. --json prints {"private_key_pem", "private_key",
                "public_key"}. With --out FILE the PEM is written to FILE (mode 0600, never over an existing file)
                and only the public key and the setting are printed.
                """)

        @Flag(help: "Print a JSON object instead of text.")
        var json = false

        @Option(help: "Write the private key's PEM to this new file (mode 0600) instead of printing it.")
        var out: String?

        func run() throws {
            let key = VAPIDKey.generate()
            if let out {
                let descriptor = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard descriptor >= 0 else {
                    FileHandle.standardError.write(Data("conveyor: cannot create \(out): \(String(cString: strerror(errno)))\n".utf8))
                    throw ExitCode(73)
                }
                let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
                try handle.write(contentsOf: Data((key.pem + "\n").utf8))
            }
            if json {
                var fields: [(String, String)] = [("public_key", key.publicKeyBase64URL)]
                if out == nil { fields += [("private_key", key.privateKeyBase64URL), ("private_key_pem", key.pem)] } else { fields.append(("private_key_file", out!)) }
                let body = fields.map { "\"\($0.0)\":\(Self.jsonString($0.1))" }.joined(separator: ",")
                print("{" + body + "}")
                return
            }
            if let out {
                print("CONVEYOR_VAPID_PRIVATE_KEY=\(out)")
            } else {
                print(key.pem)
                print("CONVEYOR_VAPID_PRIVATE_KEY=\(key.privateKeyBase64URL)")
            }
            print("public key (applicationServerKey): \(key.publicKeyBase64URL)")
        }

        private static func jsonString(_ text: String) -> String {
            "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
    }
}
