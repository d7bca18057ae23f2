public import ConveyorCore
public import Storage
import Foundation
import Vips

/// The native work of the image jobs, as pure functions of their request. They run inside a helper process
/// (`ImagesJobs.thumbnailOperation`, `stripMetadataOperation`) or, for debugging, in the worker.
public enum ImageOperations {
    // MARK: - Header checks

    /// What the header says, checked against the limits before any pixel is decoded.
    struct Checked {
        var path: String
        var loader: String
        /// Oriented size of one frame.
        var width: Int
        var height: Int
        var frames: Int
        var hasICCProfile: Bool
        /// EXIF orientation (1-8; 1 when absent).
        var orientation: Int
        /// Orientations 5-8 turn the stored image a quarter: its stored width is the oriented height.
        var swapsSides: Bool { (5...8).contains(orientation) }
    }

    static let loaderNames: [String: String] = [
        "svgload": "an SVG document", "pdfload": "a PDF document", "magickload": "a format only ImageMagick reads",
        "tiffload": "a TIFF image", "jp2kload": "a JPEG 2000 image", "jxlload": "a JPEG XL image",
        "openslideload": "a slide image", "openexrload": "an OpenEXR image", "fitsload": "a FITS image",
        "matload": "a MATLAB file", "ppmload": "a PPM image", "radload": "a Radiance image", "csvload": "a CSV file",
        "matrixload": "a matrix file", "vipsload": "a VIPS image", "analyzeload": "an Analyze image", "rawload": "raw data",
    ]

    static func check(_ key: String, root: MediaRoot, limits: ImageLimits, job: String,
                      deadline: ContinuousClock.Instant?) throws(JobFailure) -> Checked {
        if let deadline, deadline <= .now {
            throw .transient(.imageTimeout, "\(job) source \(key): the job's deadline passed before decoding started")
        }
        let path = try root.source(key)
        let what = "\(job) source \(key)"
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        guard size > 0 else { throw .permanent(.imageEmpty, "\(what) is an empty file (0 bytes)") }
        guard size <= limits.maxFileBytes else {
            throw .permanent(.imageTooLarge, "\(what): \(size) bytes exceeds the limit of \(limits.maxFileBytes) bytes (\(ImagesSettings.imageMaxFileMb.name))")
        }
        do { try Vips.start() } catch { throw .transient(.vipsUnavailable, "libvips failed to start: \(error)") }
        // libvips picks the loader from the bytes: the extension means nothing.
        let found = Vips.loader(for: path)
        guard let loader = found.map(Self.nickname) else {
            throw .permanent(.unsupportedImageFormat, "\(what) is not an image Conveyor reads (JPEG, PNG, WebP, GIF, HEIF/AVIF), or its header is damaged")
        }
        guard Vips.allowedLoaders.contains(loader) else {
            let kind = loaderNames[loader] ?? "a format handled by \(loader)"
            throw .permanent(.unsupportedImageFormat, "\(what) is \(kind), whatever its name says; Conveyor only decodes JPEG, PNG, WebP, GIF and HEIF/AVIF")
        }
        let image: VipsImage
        do { image = try Vips.open(path) } catch {
            if error.wasBlocked { throw .permanent(.unsupportedImageFormat, "\(what): \(error.message)") }
            throw .permanent(.imageCorrupt, "\(what) cannot be read: \(error.message)")
        }
        var width = image.width
        var height = image.pageHeight
        if image.orientationSwaps { swap(&width, &height) }
        let frames = max(1, image.pages)
        let megapixels = Double(width) * Double(height) / 1_000_000
        guard frames <= limits.maxFrames else {
            throw .permanent(.imageTooManyFrames, "\(what) has \(frames) frames; the limit is \(limits.maxFrames) (\(ImagesSettings.imageMaxFrames.name))")
        }
        guard megapixels <= limits.maxMegapixels else {
            throw .permanent(.imageTooLarge, "\(what): \(width)x\(height) exceeds the \(format(limits.maxMegapixels)) megapixel limit (\(ImagesSettings.imageMaxMegapixels.name))")
        }
        guard width <= limits.maxDimension, height <= limits.maxDimension else {
            throw .permanent(.imageTooLarge, "\(what): \(width)x\(height) has a side longer than \(limits.maxDimension) pixels (\(ImagesSettings.imageMaxDimension.name))")
        }
        if image.isInterlaced, megapixels > limits.maxProgressiveMegapixels {
            throw .permanent(
                .imageTooLarge,
                "\(what): a progressive/interlaced \(width)x\(height) image must be decoded at full size; the limit for those is \(format(limits.maxProgressiveMegapixels)) megapixels (\(ImagesSettings.imageMaxProgressiveMegapixels.name))")
        }
        return Checked(path: path, loader: loader, width: width, height: height, frames: frames, hasICCProfile: image.hasICCProfile,
                       orientation: image.orientation)
    }

