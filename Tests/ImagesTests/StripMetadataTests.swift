import ConveyorCore
import Foundation
import Images
import Testing

@Suite struct StripMetadataTests {
    @Test func gpsAndExifAreGoneAndPixelsAreUpright() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "640x480", "gradient:red-blue", box.path("plain.jpg"))
        // Tag it with libvips' built-in sRGB profile, so there is an ICC profile to keep.
        try box.run("vips", "icc_transform", box.path("plain.jpg"), box.path("photo.jpg"), "srgb", "--input-profile", "srgb")
        try box.run("exiftool", "-overwrite_original", "-GPSLatitude=48.85", "-GPSLatitudeRef=N", "-GPSLongitude=2.35",
                    "-GPSLongitudeRef=E", "-Orientation#=6", "-Make=Phone", "-Model=X1", "-SerialNumber=123456",
                    "-XMP:Creator=me", "-IPTC:City=Paris", "photo.jpg")
        let before = try box.exifTags("photo.jpg")
        #expect(before.contains("EXIF:GPSLatitude"))
        let result = try await box.perform("image.strip_metadata", source("photo.jpg"))
        #expect(result["key"] == "photo.clean.jpg")
        #expect(result["width"] == 480 && result["height"] == 640)
        #expect(result["format"] == "jpeg")
        let tags = try box.exifTags("photo.clean.jpg")
        let leaked = tags.filter { $0.hasPrefix("EXIF:") || $0.hasPrefix("XMP") || $0.hasPrefix("IPTC:") || $0.contains("GPS") || $0.hasPrefix("MakerNotes") }
        #expect(leaked.isEmpty, "leaked: \(leaked)")
        #expect(try box.header("photo.clean.jpg", "width") == "480")
        #expect(try box.header("photo.clean.jpg", "height") == "640")
        // The ICC profile is kept by default.
        #expect(result["icc"] == "kept")
        #expect(tags.contains { $0.hasPrefix("ICC_Profile:") })
    }

    @Test func iccCanBeConvertedToSRGBAndDropped() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "200x100", "xc:green", box.path("plain.jpg"))
        try box.run("vips", "icc_transform", box.path("plain.jpg"), box.path("wide.jpg"), "srgb", "--input-profile", "srgb")
        try box.run("exiftool", "-overwrite_original", "-GPSLatitude=1", "-GPSLatitudeRef=N", "wide.jpg")
        let result = try await box.perform("image.strip_metadata", source("wide.jpg", [("icc", "srgb"), ("destination", "clean/wide.jpg")]))
        #expect(result["icc"] == "converted-to-srgb")
        #expect(result["key"] == "clean/wide.jpg")
        let tags = try box.exifTags("clean/wide.jpg")
        #expect(!tags.contains { $0.hasPrefix("ICC_Profile:") || $0.hasPrefix("EXIF:") || $0.contains("GPS") }, "\(tags)")
    }

    @Test func pngAndWebPKeepTheirFormat() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "120x80", "plasma:", box.path("a.png"))
        try box.run("exiftool", "-overwrite_original", "-XMP:Creator=me", "-PNG:Comment=secret", "a.png")
        try box.run("vips", "copy", box.path("a.png"), box.path("b.webp"))
        try box.run("exiftool", "-overwrite_original", "-XMP:Creator=me", "b.webp")
        let png = try await box.perform("image.strip_metadata", source("a.png"))
        let webp = try await box.perform("image.strip_metadata", source("b.webp"))
        #expect(png["format"] == "png" && webp["format"] == "webp")
        for key in [png["key"]!.stringValue!, webp["key"]!.stringValue!] {
            let tags = try box.exifTags(key)
            #expect(!tags.contains { $0.hasPrefix("XMP") || $0.hasPrefix("EXIF:") || $0.contains("Comment") }, "\(key): \(tags)")
        }
        #expect(png["width"] == 120 && webp["height"] == 80)
    }
}
