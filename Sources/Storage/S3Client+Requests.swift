import ConveyorCore
import Curl

/// One S3 request before signing.
struct S3Call {
    var operation: S3Operation
    var method: String
    var bucket: String
    /// nil for requests on the bucket itself.
    var key: String?
    /// Names and values not yet encoded.
    var query: [(String, String)] = []
    var headers: [HTTPHeader] = []
    var body: [UInt8] = []
    /// A file range sent instead of `body`; `payloadHash` must be its hash.
    var bodyFile: CurlFileBody?
    var payloadHash: String = SigV4Signer.emptyPayloadHash
    /// Receives a 2xx body (GET) instead of memory.
    var responseFile: Int32?
    var maxResponseBytes = 1 << 20
    /// S3 error codes (or `"404"` for bodiless answers) that are an expected result, not a failure.
    var accepted: Set<String> = []

    init(_ operation: S3Operation, _ method: String, bucket: String, key: String?) {
        self.operation = operation
        self.method = method
        self.bucket = bucket
        self.key = key
    }

    /// `s3://bucket/key` for messages.
    var name: String { key.map { "s3://\(bucket)/\($0)" } ?? "s3://\(bucket)" }
}

extension S3Client {
    /// Signs and sends `call` on a pooled handle, reports it to `onRequest`, and returns a 2xx (or accepted) response.
    /// Blocks: run it on the client's pool.
    func execute(_ call: S3Call, deadline: ContinuousClock.Instant, abort: CurlAbortSignal?) throws(JobFailure) -> HTTPResponse {
        let started = ContinuousClock.now
        var outcome = "ok"
        var bytes = 0
        defer {
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            onRequest?(S3RequestEvent(operation: call.operation.rawValue, outcome: outcome, bytes: bytes, seconds: seconds))
        }
        let request = httpRequest(for: call, deadline: deadline, abort: abort)
        let result: Result<HTTPResponse, CurlError>
        do {
            result = try handles.withHandle { easy -> Result<HTTPResponse, CurlError> in
                do throws(CurlError) { return .success(try easy.perform(request)) } catch { return .failure(error) }
            }
        } catch {
            result = .failure(CurlError(kind: .setup, code: 0, message: "\(error)"))
        }
        switch result {
        case .failure(let error):
            let failure = S3Failure(transport: error, call: call)
            outcome = failure.outcome
            throw failure.jobFailure
        case .success(let response):
            bytes = call.bodyFile.map { Int($0.length) } ?? call.body.count
            bytes += response.fileBytes + response.body.count
            if (200..<300).contains(response.status), !Self.isErrorDocument(response) { return response }
            let failure = S3Failure(response: response, call: call)
            if call.accepted.contains(failure.code ?? "\(response.status)") || call.accepted.contains("\(response.status)") {
                outcome = response.status == 404 ? "not_found" : "ok"
                return response
            }
            outcome = failure.outcome
            throw failure.jobFailure
        }
    }

    /// CompleteMultipartUpload may answer 200 and still fail, with an `<Error>` document as its body.
    static func isErrorDocument(_ response: HTTPResponse) -> Bool {
        response.body.count > 7 && response.bodyText.contains("<Error>")
    }

    func httpRequest(for call: S3Call, deadline: ContinuousClock.Instant, abort: CurlAbortSignal?) -> HTTPRequest {
        let encodedKey = call.key.map { SigV4Signer.encode($0, keepSlash: true) }
        let host: String
        let path: String
        if configuration.pathStyle {
            host = endpoint.authority
            path = endpoint.basePath + "/" + call.bucket + (encodedKey.map { "/" + $0 } ?? "")
        } else {
            host = "\(call.bucket).\(endpoint.authority)"
            path = endpoint.basePath + "/" + (encodedKey ?? "")
        }
        let time = SigV4Signer.Timestamp.now
        var headers = call.headers
        headers.append(HTTPHeader("Host", host))
        headers.append(HTTPHeader("x-amz-date", time.text))
        headers.append(HTTPHeader("x-amz-content-sha256", call.payloadHash))
        if let token = configuration.sessionToken { headers.append(HTTPHeader("x-amz-security-token", token)) }
        let signed = SigV4Signer.Request(
            method: call.method, canonicalURI: path, query: call.query, headers: headers, payloadHash: call.payloadHash)
        headers.append(HTTPHeader("Authorization", signer.authorization(signed, time: time)))

        let query = SigV4Signer.canonicalQuery(call.query)
        let url = "\(endpoint.scheme)://\(host)\(path)" + (query.isEmpty ? "" : "?\(query)")
        let left = deadline - .now
        let transfer = CurlTransferOptions(
            connectTimeout: min(.seconds(10), max(left, .milliseconds(1))), timeout: max(left, .milliseconds(1)), deadline: deadline,
            maxResponseBytes: call.maxResponseBytes, responseFile: call.responseFile, abort: abort)
        // PUT and POST always carry a body, if only an empty one: S3 wants their Content-Length.
        let sendsBody = call.method == "PUT" || call.method == "POST"
        return HTTPRequest(
            method: call.method, url: url, headers: headers, body: sendsBody && call.bodyFile == nil ? call.body : nil,
            transfer: transfer, bodyFile: call.bodyFile, caFile: configuration.caFile, pathAsIs: true)
    }
}
