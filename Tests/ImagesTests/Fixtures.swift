import ConveyorCore
import Foundation
import Images
import Logging
import Sandbox

/// The real `conveyor` binary (scripts/test.sh exports CONVEYOR_BIN); falls back to the debug build.
func conveyorBinary() -> String {
    if let bin = ProcessInfo.processInfo.environment["CONVEYOR_BIN"], !bin.isEmpty { return bin }
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return here.appendingPathComponent(".build/debug/conveyor").path
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
}

/// Runs a command-line tool and returns its stdout; throws with its stderr on failure.
@discardableResult
func tool(_ arguments: [String], in directory: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errors = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ToolError(description: "\(arguments.joined(separator: " ")) failed: \(String(decoding: errors, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

/// A private media root with its own helper pool, removed when the test ends.
final class MediaSandbox: @unchecked Sendable {
    let root: String
    let configuration: ImagesConfiguration
    let pool: HelperPool

    init(environment extra: [String: String] = [:]) throws {
        root = NSTemporaryDirectory() + "conveyor-images-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/media", withIntermediateDirectories: true)
        var environment = ["CONVEYOR_MEDIA_ROOT": root + "/media", "CONVEYOR_HELPER_BIN": conveyorBinary(), "CONVEYOR_HELPERS": "1"]
        for (k, v) in extra { environment[k] = v }
        configuration = try ImagesConfiguration(environment: environment)
        pool = HelperPool(configuration.pool)
    }

    deinit {
        pool.shutdown()
        try? FileManager.default.removeItem(atPath: root)
    }

    var media: String { configuration.mediaRoot.path }
    func path(_ key: String) -> String { media + "/" + key }

    func write(_ key: String, _ bytes: [UInt8]) throws {
        try FileManager.default.createDirectory(atPath: (path(key) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path(key)))
    }

    func bytes(_ key: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path(key)))) }

    /// Runs a tool with the media root as working directory.
    @discardableResult
    func run(_ arguments: String...) throws -> String { try tool(arguments, in: media) }

    func perform(_ jobClass: String, _ arguments: JSONObject, seconds: Int = 60) async throws -> JSONValue {
        let handler = ImageJobHandler(kind: jobClass == "image.thumbnail" ? .thumbnail : .stripMetadata, configuration: configuration, pool: pool)
        let job = JobContext(
            jid: "test-\(UUID().uuidString.prefix(8))", jobClass: jobClass, queue: "media", arguments: arguments, attempt: 1,
            deadline: .now + .seconds(seconds), payload: JSONObject(), logger: Logger(label: "test"))
        return try await handler.perform(job)
    }

    func failure(_ jobClass: String, _ arguments: JSONObject) async -> JobFailure? {
        do {
            _ = try await perform(jobClass, arguments)
            return nil
        } catch {
            return JobFailure(error)
        }
    }

    /// `vipsheader -f field`.
    func header(_ key: String, _ field: String) throws -> String {
        try tool(["vipsheader", "-f", field, path(key)]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// exiftool's tags, grouped ("EXIF:GPSLatitude" style keys).
    func exifTags(_ key: String) throws -> [String] {
        let json = try tool(["exiftool", "-j", "-G", "-a", path(key)])
        guard let first = try JSONValue(parsing: json)[0]?.objectValue else { return [] }
        return first.keys
    }
}

func source(_ key: String, _ extra: [(String, JSONValue)] = []) -> JSONObject {
    JSONObject([("source", .string(key))] + extra)
}

func variants(_ items: [(String, Int, Int, String, String)]) -> JSONValue {
    .array(items.map { name, w, h, fit, format in
        .object(JSONObject([("name", .string(name)), ("width", JSONValue(w)), ("height", JSONValue(h)), ("fit", .string(fit)), ("format", .string(format))]))
    })
}

/// A PNG whose header claims `width` x `height` but holds almost no data: a decompression bomb's header.
func pngHeader(width: UInt32, height: UInt32) -> [UInt8] {
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = (crc >> 1) ^ (0xedb8_8320 & (0 &- (crc & 1))) }
        }
        return ~crc
    }
    func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be(UInt32(data.count)) + body + be(crc32(body))
    }
    let ihdr = be(width) + be(height) + [8, 2, 0, 0, 0]
    // A zlib stream of a few zero bytes: nowhere near width x height pixels.
    let idat: [UInt8] = [0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]
    return [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a] + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", [])
}
