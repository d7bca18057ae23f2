internal import CShims
internal import CVips

/// One libvips image handle; the reference is released when the wrapper goes away.
///
/// Not thread-safe to share: one job owns it.
public final class VipsImage {
    let pointer: UnsafeMutablePointer<CVips.VipsImage>

    init(owning pointer: UnsafeMutablePointer<CVips.VipsImage>) {
        self.pointer = pointer
    }

    deinit { g_object_unref(pointer) }

    public var width: Int { Int(vips_image_get_width(pointer)) }
    public var height: Int { Int(vips_image_get_height(pointer)) }
    public var bands: Int { Int(vips_image_get_bands(pointer)) }
    /// Frames in a multi-page image (animated GIF/WebP, HEIF sequences); 1 otherwise.
    public var pages: Int { Int(vips_image_get_n_pages(pointer)) }
    /// Height of one frame.
    public var pageHeight: Int { Int(vips_image_get_page_height(pointer)) }
    /// EXIF orientation 5-8 swaps width and height once applied.
    public var orientationSwaps: Bool { vips_image_get_orientation_swap(pointer) != 0 }
    public var orientation: Int { Int(cshims_vips_get_int(pointer, "orientation", 1)) }
    /// Progressive JPEG / interlaced PNG: the whole image must be decoded at full size.
    public var isInterlaced: Bool { cshims_vips_get_int(pointer, "interlaced", 0) != 0 }
    public var hasAlpha: Bool { vips_image_hasalpha(pointer) != 0 }
    public var isEightBit: Bool { vips_image_get_format(pointer) == VIPS_FORMAT_UCHAR }
    public var isSRGB: Bool { vips_image_get_interpretation(pointer) == VIPS_INTERPRETATION_sRGB }
    /// The loader that read the image ("jpegload"), when the image came from a file.
    public var loader: String? {
        var value: UnsafePointer<CChar>?
        guard vips_image_get_typeof(pointer, "vips-loader") != 0,
              vips_image_get_string(pointer, "vips-loader", &value) == 0, let value else { return nil }
        return String(cString: value)
    }
    public var hasICCProfile: Bool { vips_image_get_typeof(pointer, "icc-profile-data") != 0 }

    /// The embedded ICC profile's bytes, copied out.
    public var iccProfile: [UInt8]? {
        guard hasICCProfile else { return nil }
        var data: UnsafeRawPointer?
        var length = 0
        guard vips_image_get_blob(pointer, "icc-profile-data", &data, &length) == 0, let data, length > 0 else { return nil }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }

    /// Names of all metadata fields (exif-ifd0-Orientation, xmp-data, icc-profile-data, ...).
    public var fieldNames: [String] {
        guard let fields = vips_image_get_fields(pointer) else { return [] }
        defer { g_strfreev(fields) }
        var names: [String] = []
        var i = 0
        while let field = fields[i] {
            names.append(String(cString: field))
            i += 1
        }
        return names
    }

    /// Removes a metadata field (the image must not be shared: call on a fresh copy).
    public func removeField(_ name: String) { _ = vips_image_remove(pointer, name) }

    /// Stops libvips working on this image once `milliseconds` have passed (its kill flag).
    public func setDeadline(milliseconds: Int) {
        cshims_vips_set_deadline(pointer, gint64(max(0, milliseconds)))
    }
}

@available(*, unavailable)
extension VipsImage: Sendable {}
