import ConveyorCore
import Curl

/// How a failed S3 request is recorded: its error class, whether a retry can help, and the metrics outcome.
struct S3Failure {
    var jobFailure: JobFailure
    var outcome: String
    /// The S3 error code from the body, when there was one.
    var code: String?

    static let accessDeniedCodes: Set<String> = [
        "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
        "RequestTimeTooSkewed", "AllAccessDisabled", "AccountProblem", "InvalidSecurity",
    ]
    static let unavailableCodes: Set<String> = [
        "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted", "Throttling", "ThrottlingException",
    ]

    /// An HTTP answer that is not a success. The message names the object, the status, the S3 code and message and
    /// the request id; never a header that was sent.
    init(response: HTTPResponse, call: S3Call) {
        let text = response.body.isEmpty ? "" : response.bodyText
        code = S3XML.first("Code", in: text)
        let requestID = response.header("x-amz-request-id") ?? S3XML.first("RequestId", in: text)
        var detail = "HTTP \(response.status)"
        if let code { detail += " \(code)" }
        if let message = S3XML.first("Message", in: text), !message.isEmpty { detail += ": \(message)" }
        if let requestID { detail += " (request id \(requestID))" }
        let what = "s3 \(call.operation.rawValue) \(call.name)"
        let status = response.status
        if status == 403 || code.map(Self.accessDeniedCodes.contains) == true {
            jobFailure = .permanent(.storageAccessDenied, "\(what): \(detail): check the credentials and the bucket policy")
            outcome = "denied"
        } else if status >= 500 || status == 429 || code.map(Self.unavailableCodes.contains) == true {
            jobFailure = .transient(.storageUnavailable, "\(what): \(detail)")
            outcome = "unavailable"
        } else if status == 404, call.operation == .get, code == nil || code == "NoSuchKey" {
            jobFailure = .permanent(.sourceNotFound, "\(what) does not exist: \(detail)")
            outcome = "not_found"
        } else if code == "EntityTooLarge" {
            jobFailure = .permanent(.storageObjectTooLarge, "\(what): \(detail)")
            outcome = "refused"
        } else {
            jobFailure = .permanent(.storageRequestFailed, "\(what): \(detail)")
            outcome = status == 404 ? "not_found" : "refused"
        }
    }

    /// A transfer that ended without a complete answer.
    init(transport error: CurlError, call: S3Call) {
        code = nil
        let what = "s3 \(call.operation.rawValue) \(call.name)"
        switch error.kind {
        case .responseTooLarge:
            jobFailure = .permanent(.storageObjectTooLarge, "\(what): the object is larger than the \(call.maxResponseBytes)-byte limit")
            outcome = "refused"
        case .cancelled:
            jobFailure = .transient(.storageUnavailable, "\(what): cancelled before the store answered")
            outcome = "cancelled"
        case .localFile:
            jobFailure = .transient(.storageLocalFileFailed, "\(what): \(error.message)")
            outcome = "local_error"
        case .invalidRequest:
            jobFailure = .permanent(.storageRequestFailed, "\(what): \(error.message)")
            outcome = "refused"
        case .timeout, .deadlineExceeded, .connect, .transport, .setup:
            jobFailure = .transient(.storageUnavailable, "\(what): \(error.message)")
            outcome = "unavailable"
        }
    }
}
