public import ConveyorCore
import Curl
import Digest

extension S3Client {
    /// CreateMultipartUpload, the parts with `parallelParts` in flight, CompleteMultipartUpload; on any failure or
    /// cancellation, AbortMultipartUpload.
    func putMultipart(
        bucket: String, key: String, descriptor: Int32, size: Int64, headers: [HTTPHeader], deadline: ContinuousClock.Instant
    ) async throws(JobFailure) {
        // S3 allows 10 000 parts: a file that would need more gets larger parts, in whole MiB.
        let minimum = (size + 9_999) / 10_000
        let partSize = max(Int64(configuration.partSize), ((minimum + (1 << 20) - 1) >> 20) << 20)
        let uploadID = try await blocking { abort throws(JobFailure) in
            var call = S3Call(.createMultipart, "POST", bucket: bucket, key: key)
            call.query = [("uploads", "")]
            call.headers = headers
            let response = try self.execute(call, deadline: deadline, abort: abort)
            guard let id = S3XML.first("UploadId", in: response.bodyText), !id.isEmpty else {
                throw .transient(.storageUnavailable, "s3 create_multipart \(call.name): the answer has no UploadId")
            }
            return id
        }
        do throws(JobFailure) {
            let etags = try await uploadParts(
                bucket: bucket, key: key, uploadID: uploadID, descriptor: descriptor, size: size, partSize: partSize, deadline: deadline)
            if Task.isCancelled {
                throw .transient(.storageUnavailable, "s3 put s3://\(bucket)/\(key): cancelled before the upload completed")
            }
            try await blocking { abort throws(JobFailure) in
                var call = S3Call(.completeMultipart, "POST", bucket: bucket, key: key)
                call.query = [("uploadId", uploadID)]
                call.headers = [HTTPHeader("Content-Type", "application/xml")]
                var xml = #"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#
                for (index, etag) in etags.enumerated() {
                    xml += "<Part><ETag>\(S3XML.escape(etag))</ETag><PartNumber>\(index + 1)</PartNumber></Part>"
                }
                xml += "</CompleteMultipartUpload>"
                call.body = Array(xml.utf8)
                call.payloadHash = SHA256Digest.hash(call.body).hex
                _ = try self.execute(call, deadline: deadline, abort: abort)
            }
        } catch {
            // Even past the deadline or after cancellation: parts left behind cost storage and never become an object.
            try? await abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, deadline: .now + .seconds(30))
            throw error
        }
    }

    /// Uploads every part, at most `parallelParts` at once, and returns their ETags in part order. The first failure
    /// cancels the parts still in flight and is thrown.
    private func uploadParts(
        bucket: String, key: String, uploadID: String, descriptor: Int32, size: Int64, partSize: Int64, deadline: ContinuousClock.Instant
    ) async throws(JobFailure) -> [String] {
        let count = Int((size + partSize - 1) / partSize)
        var etags = [String](repeating: "", count: count)
        let failure: JobFailure? = await withTaskGroup(of: Result<(Int, String), JobFailure>.self) { group in
            var next = 0
            var failure: JobFailure?
            while next < min(configuration.parallelParts, count) {
                let index = next
                group.addTask { await self.uploadPart(index, bucket, key, uploadID, descriptor, size, partSize, deadline) }
                next += 1
            }
            for await result in group {
                switch result {
                case .success(let (index, etag)):
                    etags[index] = etag
                    if next < count, failure == nil, !Task.isCancelled {
                        let index = next
                        group.addTask { await self.uploadPart(index, bucket, key, uploadID, descriptor, size, partSize, deadline) }
                        next += 1
                    }
                case .failure(let error):
                    if failure == nil {
                        failure = error
                        group.cancelAll()
                    }
                }
            }
            return failure
        }
        if let failure { throw failure }
        return etags
    }

    private func uploadPart(
        _ index: Int, _ bucket: String, _ key: String, _ uploadID: String, _ descriptor: Int32, _ size: Int64, _ partSize: Int64,
        _ deadline: ContinuousClock.Instant
    ) async -> Result<(Int, String), JobFailure> {
        do throws(JobFailure) {
            let etag = try await blocking { abort throws(JobFailure) in
                var call = S3Call(.uploadPart, "PUT", bucket: bucket, key: key)
                call.query = [("partNumber", "\(index + 1)"), ("uploadId", uploadID)]
                let offset = Int64(index) * partSize
                let length = min(partSize, size - offset)
                call.bodyFile = CurlFileBody(descriptor: descriptor, offset: offset, length: length)
                call.payloadHash = try Self.hash(descriptor: descriptor, offset: offset, length: length, call: call)
                let response = try self.execute(call, deadline: deadline, abort: abort)
                guard let etag = response.header("etag"), !etag.isEmpty else {
                    throw .transient(.storageUnavailable, "s3 upload_part \(call.name): part \(index + 1) was answered without an ETag")
                }
                return etag
            }
            return .success((index, etag))
        } catch {
            return .failure(error)
        }
    }

    /// Discards a multipart upload and its parts; one already gone is fine. Not stopped by task cancellation.
    public func abortMultipartUpload(bucket: String, key: String, uploadID: String, deadline: ContinuousClock.Instant) async throws(JobFailure) {
        try await blocking(cancellable: false) { abort throws(JobFailure) in
            var call = S3Call(.abortMultipart, "DELETE", bucket: bucket, key: key)
            call.query = [("uploadId", uploadID)]
            call.accepted = ["NoSuchUpload"]
            _ = try self.execute(call, deadline: deadline, abort: abort)
        }
    }

    /// Multipart uploads begun under `prefix` and neither completed nor aborted (the first 1000), to find and abort
    /// those a crashed worker left.
    public func multipartUploads(bucket: String, prefix: String = "", deadline: ContinuousClock.Instant) async throws(JobFailure) -> [S3MultipartUpload] {
        try await blocking { abort throws(JobFailure) in
            var call = S3Call(.listMultipart, "GET", bucket: bucket, key: nil)
            call.query = [("uploads", "")]
            if !prefix.isEmpty { call.query.append(("prefix", prefix)) }
            call.maxResponseBytes = 8 << 20
            let response = try self.execute(call, deadline: deadline, abort: abort)
            return S3XML.blocks("Upload", in: response.bodyText).compactMap { block -> S3MultipartUpload? in
                let text = String(block)
                guard let key = S3XML.first("Key", in: text), let id = S3XML.first("UploadId", in: text) else { return nil }
                return S3MultipartUpload(key: key, uploadID: id)
            }
        }
    }
}
