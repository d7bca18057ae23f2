internal import CShims
internal import CVips

/// Output encoders Conveyor writes.
public enum VipsOutputFormat: String, Sendable, CaseIterable {
    case jpeg, png, webp, avif, gif

    var code: Int32 {
        switch self {
        case .jpeg: 0
        case .png: 1
        case .webp: 2
        case .avif: 3
        case .gif: 4
        }
    }

    public var fileExtension: String {
        switch self {
        case .jpeg: "jpg"
        default: rawValue
        }
    }
}

/// libvips, started once per process with only trusted loaders enabled.
public enum Vips {
    /// Loaders left enabled: every other `VipsForeignLoad` class is blocked.
    public static let allowedLoaders = ["jpegload", "pngload", "webpload", "gifload", "heifload"]

    /// Starts libvips (thread-safe, once): blocks every loader except JPEG, PNG, WebP, GIF and HEIF/AVIF and
    /// turns off the operation cache.
    public static func start(concurrency: Int = 0) throws(VipsError) {
        if cshims_vips_start(Int32(concurrency)) != 0 { throw VipsError.capture("vips_init") }
    }

    /// The loader libvips would choose from the file's bytes, whatever its name says; nil when none would.
    /// Blocked loaders are reported too (by their name), so callers can say what the file really is.
    public static func loader(for path: String) -> String? {
        guard let name = cshims_vips_loader(path) else {
            vips_error_clear()
            return nil
        }
        let s = String(cString: name)
        // Class nicknames such as "jpegload"; vips_foreign_find_load returns the type name.
        return s
    }

    /// An 8-bit RGBA (sRGB) image from pixels in memory, `width` × `height` × 4 bytes (copied).
    public static func image(rgba pixels: [UInt8], width: Int, height: Int) throws(VipsError) -> VipsImage {
        let image = pixels.withUnsafeBytes { raw in
            vips_image_new_from_memory_copy(raw.baseAddress, raw.count, Int32(width), Int32(height), 4, VIPS_FORMAT_UCHAR)
        }
        guard let image else { throw VipsError.capture("new_from_memory_copy") }
        return VipsImage(owning: image)
    }

    /// Opens a file lazily: only the header is read until pixels are needed.
    public static func open(_ path: String, sequential: Bool = false) throws(VipsError) -> VipsImage {
        guard let image = cshims_vips_open(path, sequential ? 1 : 0) else { throw VipsError.capture("open") }
        return VipsImage(owning: image)
    }

    /// Decodes with shrink-on-load so the result fits inside `width` x `height` (never enlarged) and applies the
    /// EXIF orientation; `iccToSRGB` converts through the embedded profile (a per-pixel colour transform, so
    /// only worth it when the image has a profile).
    public static func thumbnail(file path: String, width: Int, height: Int, iccToSRGB: Bool) throws(VipsError) -> VipsImage {
        var out: UnsafeMutablePointer<CVips.VipsImage>?
        if cshims_vips_thumbnail_file(path, &out, Int32(width), Int32(height), iccToSRGB ? 1 : 0) != 0 || out == nil {
            throw VipsError.capture("thumbnail")
        }
        return VipsImage(owning: out!)
    }

    /// Decodes a JPEG at 1/`shrink` of its size (libjpeg's DCT scaling: 2, 4 or 8) and fits the result inside
    /// `width` x `height` (never enlarged). The box is in the stored orientation: the EXIF orientation is left
    /// for the caller to apply once the pixels are in memory.
    public static func thumbnail(jpeg path: String, shrink: Int, width: Int, height: Int, iccToSRGB: Bool) throws(VipsError) -> VipsImage {
        var out: UnsafeMutablePointer<CVips.VipsImage>?
        if cshims_vips_thumbnail_jpeg(path, &out, Int32(width), Int32(height), iccToSRGB ? 1 : 0, Int32(shrink)) != 0 || out == nil {
            throw VipsError.capture("thumbnail")
        }
        return VipsImage(owning: out!)
    }

    /// Resizes an already decoded image: `crop` fills the box and cuts the overflow (centre), otherwise it
    /// fits inside; never enlarges.
    public static func thumbnail(_ image: VipsImage, width: Int, height: Int, crop: Bool) throws(VipsError) -> VipsImage {
        try unary("thumbnail_image") { cshims_vips_thumbnail_image(image.pointer, &$0, Int32(width), Int32(height), crop ? 1 : 0) }
    }

    /// Centres the image on a `width` x `height` canvas of `background` (one value per band).
    public static func embedCentre(_ image: VipsImage, width: Int, height: Int, background: [Double]) throws(VipsError) -> VipsImage {
        try unary("gravity") { out in
            background.withUnsafeBufferPointer { cshims_vips_embed_centre(image.pointer, &out, Int32(width), Int32(height), $0.baseAddress, Int32($0.count)) }
        }
    }

    public static func colourspaceSRGB(_ image: VipsImage) throws(VipsError) -> VipsImage {
        try unary("colourspace") { cshims_vips_colourspace_srgb(image.pointer, &$0) }
    }

    /// Converts pixels to sRGB through the embedded ICC profile.
    public static func iccToSRGB(_ image: VipsImage) throws(VipsError) -> VipsImage {
        try unary("icc_transform") { cshims_vips_icc_to_srgb(image.pointer, &$0) }
    }

    public static func castUChar(_ image: VipsImage) throws(VipsError) -> VipsImage {
        try unary("cast") { cshims_vips_cast_uchar(image.pointer, &$0) }
    }

    /// Applies the EXIF orientation to the pixels and removes the tag.
    public static func autorotate(_ image: VipsImage) throws(VipsError) -> VipsImage {
        try unary("autorot") { cshims_vips_autorot(image.pointer, &$0) }
    }

    /// Renders the image into memory, so later operations do not decode the file again.
    public static func copyToMemory(_ image: VipsImage) throws(VipsError) -> VipsImage {
        guard let out = vips_image_copy_memory(image.pointer) else { throw VipsError.capture("copy_memory") }
        return VipsImage(owning: out)
    }

    /// Encodes the image to `path`. `strip` drops all metadata (the ICC profile too, on libvips 8.14). `effort`:
    /// encoder CPU effort for WebP (0-6, default 4) and AVIF (0-9, default 2); nil for the format's default.
    public static func save(_ image: VipsImage, to path: String, format: VipsOutputFormat, quality: Int, strip: Bool,
                            effort: Int? = nil) throws(VipsError) {
        if cshims_vips_save(image.pointer, path, format.code, Int32(quality), strip ? 1 : 0, Int32(effort ?? -1)) != 0 {
            throw VipsError.capture("\(format.rawValue)save")
        }
    }

    private static func unary(
        _ name: String, _ call: (inout UnsafeMutablePointer<CVips.VipsImage>?) -> Int32
    ) throws(VipsError) -> VipsImage {
        var out: UnsafeMutablePointer<CVips.VipsImage>?
        if call(&out) != 0 || out == nil { throw VipsError.capture(name) }
        return VipsImage(owning: out!)
    }
}
