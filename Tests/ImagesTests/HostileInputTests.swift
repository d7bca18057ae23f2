import ConveyorCore
import Foundation
import Images
import Testing

/// Every hostile upload gets a specific error or a correct output, and the worker keeps going.
@Suite struct HostileInputTests {
    let thumb = [("variants", variants([("v", 64, 64, "inside", "webp")]))]

    @Test func truncatedJPEGIsCorrupt() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "800x600", "plasma:", box.path("whole.jpg"))
        let whole = try box.bytes("whole.jpg")
        try box.write("uploads/cut.jpg", Array(whole.prefix(whole.count / 2)))
        let f = await box.failure("image.thumbnail", source("uploads/cut.jpg", thumb))
        #expect(f?.errorClass == "ImageCorrupt")
        #expect(f?.isPermanent == true)
        #expect(f?.message.contains("uploads/cut.jpg") == true)
    }

    @Test func truncatedPNGIsCorrupt() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "400x300", "plasma:", box.path("whole.png"))
        let whole = try box.bytes("whole.png")
        try box.write("uploads/cut.png", Array(whole.prefix(whole.count / 2)))
        let f = await box.failure("image.thumbnail", source("uploads/cut.png", thumb))
        #expect(f?.errorClass == "ImageCorrupt")
        #expect(f?.isPermanent == true)
    }

    @Test func zeroBytesIsEmpty() async throws {
        let box = try MediaSandbox()
        try box.write("uploads/empty.jpg", [])
        let f = await box.failure("image.thumbnail", source("uploads/empty.jpg", thumb))
        #expect(f?.errorClass == "ImageEmpty")
        #expect(f?.isPermanent == true)
    }

    @Test func decompressionBombIsRejectedFromItsHeader() async throws {
        let box = try MediaSandbox()
        // 100 bytes on disk that claim 20000x20000 = 400 megapixels.
        let bomb = pngHeader(width: 20000, height: 20000)
        #expect(bomb.count < 200)
        try box.write("uploads/bomb.png", bomb)
        let f = await box.failure("image.thumbnail", source("uploads/bomb.png", thumb))
        #expect(f?.errorClass == "ImageTooLarge")
        #expect(f?.message.contains("20000x20000 exceeds the 50 megapixel limit") == true)
    }

    @Test func svgNamedJPEGIsRefused() async throws {
        let box = try MediaSandbox()
        let svg = #"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><image href="file:///etc/passwd"/><rect width="100" height="100" fill="red"/></svg>"#
        try box.write("uploads/vector.jpg", Array(svg.utf8))
        let f = await box.failure("image.thumbnail", source("uploads/vector.jpg", thumb))
        #expect(f?.errorClass == "UnsupportedImageFormat")
        #expect(f?.message.contains("SVG") == true)
        #expect(f?.isPermanent == true)
    }

    @Test func pdfNamedJPEGIsRefused() async throws {
        let box = try MediaSandbox()
        let pdf = """
        %PDF-1.4
        1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
        2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
        3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj
        trailer << /Root 1 0 R >>
        %%EOF
        """
        try box.write("uploads/doc.jpg", Array(pdf.utf8))
        let f = await box.failure("image.thumbnail", source("uploads/doc.jpg", thumb))
        #expect(f?.errorClass == "UnsupportedImageFormat")
        #expect(f?.message.contains("PDF") == true)
    }

    @Test func polyglotLosesItsPayload() async throws {
        let box = try MediaSandbox()
        // A real JPEG with a PHP script and an HTML page appended: browsers and PHP see the payload; libvips
        // sees a JPEG. The output must be a clean re-encode.
        try box.run("convert", "-size", "300x200", "plasma:", box.path("base.jpg"))
        let payload = Array("<?php system($_GET['c']); ?><html><script>alert(1)</script></html>".utf8)
        try box.write("uploads/poly.jpg", try box.bytes("base.jpg") + payload)
        let result = try await box.perform("image.thumbnail", source("uploads/poly.jpg", [("variants", variants([("v", 100, 100, "inside", "jpeg")]))]))
        let key = try #require(result["variants"]?[0]?["key"]?.stringValue)
        let out = try box.bytes(key)
        #expect(!String(decoding: out, as: UTF8.self).contains("<?php"))
        #expect(!String(decoding: out, as: UTF8.self).contains("<script>"))
        #expect(out.prefix(2) == [0xff, 0xd8])
        let stripped = try await box.perform("image.strip_metadata", source("uploads/poly.jpg"))
        let clean = try box.bytes(try #require(stripped["key"]?.stringValue))
        #expect(!String(decoding: clean, as: UTF8.self).contains("<?php"))
    }

    @Test func oneByHundredThousandStripIsRejected() async throws {
        let box = try MediaSandbox()
        try box.run("vips", "black", box.path("uploads/strip.png".prefixingDirectory(box).replacingOccurrences(of: box.media + "/", with: "")), "1", "100000")
        let f = await box.failure("image.thumbnail", source("uploads/strip.png", thumb))
        #expect(f?.errorClass == "ImageTooLarge")
        #expect(f?.message.contains("1x100000") == true)
        #expect(f?.message.contains("CONVEYOR_IMAGE_MAX_DIMENSION") == true)
    }

    @Test func frameAndProgressiveLimitsComeFromTheHeader() async throws {
        let box = try MediaSandbox(environment: ["CONVEYOR_IMAGE_MAX_FRAMES": "2", "CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS": "0.1"])
        try box.run("convert", "-size", "50x50", "xc:red", "xc:blue", "xc:green", box.path("anim.gif"))
        let frames = await box.failure("image.thumbnail", source("anim.gif", thumb))
        #expect(frames?.errorClass == "ImageTooManyFrames")
        #expect(frames?.message.contains("3 frames") == true)
        try box.run("convert", "-size", "600x400", "plasma:", "-interlace", "JPEG", box.path("progressive.jpg"))
        let progressive = await box.failure("image.thumbnail", source("progressive.jpg", thumb))
        #expect(progressive?.errorClass == "ImageTooLarge")
        #expect(progressive?.message.contains("progressive") == true)
        try box.run("convert", "-size", "200x100", "plasma:", "-interlace", "JPEG", box.path("small-progressive.jpg"))
        let ok = try await box.perform("image.thumbnail", source("small-progressive.jpg", thumb))
        #expect(ok["variants"]?[0]?["width"] == 64)
    }

    @Test func oversizedFileIsRejectedBeforeOpening() async throws {
        let box = try MediaSandbox(environment: ["CONVEYOR_IMAGE_MAX_FILE_MB": "0.001"])
        try box.run("convert", "-size", "300x300", "plasma:", box.path("big.png"))
        let f = await box.failure("image.thumbnail", source("big.png", thumb))
        #expect(f?.errorClass == "ImageTooLarge")
        #expect(f?.message.contains("CONVEYOR_IMAGE_MAX_FILE_MB") == true)
    }

    @Test func deadlineStopsLibvipsAndTheHelperSurvives() async throws {
        let box = try MediaSandbox()
        try box.run("convert", "-size", "2000x2000", "xc:gray", box.path("large.png"))
        do {
            _ = try await box.perform("image.thumbnail", source("large.png", thumb), seconds: 0)
            Issue.record("a job with no time left must fail")
        } catch {
            let f = JobFailure(error)
            #expect(["ImageTimeout", "HelperTimeout"].contains(f.errorClass), "\(f)")
            #expect(f.isPermanent == false)
        }
        // The next job runs normally.
        let ok = try await box.perform("image.thumbnail", source("large.png", thumb))
        #expect(ok["variants"]?[0]?["width"] == 64)
    }

    @Test func aCrashingHelperCostsOnlyItsJob() async throws {
        let box = try MediaSandbox(environment: ["CONVEYOR_HELPERS": "2"])
        try box.run("convert", "-size", "400x300", "plasma:", box.path("ok.jpg"))
        async let crash: JobFailure? = {
            do {
                _ = try await box.pool.run("sandbox.selftest", JSONObject([("crash", true)]), deadline: .now + .seconds(20))
                return nil
            } catch { return JobFailure(error) }
        }()
        async let images = withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask { try await box.perform("image.thumbnail", source("ok.jpg", self.thumb))["variants"]?[0]?["width"]?.intValue ?? 0 }
            }
            var widths: [Int] = []
            for try await w in group { widths.append(w) }
            return widths
        }
        let crashed = await crash
        let widths = try await images
        #expect(crashed?.errorClass == "HelperCrashed")
        #expect(widths == [64, 64, 64, 64])
    }
}