    /// "VipsForeignLoadJpegFile" or "jpegload" → "jpegload".
    static func nickname(_ name: String) -> String {
        if !name.hasPrefix("VipsForeignLoad") { return name }
        var base = String(name.dropFirst("VipsForeignLoad".count))
        for suffix in ["File", "Buffer", "Source"] where base.hasSuffix(suffix) { base.removeLast(suffix.count) }
        let lower = base.lowercased()
        return (lower == "nsgif" ? "gif" : lower) + "load"
    }

    static func format(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d) }

    /// Turns a libvips failure during decode/encode into the job's error.
    static func failure(_ error: VipsError, _ what: String, deadline: ContinuousClock.Instant?) -> JobFailure {
        if error.wasKilled || (deadline.map { $0 < .now } ?? false) {
            return .transient(.imageTimeout, "\(what) did not finish before the job's deadline; libvips was stopped")
        }
        if error.message.contains("out of memory") || error.message.contains("memory allocation") {
            return .transient(.helperOutOfMemory, "\(what): libvips ran out of memory within the helper's limit: \(error.message)")
        }
        if error.wasBlocked { return .permanent(.unsupportedImageFormat, "\(what): \(error.message)") }
        return .permanent(.imageCorrupt, "\(what) is damaged or truncated: \(error.message)")
    }

    static func remainingMilliseconds(_ deadline: ContinuousClock.Instant?) -> Int {
        guard let deadline else { return 24 * 3600 * 1000 }
        let left = (deadline - .now).components
        // Saturates at a day: a far deadline must not overflow the multiplication.
        return max(0, Int(min(left.seconds, 24 * 3600)) * 1000 + Int(left.attoseconds / 1_000_000_000_000_000))
    }

    // MARK: - Writing

    /// Removes every metadata field (EXIF with GPS and MakerNotes, XMP, IPTC, comments, the embedded
    /// thumbnail; the ICC profile unless `keepICC`). libvips 8.14's webpsave ignores `strip`, so the fields
    /// are removed here for every format rather than trusting the savers.
    static func removeMetadata(_ image: VipsImage, keepICC: Bool) {
        for field in image.fieldNames where !(keepICC && field == "icc-profile-data") {
            image.removeField(field)
        }
    }

    /// Saves through a temporary file in the same directory, then renames, so readers never see half a file.
    static func write(_ image: VipsImage, to path: String, format: VipsOutputFormat, quality: Int, effort: Int? = nil, strip: Bool,
                      deadline: ContinuousClock.Instant?, what: String) throws(JobFailure) -> Int {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = directory + "/.tmp-\(UUID().uuidString.prefix(12)).\(format.fileExtension)"
        let keptProfile = strip ? nil : image.iccProfile
        removeMetadata(image, keepICC: !strip)
        image.setDeadline(milliseconds: remainingMilliseconds(deadline))
        // JPEG: without strip, libvips 8.14 writes a fresh EXIF block (orientation, resolution); so always
        // strip and put the ICC profile back ourselves.
        let saverStrips = strip || format == .jpeg
        do {
            try Vips.save(image, to: temporary, format: format, quality: quality, strip: saverStrips, effort: effort)
        } catch {
            unlink(temporary)
            throw failure(error, what, deadline: deadline)
        }
        if format == .webp {
            do {
                try WebPChunks.stripMetadata(atPath: temporary, keepICC: keptProfile != nil)
            } catch {
                unlink(temporary)
                throw .transient(.mediaWriteFailed, "\(what): cannot rewrite the WebP output: \(error)")
            }
        }
        if format == .jpeg, let keptProfile {
            do {
                let written = Array(try Data(contentsOf: URL(fileURLWithPath: temporary)))
                if let tagged = JPEGSegments.insertICC(keptProfile, into: written) {
                    try Data(tagged).write(to: URL(fileURLWithPath: temporary))
                }
            } catch {
                unlink(temporary)
                throw .transient(.mediaWriteFailed, "\(what): cannot add the ICC profile to the JPEG output: \(error)")
            }
        }
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw .transient(.mediaWriteFailed, "\(what): cannot move the result into place at \(path): \(message)")
        }
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    // MARK: - image.thumbnail

    /// Decodes the source once (shrink-on-load to the largest size any variant needs), then writes every
    /// variant: oriented upright, sRGB, no metadata.
    public static func thumbnail(_ request: ThumbnailRequest, root: MediaRoot, limits: ImageLimits, fastShrinkOnLoad: Bool = true,
                                 deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        let job = "image.thumbnail"
        let source = try check(request.source, root: root, limits: limits, job: job, deadline: deadline)
        let what = "\(job) source \(request.source)"
        let w = Double(source.width), h = Double(source.height)
        // The scale each variant needs from the oriented source; decode once at the largest of them.
        var scale = 0.0
        for v in request.variants {
            let sx = Double(v.width) / w, sy = Double(v.height) / h
            scale = max(scale, v.fit == .cover ? max(sx, sy) : min(sx, sy))
        }
        scale = min(1, scale)
        let decodeWidth = max(1, Int((w * scale).rounded(.up)))
        let decodeHeight = max(1, Int((h * scale).rounded(.up)))
        var base: VipsImage
        do {
            // Untagged images are taken as sRGB (what browsers do); tagged ones go through their profile.
            let shrink = fastShrinkOnLoad && source.loader == "jpegload" ? jpegShrink(source, width: decodeWidth, height: decodeHeight) : 1
            // The JPEG path resizes in the stored orientation (as vips_thumbnail does) and turns the small result
            // upright once it is in memory.
            let swaps = shrink > 1 && source.swapsSides
            let lazy = shrink > 1
                ? try Vips.thumbnail(jpeg: source.path, shrink: shrink, width: swaps ? decodeHeight : decodeWidth,
                                     height: swaps ? decodeWidth : decodeHeight, iccToSRGB: source.hasICCProfile)
                : try Vips.thumbnail(file: source.path, width: decodeWidth, height: decodeHeight, iccToSRGB: source.hasICCProfile)
            lazy.setDeadline(milliseconds: remainingMilliseconds(deadline))
            base = try Vips.copyToMemory(lazy)
            if shrink > 1 && source.orientation != 1 { base = try Vips.copyToMemory(try Vips.autorotate(base)) }
            if !base.isSRGB { base = try Vips.colourspaceSRGB(base) }
            if !base.isEightBit { base = try Vips.castUChar(base) }
        } catch {
            throw failure(error, what, deadline: deadline)
        }
        // Largest variant first; each smaller one is resized from the smallest already-rendered, uncropped
        // image that is still big enough, so no pixel is resampled from more data than needed.
        func needed(_ v: ThumbnailVariant) -> Double {
            let sx = Double(v.width) / w, sy = Double(v.height) / h
            return min(1, v.fit == .cover ? max(sx, sy) : min(sx, sy))
        }
        var sources: [(image: VipsImage, scale: Double)] = [(base, scale)]
        var results = [JSONValue](repeating: .null, count: request.variants.count)
        let order = request.variants.indices.sorted { needed(request.variants[$0]) > needed(request.variants[$1]) }
        for index in order {
            let v = request.variants[index]
            let key = "\(request.destination)/\(v.name).\(v.format.fileExtension)"
            let path = try root.destination(key)
            let need = needed(v)
            let from = sources.filter { $0.scale >= need }.min { $0.scale < $1.scale }?.image ?? base
            var out: VipsImage
            do {
                out = try Vips.thumbnail(from, width: v.width, height: v.height, crop: v.fit == .cover)
                if v.fit == .contain, out.width != v.width || out.height != v.height {
                    let keepsAlpha = out.hasAlpha && v.format != .jpeg
                    let background: [Double] = keepsAlpha ? Array(repeating: 0, count: out.bands) : Array(repeating: 255, count: out.bands)
                    out = try Vips.embedCentre(out, width: v.width, height: v.height, background: background)
                } else if v.fit == .inside, request.variants.count > 1 {
                    out = try Vips.copyToMemory(out)
                    sources.append((out, Double(out.width) / w))
                }
            } catch {
                throw failure(error, "\(what) variant \(v.name)", deadline: deadline)
            }
            let bytes = try write(out, to: path, format: v.format, quality: v.quality, effort: v.effort, strip: true, deadline: deadline,
                                  what: "\(what) variant \(v.name)")
            results[index] = .object(JSONObject([
                ("name", .string(v.name)), ("key", .string(key)), ("path", .string(path)),
                ("width", JSONValue(out.width)), ("height", JSONValue(out.height)),
                ("bytes", JSONValue(bytes)), ("format", .string(v.format.rawValue)),
            ]))
        }
        return .object(JSONObject([
            ("source", .string(request.source)),
            ("source_width", JSONValue(source.width)), ("source_height", JSONValue(source.height)),
            ("source_format", .string(source.loader.replacingOccurrences(of: "load", with: ""))),
            ("frames", JSONValue(source.frames)),
            ("variants", .array(results)),
        ]))
    }

    /// How much libjpeg's DCT scaling may shrink a JPEG while it decodes: the largest of 8, 4 and 2 that still
    /// leaves at least `width` x `height` (oriented) pixels, or 1. libvips' own thumbnail keeps a factor of two
    /// for its resampler and so decodes a 12 MP photo at full size for a 1600 px box; like sharp's default
    /// (`fastShrinkOnLoad`) and imgproxy, Conveyor lets the decoder take any factor it can, and lanczos3 does
    /// the rest. Decoding a quarter of the pixels and resampling a quarter as many is what makes one decode
    /// for three variants cheap.
    static func jpegShrink(_ source: Checked, width: Int, height: Int) -> Int {
        let swaps = source.swapsSides
        // The stored (unrotated) size and box.
        let (storedWidth, storedHeight) = swaps ? (source.height, source.width) : (source.width, source.height)
        let (boxWidth, boxHeight) = swaps ? (height, width) : (width, height)
        for factor in [8, 4, 2] {
            let w = (storedWidth + factor - 1) / factor, h = (storedHeight + factor - 1) / factor
            if w >= boxWidth && h >= boxHeight { return factor }
        }
        return 1
    }

    // MARK: - image.strip_metadata

    /// Writes a privacy-safe copy: orientation applied to the pixels, every metadata field gone but the ICC
    /// profile (kept, or used to convert the pixels to sRGB).
    public static func stripMetadata(_ request: StripMetadataRequest, root: MediaRoot, limits: ImageLimits, verifyLosslessCopy: Bool = true,
                                     deadline: ContinuousClock.Instant?) throws(JobFailure) -> JSONValue {
        let job = "image.strip_metadata"
        let source = try check(request.source, root: root, limits: limits, job: job, deadline: deadline)
        let what = "\(job) source \(request.source)"
        let format: VipsOutputFormat
        switch source.loader {
        case "pngload": format = .png
        case "webpload": format = .webp
        case "gifload": format = .png  // first frame; GIF has no place for an ICC profile
        case "heifload": format = .avif
        default: format = .jpeg
        }
        let key = request.destination ?? Self.cleanKey(for: request.source, format: format)
        let path = try root.destination(key)
        if request.lossless, source.loader == "jpegload", source.orientation == 1, request.icc == .keep || !source.hasICCProfile,
            let copied = try losslessCopy(source, to: path, key: key, request: request, verify: verifyLosslessCopy, deadline: deadline, what: what)
        {
            return copied
        }
        var image: VipsImage
        var icc = "none"
        do {
            image = try Vips.autorotate(try Vips.open(source.path))
            image.setDeadline(milliseconds: remainingMilliseconds(deadline))
            image = try Vips.copyToMemory(image)
            if image.hasICCProfile {
                if request.icc == .srgb {
                    image = try Vips.iccToSRGB(image)
                    icc = "converted"
                } else {
                    icc = "kept"
                }
            }
            if !image.isEightBit && format != .png { image = try Vips.castUChar(image) }
        } catch {
            throw failure(error, what, deadline: deadline)
        }
        // Everything but the pixels and the ICC profile goes (write removes the fields): EXIF (GPS, MakerNotes,
        // the embedded thumbnail), XMP, IPTC, comments.
        if icc == "converted" { icc = "converted-to-srgb" }
        let bytes = try write(image, to: path, format: format, quality: request.quality, strip: icc != "kept",
                              deadline: deadline, what: what)
        return .object(JSONObject([
            ("source", .string(request.source)), ("key", .string(key)), ("path", .string(path)),
            ("width", JSONValue(image.width)), ("height", JSONValue(image.height)),
            ("bytes", JSONValue(bytes)), ("format", .string(format.rawValue)), ("icc", .string(icc)), ("lossless", .bool(false)),
        ]))
    }

    /// The JPEG without its metadata segments, its compressed pixels unchanged, or `nil` when the marker stream is
    /// one `JPEGSegments` does not rewrite (libvips re-encodes it then). The copy is decoded once at 1/8 scale
    /// (every entropy-coded byte, little IDCT) before it is published, unless `verify` is off because the caller has
    /// just decoded the same scans: a damaged scan fails as it would re-encoded.
    static func losslessCopy(_ source: Checked, to path: String, key: String, request: StripMetadataRequest, verify: Bool,
                             deadline: ContinuousClock.Instant?, what: String) throws(JobFailure) -> JSONValue? {
        guard let data = FileManager.default.contents(atPath: source.path),
            let stripped = JPEGSegments.strip([UInt8](data), keepICC: request.icc == .keep)
        else { return nil }
        // Dot-named like every temporary file beside the outputs: a store publishes only the finished ones.
        let temporary = (path as NSString).deletingLastPathComponent + "/.tmp-\(UUID().uuidString.prefix(12)).jpg"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(stripped.bytes)) else {
            throw .transient(.mediaWriteFailed, "\(what): cannot write the copy beside \(path)")
        }
        if verify {
            do {
                let check = try Vips.thumbnail(
                    jpeg: temporary, shrink: 8, width: max(1, source.width / 8), height: max(1, source.height / 8), iccToSRGB: false)
                check.setDeadline(milliseconds: remainingMilliseconds(deadline))
                _ = try Vips.copyToMemory(check)
            } catch {
                unlink(temporary)
                throw failure(error, what, deadline: deadline)
            }
        }
        guard rename(temporary, path) == 0 else {
            let message = String(cString: strerror(errno))
            unlink(temporary)
            throw .transient(.mediaWriteFailed, "\(what): cannot move the result into place at \(path): \(message)")
        }
        return .object(JSONObject([
            ("source", .string(request.source)), ("key", .string(key)), ("path", .string(path)),
            ("width", JSONValue(source.width)), ("height", JSONValue(source.height)),
            ("bytes", JSONValue(stripped.bytes.count)), ("format", .string(VipsOutputFormat.jpeg.rawValue)),
            ("icc", .string(source.hasICCProfile ? "kept" : "none")), ("lossless", .bool(true)),
            ("removed", .array(stripped.removed.map { .string($0) })),
        ]))
    }

    static func cleanKey(for source: String, format: VipsOutputFormat) -> String {
        var stem = source
        let slash = stem.lastIndex(of: "/")
        if let dot = stem.lastIndex(of: "."), slash.map({ dot > $0 }) ?? true { stem = String(stem[..<dot]) }
        return "\(stem).clean.\(format.fileExtension)"
    }
}
