public import ConveyorCore
public import Storage
public import Vips

/// How a variant fills its box.
public enum ThumbnailFit: String, Sendable {
    /// Fills width x height exactly, cutting the overflow around the centre.
    case cover
    /// Fits inside width x height and pads to exactly that size.
    case contain
    /// Fits inside width x height; the result may be smaller on one side.
    case inside
}

/// One rendition to write.
public struct ThumbnailVariant: Sendable, Equatable {
    public var name: String
    public var width: Int
    public var height: Int
    public var fit: ThumbnailFit
    public var format: VipsOutputFormat
    public var quality: Int
    /// Encoder CPU effort: WebP 0-6, AVIF 0-9; nil for the format's default (WebP 4, AVIF 2). Lower is faster
    /// and, at the same quality, usually a larger file.
    public var effort: Int?

    public init(name: String, width: Int, height: Int, fit: ThumbnailFit = .inside, format: VipsOutputFormat = .webp, quality: Int = 80,
                effort: Int? = nil) {
        self.name = name
        self.width = width
        self.height = height
        self.fit = fit
        self.format = format
        self.quality = quality
        self.effort = effort
    }

    /// The encoder efforts each format takes (the others have none).
    public static let effortRange: [VipsOutputFormat: ClosedRange<Int>] = [.webp: 0...6, .avif: 0...9]

    /// Used when a job gives no variants.
    public static let defaults = [
        ThumbnailVariant(name: "small", width: 320, height: 320, fit: .cover),
        ThumbnailVariant(name: "medium", width: 800, height: 800, fit: .inside),
        ThumbnailVariant(name: "large", width: 1600, height: 1600, fit: .inside),
    ]

    var json: JSONValue {
        .object(JSONObject([
            ("name", .string(name)), ("width", JSONValue(width)), ("height", JSONValue(height)),
            ("fit", .string(fit.rawValue)), ("format", .string(format.rawValue)), ("quality", JSONValue(quality)),
        ] + (effort.map { [("effort", JSONValue($0))] } ?? [])))
    }
}

/// The validated arguments of `image.thumbnail` (the rules of Jobs/image.thumbnail.schema.json).
public struct ThumbnailRequest: Sendable, Equatable {
    public var source: String
    public var destination: String
    public var variants: [ThumbnailVariant]

    static let formats = "webp, jpeg, png, avif"

    public init(arguments: JSONObject) throws(JobFailure) {
        try rejectUnknown(arguments, allowed: ["source", "destination", "variants", "bucket"], at: "")
        guard let source = arguments["source"]?.stringValue else { throw .invalidArguments("source is required and must be a string key") }
        try MediaRoot.validate(source, field: "source")
        self.source = source
        if let value = arguments["destination"], !value.isNull {
            guard let d = value.stringValue else { throw .invalidArguments("destination must be a string key prefix") }
            var trimmed = d
            while trimmed.hasSuffix("/") { trimmed.removeLast() }
            try MediaRoot.validate(trimmed, field: "destination")
            destination = trimmed
        } else {
            var stem = source
            if let slash = stem.lastIndex(of: "/"), let dot = stem.lastIndex(of: "."), dot > slash { stem = String(stem[..<dot]) }
            else if !stem.contains("/"), let dot = stem.lastIndex(of: ".") { stem = String(stem[..<dot]) }
            destination = "thumbnails/" + stem
        }
        guard let list = arguments["variants"], !list.isNull else {
            variants = ThumbnailVariant.defaults
            try checkOutputKeys()
            return
        }
        guard let items = list.arrayValue, !items.isEmpty, items.count <= 16 else {
            throw .invalidArguments("variants must be an array of 1 to 16 objects")
        }
        var variants: [ThumbnailVariant] = []
        for (i, item) in items.enumerated() {
            guard let v = item.objectValue else { throw .invalidArguments("variants[\(i)] must be an object") }
            try rejectUnknown(v, allowed: ["name", "width", "height", "fit", "format", "quality", "effort"], at: "variants[\(i)].")
            guard let name = v["name"]?.stringValue, !name.isEmpty, name.count <= 64,
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
                throw .invalidArguments("variants[\(i)].name is required: 1-64 letters, digits, '-' or '_'")
            }
            guard !variants.contains(where: { $0.name == name }) else { throw .invalidArguments("variants[\(i)].name \(name) is repeated") }
            func dimension(_ key: String) throws(JobFailure) -> Int {
                guard let n = v[key]?.intValue, (1...8192).contains(n) else {
                    throw .invalidArguments("variants[\(i)].\(key) is required: an integer in 1...8192")
                }
                return n
            }
            let width = try dimension("width")
            let height = try dimension("height")
            var fit = ThumbnailFit.inside
            if let f = v["fit"], !f.isNull {
                guard let s = f.stringValue, let parsed = ThumbnailFit(rawValue: s) else {
                    throw .invalidArguments("variants[\(i)].fit must be cover, contain or inside")
                }
                fit = parsed
            }
            var format = VipsOutputFormat.webp
            if let f = v["format"], !f.isNull {
                guard let s = f.stringValue, let parsed = VipsOutputFormat(rawValue: s == "jpg" ? "jpeg" : s), parsed != .gif else {
                    throw .invalidArguments("variants[\(i)].format must be one of \(Self.formats)")
                }
                format = parsed
            }
            var quality = format == .avif ? 50 : 80
            if let q = v["quality"], !q.isNull {
                guard let n = q.intValue, (1...100).contains(n) else { throw .invalidArguments("variants[\(i)].quality must be an integer in 1...100") }
                quality = n
            }
            var effort: Int?
            if let e = v["effort"], !e.isNull {
                guard let range = ThumbnailVariant.effortRange[format] else {
                    throw .invalidArguments("variants[\(i)].effort applies to webp (0-6) and avif (0-9), not \(format.rawValue)")
                }
                guard let n = e.intValue, range.contains(n) else {
                    throw .invalidArguments("variants[\(i)].effort must be an integer in \(range.lowerBound)...\(range.upperBound) for \(format.rawValue)")
                }
                effort = n
            }
            variants.append(ThumbnailVariant(name: name, width: width, height: height, fit: fit, format: format, quality: quality, effort: effort))
        }
        self.variants = variants
        try checkOutputKeys()
    }

    /// Every output key (`destination/name.ext`) within the key limits, so a long one is refused before any folder
    /// or file of this job is written.
    private func checkOutputKeys() throws(JobFailure) {
        for v in variants {
            try MediaRoot.validate("\(destination)/\(v.name).\(v.format.fileExtension)", field: "destination (with variant \(v.name))")
        }
    }

    public var json: JSONObject {
        JSONObject([
            ("source", .string(source)), ("destination", .string(destination)),
            ("variants", .array(variants.map(\.json))),
        ])
    }
}

