import ConveyorCore
import Foundation
import Logging
import Testing

@testable import Storage

/// `CONVEYOR_MEDIA_STORE` with its companions, and which store a job's optional `bucket` argument selects.
@Suite struct MediaStoreSettingsTests {
    let scratch = NSTemporaryDirectory() + "conveyor-settings-\(UUID().uuidString)"
    let s3 = [
        "CONVEYOR_MEDIA_STORE": "s3://deploy-media/prefix", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
    ]

    func job(_ arguments: JSONObject) -> JobContext {
        JobContext(
            jid: "j1", jobClass: "image.thumbnail", queue: "media", arguments: arguments, attempt: 1, deadline: .now + .seconds(5),
            payload: JSONObject(), logger: Logger(label: "test"))
    }

    func failure(_ body: () throws -> Void) -> JobFailure? {
        do {
            try body()
            return nil
        } catch {
            #expect(error is JobFailure, "\(error)")
            return error as? JobFailure
        }
    }

    @Test func allowedBucketsAreParsedTrimmedAndChecked() throws {
        var env = s3
        env["CONVEYOR_S3_ALLOWED_BUCKETS"] = " tenant-a,tenant.b ,, "
        let settings = try MediaStoreSettings(environment: env)
        #expect(settings.allowedBuckets == ["tenant-a", "tenant.b"])
        guard case .s3(let location) = settings.kind else { Issue.record("expected an S3 store"); return }
        #expect(location == S3Location(bucket: "deploy-media", prefix: "prefix"))

        env["CONVEYOR_S3_ALLOWED_BUCKETS"] = "tenant-a,Bad_Bucket"
        let bad = failure { _ = try MediaStoreSettings(environment: env) }
        #expect(bad?.errorClass == ErrorClass.invalidConfiguration.rawValue)
        #expect(bad?.message.contains("CONVEYOR_S3_ALLOWED_BUCKETS") == true && bad?.message.contains("Bad_Bucket") == true, "\(String(describing: bad))")

        // A local root has no buckets to allow.
        let local = failure {
            _ = try MediaStoreSettings(environment: ["CONVEYOR_MEDIA_ROOT": scratch, "CONVEYOR_S3_ALLOWED_BUCKETS": "tenant-a"])
        }
        #expect(local?.errorClass == ErrorClass.invalidConfiguration.rawValue)
        #expect(try MediaStoreSettings(environment: ["CONVEYOR_MEDIA_ROOT": scratch]).allowedBuckets.isEmpty)
    }

    @Test func aJobMayNameOnlyTheStoresOwnOrAnAllowedBucket() throws {
        var env = s3
        env["CONVEYOR_S3_ALLOWED_BUCKETS"] = "tenant-a"
        env["CONVEYOR_SCRATCH_DIR"] = scratch
        let store = try MediaStoreSettings(environment: env).makeStore(environment: env)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        #expect(try store.forJob(job(["source": "a.jpg"])).location == "s3://deploy-media/prefix")
        #expect(try store.forJob(job(["source": "a.jpg", "bucket": "deploy-media"])).location == "s3://deploy-media/prefix")
        // Another bucket's keys are object keys: no prefix.
        let tenant = try store.forJob(job(["source": "a.jpg", "bucket": "tenant-a"]))
        #expect(tenant.location == "s3://tenant-a")
        #expect((tenant as? S3MediaStore)?.scratch == (store as? S3MediaStore)?.scratch)

        let refused = failure { _ = try store.forJob(job(["source": "a.jpg", "bucket": "someone-elses"])) }
        #expect(refused?.errorClass == ErrorClass.bucketNotAllowed.rawValue)
        #expect(refused?.isPermanent == true)
        #expect(refused?.message.contains("jid=j1") == true && refused?.message.contains("tenant-a") == true, "\(String(describing: refused))")

        let malformed = failure { _ = try store.forJob(job(["source": "a.jpg", "bucket": 5])) }
        #expect(malformed?.errorClass == ErrorClass.invalidArguments.rawValue)
        let empty = failure { _ = try store.forJob(job(["source": "a.jpg", "bucket": ""])) }
        #expect(empty?.errorClass == ErrorClass.invalidArguments.rawValue)
    }

    @Test func aLocalRootRefusesEveryBucket() throws {
        let store = LocalMediaStore(root: try MediaRoot(scratch, create: true))
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        #expect(try store.forJob(job(["source": "a.jpg"])).location == store.location)
        let refused = failure { _ = try store.forJob(job(["source": "a.jpg", "bucket": "tenant-a"])) }
        #expect(refused?.errorClass == ErrorClass.bucketNotAllowed.rawValue)
        #expect(refused?.isPermanent == true)
    }
}
