import ConveyorCore
import Foundation
import Testing

@testable import Images

/// `image.strip_metadata`'s lossless path: an upright JPEG loses its metadata segments and keeps its compressed
/// pixels byte for byte. The oracle for "the same pixels" is ImageMagick's decoder, not Conveyor's.
@Suite struct LosslessStripTests {
    /// The SHA-256 of every pixel of `key`, decoded by ImageMagick.
    func pixels(_ box: MediaSandbox, _ key: String) async throws -> String {
        let digest = try await box.run("sh", "-c", "convert \"$1\" -depth 8 rgb:- | sha256sum", "sh", box.path(key))
        #expect(digest.count > 64 && !digest.hasPrefix("e3b0c442"), "no pixels decoded from \(key)")
        return digest
    }

    func taggedPhoto(_ box: MediaSandbox, _ key: String, interlace: Bool = false) async throws {
        var arguments = ["convert", "-size", "640x480", "plasma:", "-quality", "85"]
        if interlace { arguments += ["-interlace", "Plane"] }
        try await tool(arguments + [box.path("plain-" + key)], in: box.media)
        try await box.run("vips", "icc_transform", box.path("plain-" + key), box.path(key), "srgb", "--input-profile", "srgb")
        try await box.run("exiftool", "-overwrite_original", "-GPSLatitude=48.85", "-GPSLatitudeRef=N", "-GPSLongitude=2.35",
                          "-GPSLongitudeRef=E", "-Orientation#=1", "-Make=Phone", "-Model=X1", "-SerialNumber=123456",
                          "-XMP:Creator=me", "-IPTC:City=Paris", "-Comment=call me on 555-0100", key)
    }

