import ConveyorCore
import Storage
import Foundation
import Images
import Testing

@Suite struct ThumbnailTests {
    @Test func orientation6PhotoComesOutUprightWithoutGPS() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "1200x800", "gradient:red-blue", "uploads/photo.jpg".prefixingDirectory(box))
        try await box.run("exiftool", "-overwrite_original", "-GPSLatitude=48.85", "-GPSLatitudeRef=N", "-GPSLongitude=2.35",
                    "-GPSLongitudeRef=E", "-Orientation#=6", "-Artist=someone", "-XMP:Creator=me", "uploads/photo.jpg")
        let result = try await box.perform("image.thumbnail", source("uploads/photo.jpg", [
            ("destination", "thumbs/photo"),
            ("variants", variants([("cover", 200, 100, "cover", "webp"), ("inside", 400, 400, "inside", "jpeg"),
                                   ("boxed", 300, 300, "contain", "png"), ("av", 120, 120, "inside", "avif")])),
        ]))
        // Stored 1200x800 with orientation 6: upright it is 800x1200.
        #expect(result["source_width"] == 800)
        #expect(result["source_height"] == 1200)
        let list = try #require(result["variants"]?.arrayValue)
        #expect(list.count == 4)
        let byName = Dictionary(uniqueKeysWithValues: list.map { ($0["name"]!.stringValue!, $0) })
        #expect(byName["cover"]?["width"] == 200 && byName["cover"]?["height"] == 100)
        #expect(byName["inside"]?["width"] == 267 && byName["inside"]?["height"] == 400)
        #expect(byName["boxed"]?["width"] == 300 && byName["boxed"]?["height"] == 300)
        #expect(byName["av"]?["height"] == 120 && byName["av"]?["format"] == "avif")
        #expect(byName["inside"]?["key"] == "thumbs/photo/inside.jpg")
        for v in list {
            let key = try #require(v["key"]?.stringValue)
            #expect(try await box.header(key, "width") == String(v["width"]!.intValue!))
            #expect(try await box.header(key, "height") == String(v["height"]!.intValue!))
            #expect(v["bytes"]?.intValue == (try FileManager.default.attributesOfItem(atPath: box.path(key))[.size] as? Int))
            let tags = try await box.exifTags(key)
            #expect(!tags.contains { $0.hasPrefix("EXIF:") || $0.hasPrefix("XMP:") || $0.hasPrefix("IPTC:") || $0.contains("GPS") },
                    "\(key) kept metadata: \(tags)")
        }
        // Upright: the gradient runs red (top of the stored image) → rotated 90° CW the red side is on the right.
        let right = try await box.run("vips", "getpoint", "thumbs/photo/inside.jpg", "260", "200")
        let left = try await box.run("vips", "getpoint", "thumbs/photo/inside.jpg", "5", "200")
        let redRight = Double(right.split(separator: " ")[0]) ?? 0
        let redLeft = Double(left.split(separator: " ")[0]) ?? 0
        #expect(redRight > redLeft + 100)
        // No temporary files are left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: box.path("thumbs/photo")).filter { $0.hasPrefix(".tmp-") }
        #expect(leftovers.isEmpty)
    }

    @Test func orientation8SwapsDimensionsToo() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "600x300", "gradient:white-black", "uploads/p8.jpg".prefixingDirectory(box))
        try await box.run("exiftool", "-overwrite_original", "-Orientation#=8", "uploads/p8.jpg")
        let result = try await box.perform("image.thumbnail", source("uploads/p8.jpg", [
            ("variants", variants([("v", 100, 100, "inside", "jpeg")])),
        ]))
        #expect(result["source_width"] == 300 && result["source_height"] == 600)
        #expect(result["variants"]?[0]?["width"] == 50 && result["variants"]?[0]?["height"] == 100)
        #expect(result["variants"]?[0]?["key"] == "thumbnails/uploads/p8/v.jpg")
    }

    @Test func shrinkOnLoadMatchesAFullSizeDecode() async throws {
        // Photo-like detail (a fractal surface has a photo's 1/f spectrum), stored 2400x1800 with orientation 6.
        // For an 800 px box libjpeg decodes it at half size, where libvips' own thumbnail decodes all of it:
        // the two must agree in size and, pixel for pixel, to well within what a WebP/JPEG encode changes.
        // With CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD=off Conveyor follows libvips' rule and matches it exactly.
        let fast = try MediaSandbox()
        let libvips = try MediaSandbox(environment: ["CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD": "off"])
        var meanSquaredError: [Double] = []
        for box in [fast, libvips] {
            try await box.run("vips", "fractsurf", box.path("f.v"), "2400", "1800", "2.8")
            try await box.run("vips", "scale", box.path("f.v"), box.path("s.v"))
            try await box.run("vips", "bandjoin", "\(box.path("s.v")) \(box.path("s.v")) \(box.path("s.v"))", box.path("rgb.v"))
            try await box.run("vips", "copy", box.path("rgb.v"), "uploads/detail.jpg".prefixingDirectory(box) + "[Q=92]")
            try await box.run("exiftool", "-overwrite_original", "-Orientation#=6", "uploads/detail.jpg")
            let result = try await box.perform("image.thumbnail", source("uploads/detail.jpg", [
                ("destination", "detail"), ("variants", variants([("v", 800, 800, "inside", "png")])),
            ]))
            #expect(result["variants"]?[0]?["width"] == 600 && result["variants"]?[0]?["height"] == 800)
            try await box.run("vips", "thumbnail", box.path("uploads/detail.jpg"), box.path("reference.png"), "800", "--height", "800")
            #expect(try await box.header("reference.png", "width") == "600")
            try await box.run("vips", "subtract", box.path("detail/v.png"), box.path("reference.png"), box.path("d.v"))
            try await box.run("vips", "multiply", box.path("d.v"), box.path("d.v"), box.path("d2.v"))
            let text = try await box.run("vips", "avg", box.path("d2.v")).trimmingCharacters(in: .whitespacesAndNewlines)
            meanSquaredError.append(try #require(Double(text)))
        }
        // Decoded at half size: close to, but not the same as, the full-size decode.
        let psnr = 10 * log10(255 * 255 / max(meanSquaredError[0], 1e-9))
        #expect(meanSquaredError[0] > 0 && psnr > 40, "PSNR against libvips' full-size decode: \(psnr) dB")
        #expect(meanSquaredError[1] == 0, "libvips' rule: mean squared error \(meanSquaredError[1])")
        #expect(throws: JobFailure.self) {
            try ImagesConfiguration(environment: ["CONVEYOR_MEDIA_ROOT": fast.media, "CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD": "maybe"])
        }
    }

    @Test func defaultVariantsNeverEnlarge() async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "black", "uploads/small.png".prefixingDirectory(box), "500", "250")
        let result = try await box.perform("image.thumbnail", source("uploads/small.png"))
        let list = try #require(result["variants"]?.arrayValue)
        #expect(list.map { $0["name"]?.stringValue } == ["small", "medium", "large"])
        // cover 320x320: never enlarged, so the 250-pixel height stays and the width is cut to 320.
        #expect(list[0]["width"] == 320 && list[0]["height"] == 250)
        #expect(list[2]["width"] == 500 && list[2]["height"] == 250)
        #expect(list.allSatisfy { $0["format"] == "webp" })
    }

    @Test func cmykJPEGBecomesSRGB() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "400x300", "xc:red", "-colorspace", "CMYK", "uploads/cmyk.jpg".prefixingDirectory(box))
        let result = try await box.perform("image.thumbnail", source("uploads/cmyk.jpg", [("variants", variants([("v", 100, 100, "inside", "jpeg")]))]))
        let key = try #require(result["variants"]?[0]?["key"]?.stringValue)
        #expect(try await box.header(key, "bands") == "3")
        let interpretation = try await box.header(key, "interpretation")
        #expect(interpretation.contains("SRGB") || interpretation.contains("sRGB"))
        let pixel = try await box.run("vips", "getpoint", key, "50", "30").split(separator: " ").compactMap { Double($0) }
        #expect(pixel.count == 3 && pixel[0] > 200 && pixel[1] < 80)
    }

    @Test func sixteenBitPNGBecomesEightBit() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "300x200", "gradient:white-black", "-depth", "16", "PNG48:uploads/deep.png".prefixingDirectory(box, after: "PNG48:"))
        #expect(try await box.header("uploads/deep.png", "format").contains("USHORT"))
        let result = try await box.perform("image.thumbnail", source("uploads/deep.png", [("variants", variants([("v", 150, 150, "inside", "png")]))]))
        let key = try #require(result["variants"]?[0]?["key"]?.stringValue)
        #expect(try await box.header(key, "format").contains("UCHAR"))
        #expect(result["variants"]?[0]?["width"] == 150)
    }

    @Test func animatedGIFGivesItsFirstFrame() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "200x100", "xc:red", "xc:blue", "xc:green", "-loop", "0", "uploads/anim.gif".prefixingDirectory(box))
        let result = try await box.perform("image.thumbnail", source("uploads/anim.gif", [("variants", variants([("v", 100, 100, "inside", "webp")]))]))
        #expect(result["frames"] == 3)
        #expect(result["variants"]?[0]?["width"] == 100 && result["variants"]?[0]?["height"] == 50)
        let key = try #require(result["variants"]?[0]?["key"]?.stringValue)
        let pixel = try await box.run("vips", "getpoint", key, "50", "25").split(separator: " ").compactMap { Double($0) }
        #expect(pixel.first.map { $0 > 200 } == true)  // red: the first frame
    }

    @Test func invalidArgumentsArePermanent() async throws {
        let box = try MediaSandbox()
        let missing = await box.failure("image.thumbnail", JSONObject())
        #expect(missing?.errorClass == "InvalidArguments")
        let badFit = await box.failure("image.thumbnail", source("a.jpg", [("variants", variants([("v", 10, 10, "stretch", "webp")]))]))
        #expect(badFit?.errorClass == "InvalidArguments" && badFit?.isPermanent == true)
        let badFormat = await box.failure("image.thumbnail", source("a.jpg", [("variants", variants([("v", 10, 10, "cover", "bmp")]))]))
        #expect(badFormat?.message.contains("format") == true)
    }

    @Test func encoderEffortReachesTheEncoderAndIsChecked() async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "gaussnoise", box.path("noise.v"), "600", "400")
        try await box.run("vips", "copy", box.path("noise.v"), box.path("noise.jpg") + "[Q=90]")
        func variant(_ name: String, _ format: String, _ effort: Int) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("width", 400), ("height", 400), ("format", .string(format)),
                                ("effort", JSONValue(effort))]))
        }
        let result = try await box.perform("image.thumbnail", source("noise.jpg", [
            ("destination", "effort"), ("variants", .array([variant("fast", "webp", 0), variant("slow", "webp", 6)])),
        ]))
        #expect(result["variants"]?[0]?["width"] == 400 && result["variants"]?[1]?["width"] == 400)
        // Same pixels, same quality: a different effort makes a different file.
        #expect(try box.bytes("effort/fast.webp") != box.bytes("effort/slow.webp"))
        for (format, effort) in [("webp", 7), ("avif", 10), ("jpeg", 3), ("png", 1)] {
            let bad = await box.failure("image.thumbnail", source("noise.jpg", [("variants", .array([variant("v", format, effort)]))]))
            #expect(bad?.errorClass == "InvalidArguments" && bad?.isPermanent == true, "\(format) effort \(effort)")
            #expect(bad?.message.contains("effort") == true)
        }
    }

    @Test func deploymentEffortAppliesWhereAVariantNamesNone() async throws {
        let box = try MediaSandbox(environment: ["CONVEYOR_IMAGE_WEBP_EFFORT": "0"])
        try await box.run("vips", "gaussnoise", box.path("noise.v"), "600", "400")
        try await box.run("vips", "copy", box.path("noise.v"), box.path("noise.jpg") + "[Q=90]")
        func variant(_ name: String, _ effort: Int?) -> JSONValue {
            .object(JSONObject([("name", .string(name)), ("width", 400), ("height", 400), ("format", "webp")]
                + (effort.map { [("effort", JSONValue($0))] } ?? [])))
        }
        _ = try await box.perform("image.thumbnail", source("noise.jpg", [
            ("destination", "e"), ("variants", .array([variant("unnamed", nil), variant("zero", 0), variant("six", 6)])),
        ]))
        #expect(try box.bytes("e/unnamed.webp") == box.bytes("e/zero.webp"))
        #expect(try box.bytes("e/unnamed.webp") != box.bytes("e/six.webp"))
        for (name, value) in [("CONVEYOR_IMAGE_WEBP_EFFORT", "7"), ("CONVEYOR_IMAGE_AVIF_EFFORT", "fast"), ("CONVEYOR_IMAGE_IN_PROCESS", "maybe")] {
            #expect(throws: JobFailure.self) { try ImagesConfiguration(environment: ["CONVEYOR_MEDIA_ROOT": box.media, name: value]) }
        }
    }

    @Test func theDefaultMediaRootIsNotCreated() throws {
        let missing = NSTemporaryDirectory() + "conveyor-no-root-\(UUID().uuidString)"
        let root = try MediaRoot(missing, create: false)
        #expect(!FileManager.default.fileExists(atPath: missing), "a root nobody configured is not created")
        #expect(throws: JobFailure.self) { try root.source("uploads/a.jpg") }
        do {
            _ = try root.destination("thumbs/a.webp")
            Issue.record("a missing root accepted a destination")
        } catch {
            #expect(error.errorClass == "MediaRootUnavailable")
            #expect(error.message.contains("CONVEYOR_MEDIA_ROOT"))
        }
        #expect(!FileManager.default.fileExists(atPath: missing))
        // A configured root is created.
        let configured = try MediaRoot(environment: ["CONVEYOR_MEDIA_ROOT": missing])
        #expect(FileManager.default.fileExists(atPath: configured.path))
        try FileManager.default.removeItem(atPath: missing)
    }

    @Test func pathsMustStayInsideTheMediaRoot() async throws {
        let box = try MediaSandbox()
        try await box.run("vips", "black", box.path("ok.png"), "10", "10")
        let absolute = await box.failure("image.thumbnail", source("/etc/passwd"))
        #expect(absolute?.errorClass == "PathOutsideMediaRoot" && absolute?.isPermanent == true)
        let dotdot = await box.failure("image.thumbnail", source("uploads/../../secret.jpg"))
        #expect(dotdot?.errorClass == "PathOutsideMediaRoot")
        try await box.run("vips", "black", box.root + "/outside.png", "10", "10")
        try FileManager.default.createSymbolicLink(atPath: box.path("link.png"), withDestinationPath: box.root + "/outside.png")
        let link = await box.failure("image.thumbnail", source("link.png"))
        #expect(link?.errorClass == "PathOutsideMediaRoot")
        try FileManager.default.createSymbolicLink(atPath: box.path("out"), withDestinationPath: box.root)
        let escape = await box.failure("image.thumbnail", source("ok.png", [("destination", "out/thumbs")]))
        #expect(escape?.errorClass == "PathOutsideMediaRoot")
        #expect(!FileManager.default.fileExists(atPath: box.root + "/thumbs"))
        let missing = await box.failure("image.thumbnail", source("nope.jpg"))
        #expect(missing?.errorClass == "SourceNotFound")
    }
}

