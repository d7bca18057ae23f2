import ConveyorCore
import Digest
import Foundation
import Synchronization
import Testing

@testable import Storage

/// The client against the SeaweedFS that scripts/services.sh starts on loopback. Each test uses its own keys in one
/// shared bucket, so the tests run in parallel.
@Suite(.enabled(if: S3TestServer.endpoint != nil, "needs CONVEYOR_TEST_S3_ENDPOINT (scripts/services.sh start)"))
struct S3ClientTests {
    static let bucket = "conveyor-storage-tests"
    /// The shared bucket, created once: SeaweedFS answers one of two concurrent creations of the same bucket with
    /// `NoSuchBucket`, so the parallel tests must not each create it.
    static let bucketCreated = Task {
        try await S3Client(S3TestServer.configuration()).createBucket(bucket, deadline: .now + .seconds(20))
    }

    let scratch: String
    let prefix = "tests/\(UUID().uuidString.lowercased())"

    init() throws {
        scratch = NSTemporaryDirectory() + "conveyor-s3-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    func client(_ configuration: S3Configuration = S3TestServer.configuration(), events: Events? = nil) async throws -> S3Client {
        var onRequest: (@Sendable (S3RequestEvent) -> Void)?
        if let events { onRequest = { events.record($0) } }
        try await Self.bucketCreated.value
        return S3Client(configuration, onRequest: onRequest)
    }

    var deadline: ContinuousClock.Instant { .now + .seconds(60) }

