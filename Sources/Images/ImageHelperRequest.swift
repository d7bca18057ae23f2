public import ConveyorCore
public import Storage
public import Sandbox

/// A validated image job request (`ThumbnailRequest`, `StripMetadataRequest`) as it crosses to the helper.
public protocol ImageJobRequest: Sendable {
    init(arguments: JSONObject) throws(JobFailure)
    var json: JSONObject { get }
    /// The media key the job reads.
    var source: String { get }
}

extension ThumbnailRequest: ImageJobRequest {}
extension StripMetadataRequest: ImageJobRequest {}

/// What the worker sends an image helper: the media root, which the helper resolves and confines the request's
/// keys to itself, the limits, and the request.
///
/// Wire: `{"media_root", "limits", "request", "fast_shrink_on_load"?, "verify_lossless_copy"?}`.
public struct ImageHelperRequest<Request: ImageJobRequest>: HelperRequest {
    public var mediaRoot: String
    public var limits: ImageLimits
    public var request: Request
    /// `image.thumbnail` only (nil: on).
    public var fastShrinkOnLoad: Bool?
    /// `image.strip_metadata` only (nil: on). Set by the worker, never by a job's arguments.
    public var verifyLosslessCopy: Bool?

    public init(mediaRoot: String, limits: ImageLimits, request: Request, fastShrinkOnLoad: Bool? = nil) {
        self.mediaRoot = mediaRoot
        self.limits = limits
        self.request = request
        self.fastShrinkOnLoad = fastShrinkOnLoad
    }

    public init(helperArguments arguments: JSONObject) throws(JobFailure) {
        mediaRoot = try MediaRoot.helperArgument(arguments)
        limits = ImageLimits(json: arguments["limits"]?.objectValue)
        request = try Request(arguments: arguments["request"]?.objectValue ?? JSONObject())
        fastShrinkOnLoad = arguments["fast_shrink_on_load"]?.boolValue
        verifyLosslessCopy = arguments["verify_lossless_copy"]?.boolValue
    }

    public var helperArguments: JSONObject {
        var arguments = JSONObject([
            ("media_root", .string(mediaRoot)), ("limits", limits.json), ("request", .object(request.json)),
        ])
        if let fastShrinkOnLoad { arguments["fast_shrink_on_load"] = .bool(fastShrinkOnLoad) }
        if let verifyLosslessCopy { arguments["verify_lossless_copy"] = .bool(verifyLosslessCopy) }
        return arguments
    }

    /// The media root, as the helper sees it (not created: the worker's root must already exist).
    func root() throws(JobFailure) -> MediaRoot { try MediaRoot(mediaRoot, create: false) }
}