extension String {
    /// Makes a media key into an absolute path inside the sandbox, creating its directory (for tools that
    /// write files). `after` keeps a coder prefix such as `PNG48:`.
    func prefixingDirectory(_ box: MediaSandbox, after prefix: String = "") -> String {
        let key = String(dropFirst(prefix.count))
        try? FileManager.default.createDirectory(atPath: (box.path(key) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        return prefix + box.path(key)
    }
}

@Suite struct JobFileTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func examplesPassTheHandlersValidation() throws {
        for name in ["image.thumbnail", "image.strip_metadata"] {
            let data = try Data(contentsOf: Self.repository.appendingPathComponent("Jobs/examples/\(name).json"))
            let job = try JSONValue(parsing: Array(data))
            #expect(job["class"]?.stringValue == name)
            #expect(job["queue"] == "media")
            let arguments = try #require(job["args"]?[0]?.objectValue)
            if name == "image.thumbnail" {
                let request = try ThumbnailRequest(arguments: arguments)
                #expect(request.variants.count == 3)
                #expect(request.variants[2].format == .jpeg)
            } else {
                let request = try StripMetadataRequest(arguments: arguments)
                #expect(request.icc == .keep)
            }
            let schema = try JSONValue(parsing: Array(try Data(contentsOf: Self.repository.appendingPathComponent("Jobs/\(name).schema.json"))))
            let allowed = Set(schema["properties"]?.objectValue?.keys ?? [])
            #expect(Set(arguments.keys).isSubset(of: allowed))
        }
    }

    @Test func unknownArgumentsAreRejected() throws {
        #expect(throws: JobFailure.self) { try ThumbnailRequest(arguments: JSONObject([("source", "a.jpg"), ("size", 3)])) }
        #expect(throws: JobFailure.self) { try StripMetadataRequest(arguments: JSONObject([("source", "a.jpg"), ("keep_gps", true)])) }
    }
}

@Suite struct HEIFSourceTests {
    @Test func avifSourceIsReadThroughHeifload() async throws {
        let box = try MediaSandbox()
        try await box.run("convert", "-size", "300x200", "gradient:red-blue", box.path("plain.png"))
        try await box.run("vips", "heifsave", box.path("plain.png"), box.path("uploads/pic.avif".prefixingDirectory(box).replacingOccurrences(of: box.media + "/", with: "")), "--compression", "av1")
        let result = try await box.perform("image.thumbnail", source("uploads/pic.avif", [("variants", variants([("v", 150, 150, "inside", "jpeg")]))]))
        #expect(result["source_format"] == "heif")
        #expect(result["variants"]?[0]?["width"] == 150 && result["variants"]?[0]?["height"] == 100)
    }
}