    /// Writes `count` bytes of a seeded pseudo-random pattern (incompressible, different per seed).
    func file(_ name: String, bytes count: Int, seed: UInt64 = 1) throws -> String {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var data = [UInt8](repeating: 0, count: count)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            for i in 0..<words.count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                words[i] = state
            }
        }
        let path = "\(scratch)/\(name)"
        try Data(data).write(to: URL(fileURLWithPath: path))
        return path
    }

    func sha256(_ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return SHA256Digest.hash(Array(data)).hex
    }

    func expectFailure(_ errorClass: ErrorClass, permanent: Bool, _ body: () async throws(JobFailure) -> Void) async -> JobFailure? {
        do {
            try await body()
            Issue.record("expected \(errorClass), got success")
            return nil
        } catch {
            #expect(error.errorClass == errorClass.rawValue, "\(error)")
            #expect(error.isPermanent == permanent, "\(error)")
            return error
        }
    }

    @Test func smallObjectRoundTripKeepsTypeAndCacheControl() async throws {
        let events = Events()
        let client = try await client(events: events)
        let source = try file("small.bin", bytes: 300_000)
        let key = "\(prefix)/uploads/a photo+1.jpg"
        try await client.put(bucket: Self.bucket, key: key, from: source, contentType: "image/jpeg", cacheControl: "public, max-age=31536000", deadline: deadline)

        let info = try #require(try await client.head(bucket: Self.bucket, key: key, deadline: deadline))
        #expect(info.size == 300_000)
        #expect(info.contentType == "image/jpeg")
        #expect(info.cacheControl == "public, max-age=31536000")
        #expect(info.etag?.isEmpty == false)

        let copy = "\(scratch)/copy.bin"
        let got = try await client.get(bucket: Self.bucket, key: key, to: copy, maxBytes: 300_000, deadline: deadline)
        #expect(got.size == 300_000 && got.contentType == "image/jpeg")
        #expect(try sha256(copy) == (try sha256(source)))
        let mode = try FileManager.default.attributesOfItem(atPath: copy)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(events.all.contains { $0.operation == "put" && $0.outcome == "ok" && $0.bytes == 300_000 })
        #expect(events.all.contains { $0.operation == "get" && $0.outcome == "ok" && $0.bytes == 300_000 })
    }

    @Test func largeFileGoesUpInParallelPartsAndComesBackIntact() async throws {
        let events = Events()
        let client = try await client(events: events)
        let size = 40 << 20
        let source = try file("large.bin", bytes: size, seed: 7)
        let key = "\(prefix)/transcodes/large.mp4"
        try await client.put(bucket: Self.bucket, key: key, from: source, contentType: "video/mp4", cacheControl: nil, deadline: deadline)

        let parts = events.all.filter { $0.operation == "upload_part" }
        #expect(parts.count == 5 && parts.allSatisfy { $0.outcome == "ok" })
        #expect(parts.map(\.bytes).reduce(0, +) == size)
        #expect(events.count("create_multipart") == 1 && events.count("complete_multipart") == 1 && events.count("put") == 0)
        #expect(events.maximumOverlap("upload_part") > 1, "parts were in flight together")

        let info = try #require(try await client.head(bucket: Self.bucket, key: key, deadline: deadline))
        #expect(info.size == size && info.contentType == "video/mp4")
        let copy = "\(scratch)/large.copy"
        _ = try await client.get(bucket: Self.bucket, key: key, to: copy, maxBytes: size, deadline: deadline)
        #expect(try sha256(copy) == (try sha256(source)))
        let pending = try await client.multipartUploads(bucket: Self.bucket, prefix: key, deadline: deadline)
        #expect(pending.isEmpty)
        try await client.delete(bucket: Self.bucket, key: key, deadline: deadline)
    }

    @Test func deleteRemovesAndMissingObjectsAreNotFound() async throws {
        let client = try await client()
        let key = "\(prefix)/gone.txt"
        try await client.put(bucket: Self.bucket, key: key, from: try file("gone.txt", bytes: 10), contentType: "text/plain", cacheControl: nil, deadline: deadline)
        #expect(try await client.head(bucket: Self.bucket, key: key, deadline: deadline) != nil)
        try await client.delete(bucket: Self.bucket, key: key, deadline: deadline)
        #expect(try await client.head(bucket: Self.bucket, key: key, deadline: deadline) == nil)
        try await client.delete(bucket: Self.bucket, key: key, deadline: deadline)

        let target = "\(scratch)/missing"
        let failure = await expectFailure(.sourceNotFound, permanent: true) { () throws(JobFailure) in
            _ = try await client.get(bucket: Self.bucket, key: key, to: target, maxBytes: 1 << 20, deadline: deadline)
        }
        #expect(failure?.message.contains("s3://\(Self.bucket)/\(key)") == true)
        #expect(!FileManager.default.fileExists(atPath: target), "no file is left behind")
    }

    @Test func aWrongSecretIsAccessDenied() async throws {
        let events = Events()
        let good = try await client()
        let key = "\(prefix)/private.txt"
        try await good.put(bucket: Self.bucket, key: key, from: try file("p.txt", bytes: 100), contentType: "text/plain", cacheControl: nil, deadline: deadline)
        let wrongSecret = "not-the-secret-0123456789"
        let bad = S3Client(S3TestServer.configuration(secret: wrongSecret), onRequest: { events.record($0) })
        let target = "\(scratch)/denied"
        let failure = await expectFailure(.storageAccessDenied, permanent: true) { () throws(JobFailure) in
            _ = try await bad.get(bucket: Self.bucket, key: key, to: target, maxBytes: 1 << 20, deadline: deadline)
        }
        let message = failure?.message ?? ""
        #expect(message.contains(key) && message.contains("request id"), "\(message)")
        #expect(!message.contains(wrongSecret) && !message.contains("Signature="))
        #expect(!FileManager.default.fileExists(atPath: target))
        let other = try file("q.txt", bytes: 5)
        _ = await expectFailure(.storageAccessDenied, permanent: true) { () throws(JobFailure) in
            try await bad.put(bucket: Self.bucket, key: key, from: other, contentType: "text/plain", cacheControl: nil, deadline: deadline)
        }
        #expect(events.all.filter { $0.outcome == "denied" }.count == 2)
    }

    @Test func objectsOverTheLimitAreRefusedAndLeaveNoFile() async throws {
        let events = Events()
        let client = try await client(events: events)
        let key = "\(prefix)/big.bin"
        try await client.put(bucket: Self.bucket, key: key, from: try file("big.bin", bytes: 2 << 20), contentType: "application/octet-stream", cacheControl: nil, deadline: deadline)
        let target = "\(scratch)/big.copy"
        _ = await expectFailure(.storageObjectTooLarge, permanent: true) { () throws(JobFailure) in
            _ = try await client.get(bucket: Self.bucket, key: key, to: target, maxBytes: (2 << 20) - 1, deadline: deadline)
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        let refused = try #require(events.all.last { $0.operation == "get" })
        #expect(refused.outcome == "refused")
        #expect(refused.bytes < 1 << 20, "refused from Content-Length, not after streaming the body")
    }

    @Test func anUnreachableStoreIsUnavailableQuickly() async throws {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let client = S3Client(S3TestServer.configuration(endpoint: "http://127.0.0.1:1"))
        let started = ContinuousClock.now
        let target = "\(scratch)/unreachable"
        let failure = await expectFailure(.storageUnavailable, permanent: false) { () throws(JobFailure) in
            _ = try await client.get(bucket: Self.bucket, key: "k", to: target, maxBytes: 100, deadline: deadline)
        }
        // Refused, not timed out: the job is not held for its deadline (60 s here). The bound is loose on purpose:
        // the request waits its turn on the client's transfer threads, which the other tests keep busy.
        #expect(failure?.message.lowercased().contains("connect") == true, "\(String(describing: failure))")
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(!FileManager.default.fileExists(atPath: target))
    }

    @Test func aFileThatShrinksMidUploadAbortsTheMultipartUpload() async throws {
        let events = Events()
        let size = 12 << 20
        let source = try file("shrinks.bin", bytes: size)
        var configuration = S3TestServer.configuration()
        configuration.multipartThreshold = 5 << 20
        configuration.partSize = 5 << 20
        configuration.parallelParts = 1
        // After the first part is in, the file loses its tail: the second part cannot be read whole.
        events.onEvent = { event in
            if event.operation == "upload_part" && event.outcome == "ok" { _ = truncate(source, 6 << 20) }
        }
        let client = try await client(configuration, events: events)
        let key = "\(prefix)/shrinks.mp4"
        _ = await expectFailure(.storageLocalFileFailed, permanent: false) { () throws(JobFailure) in
            try await client.put(bucket: Self.bucket, key: key, from: source, contentType: "video/mp4", cacheControl: nil, deadline: deadline)
        }
        #expect(events.all.contains { $0.operation == "abort_multipart" && $0.outcome == "ok" })
        #expect(events.count("complete_multipart") == 0)
        #expect(try await client.head(bucket: Self.bucket, key: key, deadline: deadline) == nil)
        #expect(try await client.multipartUploads(bucket: Self.bucket, prefix: key, deadline: deadline) == [])
    }

    @Test func cancellingTheJobAbortsTheMultipartUpload() async throws {
        let events = Events()
        let source = try file("cancelled.bin", bytes: 40 << 20, seed: 3)
        var configuration = S3TestServer.configuration()
        configuration.parallelParts = 2
        let client = try await client(configuration, events: events)
        let key = "\(prefix)/cancelled.mp4"
        let task = Mutex<Task<JobFailure?, Never>?>(nil)
        events.onEvent = { event in
            if event.operation == "upload_part" { task.withLock { $0?.cancel() } }
        }
        let upload = Task { () -> JobFailure? in
            do throws(JobFailure) {
                try await client.put(bucket: Self.bucket, key: key, from: source, contentType: "video/mp4", cacheControl: nil, deadline: deadline)
                return nil
            } catch {
                return error
            }
        }
        task.withLock { $0 = upload }
        if events.count("upload_part") > 0 { upload.cancel() }
        let failure = await upload.value
        #expect(failure?.isPermanent == false, "\(String(describing: failure))")
        #expect(events.all.contains { $0.operation == "abort_multipart" && $0.outcome == "ok" })
        #expect(events.count("complete_multipart") == 0)
        #expect(try await client.head(bucket: Self.bucket, key: key, deadline: deadline) == nil)
        #expect(try await client.multipartUploads(bucket: Self.bucket, prefix: key, deadline: deadline) == [])
    }

    /// The listing the abort tests rely on does show an upload that was begun and not finished.
    @Test func anUnfinishedMultipartUploadIsListedUntilAborted() async throws {
        let client = try await client()
        let key = "\(prefix)/unfinished.bin"
        var create = S3Call(.createMultipart, "POST", bucket: Self.bucket, key: key)
        create.query = [("uploads", "")]
        let call = create
        let deadline = deadline
        let uploadID = try await client.blocking { abort throws(JobFailure) in
            S3XML.first("UploadId", in: try client.execute(call, deadline: deadline, abort: abort).bodyText)
        }
        let id = try #require(uploadID)
        #expect(try await client.multipartUploads(bucket: Self.bucket, prefix: key, deadline: deadline) == [S3MultipartUpload(key: key, uploadID: id)])
        try await client.abortMultipartUpload(bucket: Self.bucket, key: key, uploadID: id, deadline: deadline)
        #expect(try await client.multipartUploads(bucket: Self.bucket, prefix: key, deadline: deadline) == [])
        try await client.abortMultipartUpload(bucket: Self.bucket, key: key, uploadID: id, deadline: deadline)
    }
}

