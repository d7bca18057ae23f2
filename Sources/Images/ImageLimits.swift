public import ConveyorCore
import Foundation

/// What an image may be before Conveyor decodes it; checked from the header only.
public struct ImageLimits: Sendable, Equatable {
    /// Width x height of one frame, after orientation (CONVEYOR_IMAGE_MAX_MEGAPIXELS, default 50).
    public var maxMegapixels: Double = 50
    /// Longest side in pixels (CONVEYOR_IMAGE_MAX_DIMENSION, default 20000): stops 1x100000 strips.
    public var maxDimension: Int = 20000
    /// Source file size (CONVEYOR_IMAGE_MAX_FILE_MB, default 50).
    public var maxFileBytes: Int = 50 << 20
    /// Frames of an animation (CONVEYOR_IMAGE_MAX_FRAMES, default 500).
    public var maxFrames: Int = 500
    /// Progressive JPEGs and interlaced PNGs must be decoded whole, without shrink-on-load, and cost far more
    /// memory: their own cap (CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS, default 30).
    public var maxProgressiveMegapixels: Double = 30

    public init() {}

    /// Reads `ImagesSettings`' limits; every value was checked against its declared range (`inf`, `nan`, `1e400`,
    /// hex, zero and negative refused) before it reaches here.
    public init(settings: SettingsReader) throws(JobFailure) {
        typealias I = ImagesSettings
        try settings.refuse([I.imageMaxMegapixels, I.imageMaxDimension, I.imageMaxFileMb, I.imageMaxFrames, I.imageMaxProgressiveMegapixels])
        maxMegapixels = settings.number(I.imageMaxMegapixels)
        maxDimension = settings.int(I.imageMaxDimension)
        // At most 2^40 bytes by the declared range.
        maxFileBytes = max(1, Int(exactly: (settings.number(I.imageMaxFileMb) * 1_048_576).rounded()) ?? Int.max)
        maxFrames = settings.int(I.imageMaxFrames)
        maxProgressiveMegapixels = settings.number(I.imageMaxProgressiveMegapixels)
    }

    /// The same from a plain environment, through a reader of the families' settings.
    public init(environment: [String: String]) throws(JobFailure) {
        try self.init(settings: SettingsReader(families: environment))
    }

    var json: JSONValue {
        .object(JSONObject([
            ("max_megapixels", JSONValue(maxMegapixels)),
            ("max_dimension", JSONValue(maxDimension)),
            ("max_file_bytes", JSONValue(maxFileBytes)),
            ("max_frames", JSONValue(maxFrames)),
            ("max_progressive_megapixels", JSONValue(maxProgressiveMegapixels)),
        ]))
    }

    init(json: JSONObject?) {
        guard let json else { return }
        if let v = json["max_megapixels"]?.doubleValue { maxMegapixels = v }
        if let v = json["max_dimension"]?.intValue { maxDimension = v }
        if let v = json["max_file_bytes"]?.intValue { maxFileBytes = v }
        if let v = json["max_frames"]?.intValue { maxFrames = v }
        if let v = json["max_progressive_megapixels"]?.doubleValue { maxProgressiveMegapixels = v }
    }
}
