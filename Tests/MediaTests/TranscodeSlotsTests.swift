import ConveyorCore
import Foundation
import Sandbox
import Testing

@testable import Media

/// The transcode gate `video.transcode` and `media.ingest` share, and the ingest limit built on it.
@Suite struct TranscodeSlotsTests {
    /// Waits (bounded, polling) until `condition` holds.
    func until(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw SlotsTestError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func aSecondTranscodeWaitsForTheSlotThenRuns() async throws {
        let slots = TranscodeSlots(1)
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let first = Task { try await slots.withSlot { for await _ in release { break } } }
        try await until("the first holds the slot") { slots.snapshot.free == 0 }
        let second = Task { try await slots.withSlot { "ran" } }
        try await until("the second waits") { slots.snapshot.waiting == 1 }
        releaser.yield()
        try await first.value
        #expect(try await second.value == "ran")
        #expect(slots.snapshot.free == 1 && slots.snapshot.waiting == 0)
    }

    /// A job that times out while waiting (the worker cancels its task) leaves the line and takes no slot.
    @Test func aCancelledWaiterLeavesWithoutTakingTheSlot() async throws {
        let slots = TranscodeSlots(1)
        let (release, releaser) = AsyncStream<Void>.makeStream()
        let holder = Task { try await slots.withSlot { for await _ in release { break } } }
        try await until("the holder has the slot") { slots.snapshot.free == 0 }
        let waiter = Task { try await slots.withSlot { "should not run" } }
        try await until("the waiter waits") { slots.snapshot.waiting == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(slots.snapshot.waiting == 0 && slots.snapshot.free == 0)
        releaser.yield()
        try await holder.value
        #expect(slots.snapshot.free == 1)
        // Cancelled before it ever asked: refused at once, nothing taken.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await slots.withSlot { "should not run" }
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        #expect(slots.snapshot.free == 1)
    }

    /// Image uploads are not held to the transcode limit: a worker lets as many ingests run as it has transcode slots
    /// plus image helpers.
    @Test func ingestRunsAsManyAsTranscodeSlotsPlusImageHelpers() throws {
        var configuration = VideoConfiguration()
        configuration.transcodeConcurrency = 1
        configuration.helperPool.inProcess = true
        let root = NSTemporaryDirectory() + "conveyor-slots-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        configuration.mediaRoot = root
        let pool = HelperPool(configuration.helperPool, operations: VideoOperations.helperOperations)
        defer { pool.shutdown() }
        var registry = JobRegistry()
        try MediaJobs.register(into: &registry, configuration: configuration, pool: pool, ingestConcurrency: 3)
        #expect(registry[IngestHandler.jobClass]?.concurrency == 3)
        #expect(registry["video.transcode"]?.concurrency == 1)
    }
}

struct SlotsTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