/// The SeaweedFS of scripts/services.sh, from the test-only variables it exports to .run/env.
enum S3TestServer {
    static let environment = ProcessInfo.processInfo.environment
    static let endpoint = environment["CONVEYOR_TEST_S3_ENDPOINT"]

    static func configuration(secret: String? = nil, endpoint: String? = nil) -> S3Configuration {
        S3Configuration(
            endpoint: endpoint ?? Self.endpoint ?? "", accessKeyID: environment["CONVEYOR_TEST_S3_ACCESS_KEY"] ?? "",
            secretAccessKey: secret ?? environment["CONVEYOR_TEST_S3_SECRET_KEY"] ?? "", pathStyle: true)
    }
}

/// The client's request events, as they arrive on transfer threads.
final class Events: Sendable {
    private struct Recorded {
        var event: S3RequestEvent
        var end: ContinuousClock.Instant
    }
    private let recorded = Mutex<[Recorded]>([])
    private let hook = Mutex<(@Sendable (S3RequestEvent) -> Void)?>(nil)

    /// Runs on the transfer thread right after each request, before the client goes on.
    var onEvent: (@Sendable (S3RequestEvent) -> Void)? {
        get { hook.withLock { $0 } }
        set { hook.withLock { $0 = newValue } }
    }

    func record(_ event: S3RequestEvent) {
        recorded.withLock { $0.append(Recorded(event: event, end: .now)) }
        onEvent?(event)
    }

    var all: [S3RequestEvent] { recorded.withLock { $0.map(\.event) } }

    func count(_ operation: String) -> Int { all.filter { $0.operation == operation }.count }

    /// The most requests of `operation` that were running at one moment.
    func maximumOverlap(_ operation: String) -> Int {
        let spans = recorded.withLock { $0 }.filter { $0.event.operation == operation }
            .map { ($0.end - .seconds($0.event.seconds), $0.end) }
        return spans.map { span in spans.filter { $0.0 < span.1 && span.0 < $0.1 }.count }.max() ?? 0
    }
}
