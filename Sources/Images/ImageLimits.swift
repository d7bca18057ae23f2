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

    /// Accepted values of each variable; anything outside (`inf`, `nan`, `1e300`, zero, negative) is refused at start.
    public static let megapixelRange: ClosedRange<Double> = 0.000001...100_000
    public static let dimensionRange: ClosedRange<Int> = 1...1_000_000
    public static let fileMBRange: ClosedRange<Double> = 0.000001...1_048_576
    public static let framesRange: ClosedRange<Int> = 1...1_000_000

    public init(environment: [String: String]) throws(JobFailure) {
        /// Decimal notation only: `Double()` also reads `inf`, `nan` and hexadecimal (`0x10`).
        func decimal(_ text: String) -> Double? {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard trimmed.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) || $0 == "." || $0 == "e" || $0 == "E" || $0 == "-" || $0 == "+" })
            else { return nil }
            return Double(trimmed)
        }
        func number(_ name: String, _ range: ClosedRange<Double>) throws(JobFailure) -> Double? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = decimal(text), value.isFinite, range.contains(value) else {
                throw .permanent(.invalidConfiguration, "\(name)=\(text) is not a number in \(ImageOperations.format(range.lowerBound))...\(ImageOperations.format(range.upperBound))")
            }
            return value
        }
        func whole(_ name: String, _ range: ClosedRange<Int>) throws(JobFailure) -> Int? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = decimal(text), let n = Int(exactly: value), range.contains(n) else {
                throw .permanent(.invalidConfiguration, "\(name)=\(text) is not a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return n
        }
        if let v = try number("CONVEYOR_IMAGE_MAX_MEGAPIXELS", Self.megapixelRange) { maxMegapixels = v }
        if let v = try whole("CONVEYOR_IMAGE_MAX_DIMENSION", Self.dimensionRange) { maxDimension = v }
        if let v = try number("CONVEYOR_IMAGE_MAX_FILE_MB", Self.fileMBRange) { maxFileBytes = max(1, Int((v * 1_048_576).rounded())) }
        if let v = try whole("CONVEYOR_IMAGE_MAX_FRAMES", Self.framesRange) { maxFrames = v }
        if let v = try number("CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS", Self.megapixelRange) { maxProgressiveMegapixels = v }
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