    @Test(arguments: [false, true])
    func metadataGoesAndEveryPixelStays(progressive: Bool) async throws {
        let box = try MediaSandbox()
        try await taggedPhoto(box, "photo.jpg", interlace: progressive)
        // An archive appended after the image (a polyglot): not part of any copy.
        try box.write("photo.jpg", try box.bytes("photo.jpg") + Array("PK\u{3}\u{4}secret.txt".utf8))
        let before = try await box.exifTags("photo.jpg")
        #expect(before.contains("EXIF:GPSLatitude") && before.contains("IPTC:City") && before.contains("File:Comment"), "\(before)")

        let result = try await box.perform("image.strip_metadata", source("photo.jpg"))
        #expect(result["lossless"] == true)
        #expect(result["icc"] == "kept")
        #expect(result["width"] == 640 && result["height"] == 480)
        let removed = result["removed"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for kind in ["EXIF", "XMP", "IPTC", "COM", "trailing bytes"] { #expect(removed.contains(kind), "\(removed)") }

        let tags = try await box.exifTags("photo.clean.jpg")
        let leaked = tags.filter {
            $0.hasPrefix("EXIF:") || $0.hasPrefix("XMP") || $0.hasPrefix("IPTC:") || $0.contains("GPS") || $0.contains("Comment") || $0.hasPrefix("MakerNotes")
        }
        #expect(leaked.isEmpty, "leaked: \(leaked)")
        #expect(tags.contains { $0.hasPrefix("ICC_Profile:") })
        let clean = try box.bytes("photo.clean.jpg")
        #expect(result["bytes"]?.intValue == clean.count)
        #expect(!String(decoding: clean, as: UTF8.self).contains("secret.txt"))
        #expect(!String(decoding: clean, as: UTF8.self).contains("555-0100"))
        #expect(try await pixels(box, "photo.clean.jpg") == pixels(box, "photo.jpg"))
    }

    @Test func rotationConversionOrAskingForItReencodes() async throws {
        let box = try MediaSandbox()
        try await taggedPhoto(box, "a.jpg")
        let asked = try await box.perform("image.strip_metadata", source("a.jpg", [("lossless", false), ("destination", "asked.jpg")]))
        #expect(asked["lossless"] == false)
        let converted = try await box.perform("image.strip_metadata", source("a.jpg", [("icc", "srgb"), ("destination", "srgb.jpg")]))
        #expect(converted["lossless"] == false)
        try await box.run("exiftool", "-overwrite_original", "-Orientation#=6", "a.jpg")
        let rotated = try await box.perform("image.strip_metadata", source("a.jpg", [("destination", "rotated.jpg")]))
        #expect(rotated["lossless"] == false)
        #expect(rotated["width"] == 480 && rotated["height"] == 640)
        #expect(await box.failure("image.strip_metadata", source("a.jpg", [("lossless", "yes")]))?.errorClass == "InvalidArguments")
    }

    /// A JPEG cut short has no EOI: not rewritten, and libvips then refuses it as truncated. Nothing is left behind.
    @Test func aTruncatedJPEGIsCorruptNotCopied() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "800x600", "plasma:", box.path("whole.jpg"))
        let bytes = try box.bytes("whole.jpg")
        try box.write("cut.jpg", Array(bytes.prefix(bytes.count / 2)))
        let f = await box.failure("image.strip_metadata", source("cut.jpg"))
        #expect(f?.errorClass == "ImageCorrupt", "\(String(describing: f))")
        #expect(!FileManager.default.fileExists(atPath: box.path("cut.clean.jpg")))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: box.media).filter { $0.hasPrefix(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    /// A progressive JPEG whose second scan has impossible parameters: the header is fine, and only decoding the
    /// scans finds it. The check decode before publishing does; without it the copy would go out as is.
    @Test func aScanOnlyADecodeCanRefuseIsNotPublished() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "320x240", "plasma:", "-interlace", "Plane", box.path("p.jpg"))
        var bytes = try box.bytes("p.jpg")
        let scans = (0..<bytes.count - 1).filter { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xDA }
        try #require(scans.count > 2, "a progressive JPEG has several scans")
        let second = scans[1]
        let components = Int(bytes[second + 4])
        bytes[second + 6 + 2 * components] = 70  // Se past the 64 coefficients
        try box.write("bad.jpg", bytes)
        let f = await box.failure("image.strip_metadata", source("bad.jpg"))
        #expect(f?.errorClass == "ImageCorrupt", "\(String(describing: f))")
        #expect(!FileManager.default.fileExists(atPath: box.path("bad.clean.jpg")))
        // Without the check decode the header passes and the copy is written: the check is what refuses it.
        let unchecked = try ImageOperations.stripMetadata(
            StripMetadataRequest(arguments: source("bad.jpg", [("destination", "unchecked.jpg")])), root: box.configuration.mediaRoot,
            limits: box.configuration.limits, verifyLosslessCopy: false, deadline: .now + .seconds(30))
        #expect(unchecked["lossless"] == true)
        let thumbnail = await box.failure("image.thumbnail", source("bad.jpg", [("variants", variants([("v", 64, 64, "inside", "webp")]))]))
        #expect(thumbnail?.errorClass == "ImageCorrupt", "media.ingest's thumbnails, made first, refuse it too")
    }

    /// The rewrite itself, on hostile marker streams: never a crash, never a copy of something it cannot parse.
    @Test func malformedMarkerStreamsAreNotRewritten() throws {
        let soi: [UInt8] = [0xFF, 0xD8]
        let sof: [UInt8] = [0xFF, 0xC0, 0x00, 0x0B, 8, 0, 1, 0, 1, 1, 1, 0x11, 0]
        let sos: [UInt8] = [0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 63, 0]
        let eoi: [UInt8] = [0xFF, 0xD9]
        let good = soi + sof + sos + [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56] + eoi
        let stripped = try #require(JPEGSegments.strip(good, keepICC: true))
        #expect(stripped.bytes == good)
        #expect(stripped.removed.isEmpty)
        let exif: [UInt8] = [0xFF, 0xE1, 0x00, 0x08] + Array("Exif\0\0".utf8)
        #expect(JPEGSegments.strip(soi + exif + sof + sos + [1, 2] + eoi, keepICC: true)?.bytes == soi + sof + sos + [1, 2] + eoi)
        let hostile: [[UInt8]] = [
            [], soi, [0x89, 0x50, 0x4E, 0x47],
            soi + [0xFF, 0xE1, 0xFF, 0xFF, 0, 0],  // a length past the end
            soi + [0xFF, 0xE1, 0x00, 0x01],  // a length below 2
            soi + sof + sos + [1, 2, 3],  // no EOI
            soi + sos + [1] + eoi,  // a scan before any frame
            soi + sof + eoi,  // no scan
            soi + sof + sof + sos + eoi,  // two frames
            soi + [0xFF, 0xC5, 0x00, 0x02] + sos + eoi,  // a hierarchical frame
            soi + [0xFF, 0xD0] + sof + sos + eoi,  // a restart marker outside a scan
            soi + sof + sos + [0xFF],  // ends inside a marker
            soi + [0x00] + sof + sos + eoi,  // bytes between segments
        ]
        for bytes in hostile { #expect(JPEGSegments.strip(bytes, keepICC: true) == nil, "\(bytes)") }
        // A JFIF thumbnail: header kept, thumbnail pixels dropped.
        let jfif: [UInt8] = [0xFF, 0xE0, 0x00, 0x16] + Array("JFIF\0".utf8) + [1, 2, 0, 0, 1, 0, 1, 2, 1] + [9, 9, 9, 9, 9, 9]
        let thumbless = try #require(JPEGSegments.strip(soi + jfif + sof + sos + eoi, keepICC: true))
        #expect(thumbless.bytes == soi + [0xFF, 0xE0, 0x00, 0x10] + Array("JFIF\0".utf8) + [1, 2, 0, 0, 1, 0, 1, 0, 0] + sof + sos + eoi)
        #expect(thumbless.removed == ["JFIF thumbnail"])
    }
}
