public import ConveyorCore

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

    public init(environment: [String: String]) throws(JobFailure) {
        func number(_ name: String) throws(JobFailure) -> Double? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = Double(text), value > 0 else {
                throw .permanent(.invalidConfiguration, "\(name)=\(text) is not a positive number")
            }
            return value
        }
        if let v = try number("CONVEYOR_IMAGE_MAX_MEGAPIXELS") { maxMegapixels = v }
        if let v = try number("CONVEYOR_IMAGE_MAX_DIMENSION") { maxDimension = Int(v) }
        if let v = try number("CONVEYOR_IMAGE_MAX_FILE_MB") { maxFileBytes = Int(v * 1024 * 1024) }
        if let v = try number("CONVEYOR_IMAGE_MAX_FRAMES") { maxFrames = Int(v) }
        if let v = try number("CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS") { maxProgressiveMegapixels = v }
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
