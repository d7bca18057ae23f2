import ConveyorCore
import Foundation
import Images
import Sandbox
import Testing

@testable import Media

/// The Jobs/ schemas and examples agree with what the handlers accept.
@Suite struct JobContractTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func load(_ path: String) throws -> JSONValue {
        try JSONValue(parsing: [UInt8](Data(contentsOf: Self.repository.appendingPathComponent(path))))
    }

    @Test(arguments: ["video.probe", "video.transcode", "audio.waveform", "audio.transcode", "media.ingest"])
    func exampleArgumentsPassValidationAndOnlyUseSchemaProperties(jobClass: String) async throws {
        let schema = try load("Jobs/\(jobClass).schema.json")
        let example = try load("Jobs/examples/\(jobClass).json")
        #expect(example["class"]?.stringValue == jobClass)
        let arguments = try #require(example["args"]?[0]?.objectValue)
        let properties = try #require(schema["properties"]?.objectValue?.keys)
        for key in arguments.keys { #expect(properties.contains(key), "\(key) is not in the schema") }
        for required in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            #expect(arguments[required] != nil)
        }
        // Against an empty media root the arguments are well-formed and only the missing upload fails.
        let fixture = try MediaFixture()
        var registry = JobRegistry()
        var configuration = VideoConfiguration()
        configuration.mediaRoot = fixture.root.path
        try MediaJobs.register(into: &registry, configuration: configuration, pool: fixture.inProcess)
        let handler = try #require(registry[jobClass]).handler
        let message = await expectPermanent("SourceNotFound") {
            try await handler.perform(fixture.job(jobClass, .object(arguments)))
        }
        #expect(message.contains("does not exist"), "\(message)")
    }

    @Test func registrationUsesTheMediaQueueAndOneTranscodeAtATime() throws {
        let fixture = try MediaFixture()
        var registry = JobRegistry()
        try MediaJobs.register(
            into: &registry, environment: ["CONVEYOR_MEDIA_ROOT": fixture.root.path, "CONVEYOR_VIDEO_TRANSCODE_TIMEOUT": "900"])
        let transcode = try #require(registry["video.transcode"])
        #expect(transcode.queue == "media")
        #expect(transcode.concurrency == 1)
        #expect(transcode.timeout == .seconds(900))
        #expect(registry["video.probe"]?.queue == "media")
        #expect(throws: VideoConfigurationError.self) {
            try VideoConfiguration(environment: ["CONVEYOR_VIDEO_PRESET": "ludicrous"])
        }
        #expect(throws: VideoConfigurationError.self) {
            try VideoConfiguration(environment: ["CONVEYOR_VIDEO_IN_PROCESS": "maybe"])
        }
        #expect(try VideoConfiguration(environment: ["CONVEYOR_VIDEO_IN_PROCESS": "on"]).helperPool.inProcess)
    }

    @Test func unknownArgumentsAndProfilesAreInvalid() async throws {
        let fixture = try MediaFixture()
        let handler = fixture.transcodeHandler()
        _ = await expectPermanent("InvalidArguments") {
            try await handler.perform(fixture.job("video.transcode", ["source": "a.mp4", "bitrate": 5]))
        }
        _ = await expectPermanent("InvalidArguments") {
            try await handler.perform(fixture.job("video.transcode", ["source": "a.mp4", "profile": "4k"]))
        }
        _ = await expectPermanent("InvalidArguments") {
            try await handler.perform(fixture.job("video.transcode", ["profile": "720p"]))
        }
    }
}
