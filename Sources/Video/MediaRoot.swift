import Foundation

/// The folder media keys are relative to (`CONVEYOR_MEDIA_ROOT`), with the rules that keep a job inside it.
public struct MediaRoot: Sendable {
    /// The root, resolved (symlinks followed) at creation.
    public let path: String

    /// Creates the root folder when missing.
    public init(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        self.path = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    public enum KeyError: Error, CustomStringConvertible {
        case invalid(String, String)
        public var description: String {
            switch self { case .invalid(let key, let why): "media key \(key.debugDescription) \(why)" }
        }
    }

    /// Checks a key's shape: relative, no `..`, no empty or `.` components, no NUL.
    public func validate(_ key: String) throws(KeyError) {
        if key.isEmpty { throw .invalid(key, "is empty") }
        if key.hasPrefix("/") { throw .invalid(key, "is absolute; keys are relative to the media root") }
        if key.contains("\0") || key.contains("\\") { throw .invalid(key, "contains a NUL or backslash") }
        if key.utf8.count > 1024 { throw .invalid(key, "is longer than 1024 bytes") }
        for part in key.split(separator: "/", omittingEmptySubsequences: false) {
            if part == ".." { throw .invalid(key, "contains '..'") }
            if part.isEmpty || part == "." { throw .invalid(key, "has an empty or '.' path component") }
        }
    }

    /// The real path of an existing file; refuses keys whose symlinks lead outside the root.
    public func existingFile(_ key: String) throws(KeyError) -> String {
        try validate(key)
        let joined = path + "/" + key
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: joined, isDirectory: &isDirectory) else {
            throw .invalid(key, "does not exist under the media root")
        }
        if isDirectory.boolValue { throw .invalid(key, "is a directory") }
        let real = URL(fileURLWithPath: joined).resolvingSymlinksInPath().path
        guard real.hasPrefix(path + "/") else { throw .invalid(key, "resolves outside the media root") }
        return real
    }

    /// The path to write `key` to, creating its folders; refuses folders whose symlinks lead outside the root.
    public func outputFile(_ key: String) throws -> String {
        try validate(key)
        let joined = path + "/" + key
        let directory = (joined as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let realDirectory = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        guard realDirectory == path || realDirectory.hasPrefix(path + "/") else {
            throw KeyError.invalid(key, "resolves outside the media root")
        }
        let name = (joined as NSString).lastPathComponent
        var isDirectory: ObjCBool = false
        let target = realDirectory + "/" + name
        if FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
            throw KeyError.invalid(key, "is a directory")
        }
        return target
    }

    /// A temporary path next to `finalPath` (same filesystem, so the rename is atomic).
    public static func temporary(for finalPath: String) -> String {
        let directory = (finalPath as NSString).deletingLastPathComponent
        let name = (finalPath as NSString).lastPathComponent
        return directory + "/." + name + ".tmp-" + UUID().uuidString.prefix(12).lowercased()
    }

    /// Replaces `finalPath` with `temporaryPath` in one step (rename(2)).
    public static func commit(_ temporaryPath: String, to finalPath: String) throws {
        if rename(temporaryPath, finalPath) != 0 {
            let err = errno
            unlink(temporaryPath)
            throw POSIXError(POSIXErrorCode(rawValue: err) ?? .EIO)
        }
    }

    /// Writes bytes to `finalPath` through a temporary file and a rename.
    public static func writeAtomically(_ bytes: [UInt8], to finalPath: String) throws {
        let temporary = temporary(for: finalPath)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            try commit(temporary, to: finalPath)
        } catch {
            unlink(temporary)
            throw error
        }
    }
}