/// The validated arguments of `image.strip_metadata`.
public struct StripMetadataRequest: Sendable, Equatable {
    public enum ICC: String, Sendable { case keep, srgb }
    public var source: String
    /// Nil: next to the source as `<stem>.clean.<ext>`.
    public var destination: String?
    public var icc: ICC
    /// The JPEG quality of a re-encoded copy.
    public var quality: Int
    /// Whether a JPEG that needs no rotation and no colour conversion is copied without decoding (its metadata
    /// segments dropped, its compressed pixels unchanged: see `JPEGSegments`); false always re-encodes.
    public var lossless: Bool

    public init(arguments: JSONObject) throws(JobFailure) {
        try rejectUnknown(arguments, allowed: ["source", "destination", "icc", "quality", "lossless", "bucket"], at: "")
        guard let source = arguments["source"]?.stringValue else { throw .invalidArguments("source is required and must be a string key") }
        try MediaRoot.validate(source, field: "source")
        self.source = source
        if let d = arguments["destination"], !d.isNull {
            guard let s = d.stringValue else { throw .invalidArguments("destination must be a string key") }
            try MediaRoot.validate(s, field: "destination")
            destination = s
        }
        icc = .keep
        if let i = arguments["icc"], !i.isNull {
            guard let s = i.stringValue, let parsed = ICC(rawValue: s) else { throw .invalidArguments("icc must be keep or srgb") }
            icc = parsed
        }
        quality = 90
        if let q = arguments["quality"], !q.isNull {
            guard let n = q.intValue, (1...100).contains(n) else { throw .invalidArguments("quality must be an integer in 1...100") }
            quality = n
        }
        lossless = true
        if let l = arguments["lossless"], !l.isNull {
            guard let b = l.boolValue else { throw .invalidArguments("lossless must be true or false") }
            lossless = b
        }
    }

    public var json: JSONObject {
        var o = JSONObject([
            ("source", .string(source)), ("icc", .string(icc.rawValue)), ("quality", JSONValue(quality)), ("lossless", .bool(lossless)),
        ])
        if let destination { o["destination"] = .string(destination) }
        return o
    }
}

/// The schemas say `additionalProperties: false`; a misspelt option must not be silently ignored.
func rejectUnknown(_ object: JSONObject, allowed: Set<String>, at path: String) throws(JobFailure) {
    if let unknown = object.keys.first(where: { !allowed.contains($0) }) {
        throw .invalidArguments("\((path + unknown).debugDescription) is not a known argument; expected \(allowed.sorted().map { path + $0 }.joined(separator: ", "))")
    }
}
