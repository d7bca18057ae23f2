import AV
import ConveyorCore
import Storage
import Foundation
import Redis
import SidekiqQueue
import Logging
import Images
import Sandbox
import Testing

@testable import Media

/// A private media root with clips made by the ffmpeg CLI, removed at the end of the test.
final class MediaFixture: @unchecked Sendable {
    let directory: String
    let root: MediaRoot

    /// Runs the operations on a thread of the test process.
    let inProcess: HelperPool
    /// Runs them in real `conveyor helper` processes (the binary scripts/test.sh exports as CONVEYOR_BIN).
    let helpers: HelperPool

    init() throws {
        directory = FileManager.default.temporaryDirectory.path + "/conveyor-video-" + UUID().uuidString
        root = try MediaRoot(directory + "/media")
        inProcess = HelperPool(.init(size: 2, inProcess: true), operations: VideoOperations.helperOperations)
        var configuration = VideoConfiguration().helperPool
        configuration.executable = conveyorBinary()
        configuration.size = 1
        configuration.limits.writablePaths = [directory]
        helpers = HelperPool(configuration)
    }

    deinit {
        inProcess.shutdown()
        helpers.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func probeHandler(sandboxed: Bool = false) -> ProbeHandler {
        ProbeHandler(root: root, configuration: VideoConfiguration(), pool: sandboxed ? helpers : inProcess)
    }

    func transcodeHandler(
        sandboxed: Bool = false, onProgress: (@Sendable (String, TranscodeProgress) -> Void)? = nil
    ) -> TranscodeHandler {
        TranscodeHandler(root: root, configuration: VideoConfiguration(), pool: sandboxed ? helpers : inProcess, onProgress: onProgress)
    }

    func path(_ key: String) -> String { root.path + "/" + key }

    /// Runs `ffmpeg -v error -y <arguments> <root>/<key>`.
    @discardableResult
    func ffmpeg(_ arguments: [String], output key: String) async throws -> String {
        let out = path(key)
        try FileManager.default.createDirectory(
            atPath: (out as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try await runAsync("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-y"] + arguments + [out])
        return out
    }

    func write(_ text: String, to key: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(key)))
    }

    /// A clip from lavfi testsrc (+ sine audio unless `audio` is false).
    func clip(_ key: String, size: String = "320x240", rate: Int = 25, seconds: Double = 1, audio: Bool = true,
              extra: [String] = []) async throws {
        var args = ["-f", "lavfi", "-i", "testsrc=s=\(size):r=\(rate):d=\(seconds)"]
        if audio { args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=\(seconds)"] }
        args += ["-c:v", "libx264", "-preset", "ultrafast"]
        if !extra.contains("-pix_fmt") { args += ["-pix_fmt", "yuv420p"] }
        if audio { args += ["-c:a", "aac", "-ac", "1"] }
        try await ffmpeg(args + extra, output: key)
    }

    /// Re-muxes `key` with a display matrix turning it `degrees` clockwise (what phones write).
    func rotate(_ key: String, degrees: Int) async throws {
        let original = path(key)
        let plain = original + ".plain.mp4"
        try FileManager.default.moveItem(atPath: original, toPath: plain)
        try await runAsync("/usr/bin/ffmpeg", ["-nostdin", "-v", "error", "-y", "-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=\(degrees)", original])
        try FileManager.default.removeItem(atPath: plain)
    }

    func job(_ jobClass: String, _ arguments: JSONValue, timeout: Duration = .seconds(120)) -> JobContext {
        JobContext(
            jid: String(UUID().uuidString.prefix(12)), jobClass: jobClass, queue: "media", arguments: arguments.objectValue ?? JSONObject(),
            attempt: 1, deadline: .now + timeout, payload: JSONObject(), logger: Logger(label: "test"))
    }
}

/// The real `conveyor` binary (scripts/test.sh exports CONVEYOR_BIN); falls back to the debug build.
func conveyorBinary() -> String {
    if let bin = ProcessInfo.processInfo.environment["CONVEYOR_BIN"], !bin.isEmpty { return bin }
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return here.appendingPathComponent(".build/debug/conveyor").path
}

/// `run` on an app-owned thread: waiting for a child process must not hold one of the few cooperative
/// threads every parallel test shares.
@discardableResult
func runAsync(_ executable: String, _ arguments: [String]) async throws -> String {
    try await BlockingPool.shared.run { try run(executable, arguments) }
}

@discardableResult
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    if process.terminationStatus != 0 {
        throw FixtureError(message: "\(executable) \(arguments.joined(separator: " ")) failed: \(text)")
    }
    return text
}

struct FixtureError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// ffprobe's JSON for a file (the independent check of what Conveyor wrote).
func ffprobe(_ path: String, _ extra: [String] = []) async throws -> JSONValue {
    let text = try await runAsync("/usr/bin/ffprobe", ["-v", "error", "-of", "json", "-show_format", "-show_streams"] + extra + [path])
    return try JSONValue(parsing: Array(text.utf8))
}

/// Expects a permanent JobFailure of `errorClass` and returns its message.
func expectPermanent(_ errorClass: String, _ body: () async throws -> JSONValue) async -> String {
    do {
        let result = try await body()
        Issue.record("expected \(errorClass), got result \(result.text)")
        return ""
    } catch let failure as JobFailure {
        #expect(failure.errorClass == errorClass, "\(failure)")
        #expect(failure.isPermanent, "\(failure)")
        return failure.message
    } catch {
        Issue.record("expected JobFailure \(errorClass), got \(error)")
        return ""
    }
}

/// A real `conveyor worker` on the media queue over `fixture`'s folder (one helper of each kind), on its own namespace,
/// migrated first; killed (SIGKILL) by `stop()`. The video tests that drive the real binary share it.
final class MediaWorkerProcess: @unchecked Sendable {
    let process = Process()
    let namespace: String
    let keys: QueueKeys
    let redis: RedisThread

    static func start(_ fixture: MediaFixture, name: String, concurrency: Int = 1) async throws -> MediaWorkerProcess {
        let environment = ProcessInfo.processInfo.environment
        _ = try await runAsync(conveyorBinary(), ["migrate", "--database-url", environment["DATABASE_URL"]!])
        return try MediaWorkerProcess(fixture, name: name, concurrency: concurrency)
    }

    private init(_ fixture: MediaFixture, name: String, concurrency: Int) throws {
        let environment = ProcessInfo.processInfo.environment
        namespace = name + "-" + UUID().uuidString.prefix(8).lowercased()
        keys = QueueKeys(namespace: namespace)
        process.executableURL = URL(fileURLWithPath: conveyorBinary())
        process.arguments = ["worker", "--namespace", namespace, "--queues", "media", "-c", String(concurrency)]
        process.environment = environment.merging([
            "CONVEYOR_MEDIA_ROOT": fixture.root.path, "CONVEYOR_MAIL_OUTBOX": fixture.directory + "/outbox",
            "CONVEYOR_HELPERS": "1", "CONVEYOR_VIDEO_HELPERS": "1",
        ]) { _, new in new }
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        redis = RedisThread(try RedisEndpoint(url: environment["REDIS_URL"]!), name: "\(name)-worker-test")
    }

    var jobs: JobClient { JobClient(redis: redis, keys: keys) }

    func stop() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        redis.stop()
    }
}

