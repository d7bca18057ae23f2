public import ConveyorCore
import Foundation
import Sandbox

/// The local directory that holds uploads and renditions. Jobs name files by relative keys under it.
///
/// `CONVEYOR_MEDIA_ROOT` (default `.run/media`, relative to the worker's working directory, used only if it exists).
public struct MediaRoot: Sendable, Equatable {
    /// Absolute, symlink-free path of the root.
    public let path: String

    /// The root used when `CONVEYOR_MEDIA_ROOT` is unset, relative to the working directory.
    public static let defaultPath = ".run/media"

    /// Uses `path` (relative paths are taken from the current directory).
    /// - Parameter create: create the folder when it is missing (a root the operator named). The built-in default
    ///   is not created: a worker started anywhere must not leave a `.run/media` behind. A missing root fails
    ///   each media job with `MediaRootUnavailable`.
    public init(_ path: String, create: Bool = true) throws(JobFailure) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        if create {
            do {
                try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
            } catch {
                throw .transient(.mediaRootUnavailable, "cannot create the media root \(absolute) (\(MediaSettings.mediaRoot.name)): \(error)")
            }
        } else if !FileManager.default.fileExists(atPath: absolute) {
            self.path = absolute
            return
        }
        guard let real = MediaRoot.realPath(absolute) else {
            throw .transient(.mediaRootUnavailable, "cannot resolve the media root \(absolute) (\(MediaSettings.mediaRoot.name))")
        }
        self.path = real
    }

    /// `CONVEYOR_MEDIA_ROOT`, created when missing; unset, `.run/media` if it exists.
    public init(settings: SettingsReader) throws(JobFailure) {
        try settings.refuse([MediaSettings.mediaRoot])
        if let configured = settings.text(MediaSettings.mediaRoot) {
            try self.init(configured)
        } else {
            try self.init(Self.defaultPath, create: false)
        }
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
    }

    /// The `media_root` of a helper request: every request that names media keys carries the root, and the helper
    /// resolves and confines the keys itself.
    public static func helperArgument(_ arguments: JSONObject) throws(JobFailure) -> String {
        guard let root = arguments["media_root"]?.stringValue else {
            throw .permanent(.helperProtocolError, "helper request has no media_root")
        }
        return root
    }

    /// Fails when the root folder does not exist (the unset default that nobody created).
    func requireExisting() throws(JobFailure) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .transient(.mediaRootUnavailable, "the media root \(path) does not exist; set \(MediaSettings.mediaRoot.name) to the folder that holds the uploads")
        }
    }

    /// Longest key, in UTF-8 bytes: S3's object-key limit (1024) less room for a store prefix and derived names.
    public static let maxKeyBytes = 900
    /// Longest `/`-separated part of a key: NAME_MAX (255) less room for derived and temporary names
    /// (`.<name>.tmp-<12>.progress`, `<stem>.waveform.json`).
    public static let maxSegmentBytes = 200

    /// Checks the form of a key: relative, no `..` or `.` components, no NUL, at most `maxKeyBytes` bytes and
    /// `maxSegmentBytes` per part. A key too long is refused here, as `InvalidArguments`, before any folder exists.
    public static func validate(_ key: String, field: String) throws(JobFailure) {
        guard !key.isEmpty else { throw .invalidArguments("\(field) is empty") }
        // First: the messages below name the key, and a NUL must reach neither a log nor PostgreSQL.
        guard !key.contains("\0") else { throw .permanent(.pathOutsideMediaRoot, "\(field) contains a NUL byte") }
        guard key.utf8.count <= maxKeyBytes else {
            throw .invalidArguments("\(field) is \(key.utf8.count) bytes long; keys are at most \(maxKeyBytes) bytes")
        }
        if let long = key.split(separator: "/").first(where: { $0.utf8.count > maxSegmentBytes }) {
            throw .invalidArguments(
                "\(field) has a \(long.utf8.count)-byte part \(String(long.prefix(40)).debugDescription)…; each part of a key is at most \(maxSegmentBytes) bytes")
        }
        guard !key.hasPrefix("/") else {
            throw .permanent(.pathOutsideMediaRoot, "\(field) \(key) is an absolute path; give a key relative to the media root")
        }
        guard !key.contains("\0") else { throw .permanent(.pathOutsideMediaRoot, "\(field) contains a NUL byte") }
        for component in key.split(separator: "/", omittingEmptySubsequences: false) {
            if component == ".." || component == "." {
                throw .permanent(.pathOutsideMediaRoot, "\(field) \(key) contains a '\(component)' component; keys must stay under the media root")
            }
        }
    }

    /// The absolute path of an existing file named by `key`, after following symlinks, which must stay inside.
    public func source(_ key: String, field: String = "source") throws(JobFailure) -> String {
        try MediaRoot.validate(key, field: field)
        try requireExisting()
        let joined = path + "/" + key
        guard let real = MediaRoot.realPath(joined) else {
            throw .permanent(.sourceNotFound, "\(field) \(key) does not exist under the media root \(path)")
        }
        guard inside(real) else {
            throw .permanent(.pathOutsideMediaRoot, "\(field) \(key) resolves (through a symlink) to \(real), outside the media root")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: real, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw .permanent(.sourceNotFound, "\(field) \(key) is not a regular file")
        }
        return real
    }

    /// The absolute path to write `key` to; creates its directories, all of which must stay inside the root.
    public func destination(_ key: String, field: String = "destination") throws(JobFailure) -> String {
        try MediaRoot.validate(key, field: field)
        try requireExisting()
        // PATH_MAX (4096) with the root, the key and a temporary name's suffix.
        guard path.utf8.count + 1 + key.utf8.count + 64 < 4096 else {
            throw .invalidArguments("\(field) is too long for a path under the media root \(path) (PATH_MAX 4096)")
        }
        let parts = key.split(separator: "/").map(String.init)
        guard let name = parts.last else { throw .invalidArguments("\(field) is empty") }
        // Walk down one directory at a time: an existing component must resolve inside the root before
        // anything is created beneath it (a symlinked directory must not let us create files elsewhere).
        var realDirectory = path
        for part in parts.dropLast() {
            let next = realDirectory + "/" + part
            if !FileManager.default.fileExists(atPath: next) {
                guard mkdir(next, 0o755) == 0 || errno == EEXIST else {
                    throw .transient(.mediaWriteFailed, "cannot create the directory for \(field) \(key): \(String(cString: strerror(errno)))")
                }
            }
            guard let resolved = MediaRoot.realPath(next), inside(resolved) else {
                throw .permanent(.pathOutsideMediaRoot, "\(field) \(key) leads (through a symlink) outside the media root")
            }
            realDirectory = resolved
        }
        return realDirectory + "/" + name
    }

    /// The absolute path of a file to write in place (opened and written, not renamed over): as `destination`, and a
    /// symlink already at `key` must lead inside the root, so writing through it cannot reach a file outside.
    public func writable(_ key: String, field: String) throws(JobFailure) -> String {
        let path = try destination(key, field: field)
        var status = stat()
        if lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFLNK {
            guard let real = MediaRoot.realPath(path), inside(real) else {
                throw .permanent(.pathOutsideMediaRoot, "\(field) \(key) is a symlink leading outside the media root")
            }
        }
        return path
    }

    /// The key of an absolute path inside the root.
    public func key(of absolute: String) -> String {
        absolute.hasPrefix(path + "/") ? String(absolute.dropFirst(path.count + 1)) : absolute
    }

    private func inside(_ real: String) -> Bool { real.hasPrefix(path + "/") }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
