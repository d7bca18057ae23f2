import Foundation

/// Outputs are written under a temporary name in their final folder, then renamed into place (rename(2)),
/// so a reader never sees half a file and a failed job leaves nothing behind.
enum AtomicOutput {
    /// A hidden temporary path next to `finalPath` (same filesystem, so the rename is atomic).
    static func temporary(for finalPath: String) -> String {
        let directory = (finalPath as NSString).deletingLastPathComponent
        let name = (finalPath as NSString).lastPathComponent
        return directory + "/." + name + ".tmp-" + UUID().uuidString.prefix(12).lowercased()
    }

    /// Replaces `finalPath` with `temporaryPath` in one step.
    static func commit(_ temporaryPath: String, to finalPath: String) throws {
        if rename(temporaryPath, finalPath) != 0 {
            let err = errno
            unlink(temporaryPath)
            throw POSIXError(POSIXErrorCode(rawValue: err) ?? .EIO)
        }
    }
}
