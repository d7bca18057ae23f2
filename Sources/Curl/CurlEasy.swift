internal import CCurl
internal import CShims
internal import Glibc

/// Timing of one transfer, from libcurl's `CURLINFO_*_TIME_T`.
public struct CurlTiming: Sendable, Equatable {
    /// Until the TCP (and TLS) connection was up; zero when an existing connection was reused.
    public var connect: Duration
    /// Until the first response byte.
    public var firstByte: Duration
    public var total: Duration
    /// Connections opened for this transfer (0 = a kept-alive connection was reused).
    public var newConnections: Int
}

/// What to send and how long to wait, for one `CurlEasy.perform`.
public struct CurlTransferOptions: Sendable {
    /// libcurl's `CURLOPT_CONNECTTIMEOUT_MS`.
    public var connectTimeout: Duration = .seconds(10)
    /// libcurl's `CURLOPT_TIMEOUT_MS` (its own default, 0, would mean never).
    public var timeout: Duration = .seconds(30)
    /// The job's deadline: the progress callback aborts the transfer once it passes.
    public var deadline: ContinuousClock.Instant?
    /// Bytes served through `CURLOPT_READFUNCTION` (HTTP request body, SMTP message).
    public var upload: [UInt8]?
    /// The transfer fails with `.responseTooLarge` once the body exceeds this.
    public var maxResponseBytes: Int = 16 << 20
    /// A range of an open file served through `CURLOPT_READFUNCTION` with `pread`, instead of `upload`, so large
    /// bodies never sit in memory.
    public var uploadFile: CurlFileBody?
    /// A descriptor that receives a 2xx response body as it arrives instead of memory, bounded by
    /// `maxResponseBytes`; a `Content-Length` above the bound refuses the response before its body. Other statuses'
    /// bodies (error documents) stay in memory.
    public var responseFile: Int32?
    /// Aborts the transfer with `.cancelled` once signalled, from any thread.
    public var abort: CurlAbortSignal?

    public init(
        connectTimeout: Duration = .seconds(10), timeout: Duration = .seconds(30),
        deadline: ContinuousClock.Instant? = nil, upload: [UInt8]? = nil, maxResponseBytes: Int = 16 << 20,
        uploadFile: CurlFileBody? = nil, responseFile: Int32? = nil, abort: CurlAbortSignal? = nil
    ) {
        self.connectTimeout = connectTimeout
        self.timeout = timeout
        self.deadline = deadline
        self.upload = upload
        self.maxResponseBytes = maxResponseBytes
        self.uploadFile = uploadFile
        self.responseFile = responseFile
        self.abort = abort
    }
}

/// A byte range of an open file, sent as a request body.
public struct CurlFileBody: Sendable, Equatable {
    public var descriptor: Int32
    public var offset: Int64
    public var length: Int64

    public init(descriptor: Int32, offset: Int64 = 0, length: Int64) {
        self.descriptor = descriptor
        self.offset = offset
        self.length = length
    }
}

/// The raw result of one transfer.
public struct CurlTransfer: Sendable {
    /// `CURLINFO_RESPONSE_CODE`: the last HTTP status or SMTP reply code, 0 when none arrived.
    public var responseCode: Int
    /// The header block of the last response (after any `100 Continue`), status line first.
    public var headerLines: [String]
    public var body: [UInt8]
    public var timing: CurlTiming
    /// `CURLINFO_RETRY_AFTER` in seconds, when the response carried `Retry-After`.
    public var retryAfterSeconds: Int?
    /// Body bytes written to `CurlTransferOptions.responseFile`.
    public var responseFileBytes: Int = 0
}

/// Per-transfer buffers and limits reached from libcurl's C callbacks through their `*DATA` pointer.
final class TransferState {
    var body: [UInt8] = []
    var headerLines: [String] = []
    var upload: [UInt8] = []
    var uploadOffset = 0
    var maxResponseBytes = 0
    var deadline: ContinuousClock.Instant?
    var deadlineHit = false
    var tooLarge = false
    var uploadFile: CurlFileBody?
    var responseFile: Int32?
    var responseFileBytes = 0
    /// The status of the response whose headers are arriving, from its status line.
    var status = 0
    var contentLength: Int?
    var abort: CurlAbortSignal?
    var cancelled = false
    /// `errno` of a failed `pread` or `write`, or -1 when the upload file ended early.
    var localFileError: Int32 = 0

    func reset(_ options: CurlTransferOptions) {
        body.removeAll(keepingCapacity: true)
        headerLines.removeAll(keepingCapacity: true)
        upload = options.upload ?? []
        uploadOffset = 0
        maxResponseBytes = options.maxResponseBytes
        deadline = options.deadline
        deadlineHit = false
        tooLarge = false
        uploadFile = options.uploadFile
        responseFile = options.responseFile
        responseFileBytes = 0
        status = 0
        contentLength = nil
        abort = options.abort
        cancelled = false
        localFileError = 0
    }

    /// The body goes to the response file: one was given and the response is a success.
    var bodyToFile: Bool { responseFile != nil && (200..<300).contains(status) }
}

private func state(_ pointer: UnsafeMutableRawPointer?) -> TransferState {
    Unmanaged<TransferState>.fromOpaque(pointer!).takeUnretainedValue()
}

private let writeBody: curl_write_callback = { data, size, count, user in
    let state = state(user)
    let n = size * count
    if state.bodyToFile, let descriptor = state.responseFile {
        // More than the limit, or more than the response's own Content-Length, is refused.
        if state.responseFileBytes + n > min(state.maxResponseBytes, state.contentLength ?? Int.max) {
            state.tooLarge = true
            return 0
        }
        var written = 0
        while written < n, let data {
            let rc = Glibc.write(descriptor, data + written, n - written)
            if rc < 0 {
                if errno == EINTR { continue }
                state.localFileError = errno
                return 0
            }
            written += rc
        }
        state.responseFileBytes += n
        return n
    }
    // Beside a response file, memory holds only error documents: a small bound whatever the file's limit.
    let memoryLimit = state.responseFile == nil ? state.maxResponseBytes : min(state.maxResponseBytes, 1 << 20)
    if state.body.count + n > memoryLimit {
        state.tooLarge = true
        return 0
    }
    if n > 0, let data {
        data.withMemoryRebound(to: UInt8.self, capacity: n) { state.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
    }
    return n
}

private let writeHeader: curl_write_callback = { data, size, count, user in
    let state = state(user)
    let n = size * count
    guard n > 0, let data else { return n }
    let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
        String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
    }
    let trimmed = String(line.trimmingSuffix { $0 == "\r" || $0 == "\n" || $0 == "\r\n" })
    // A new status line starts a new response (100 Continue, redirects): keep only the last block.
    if trimmed.hasPrefix("HTTP/") {
        state.headerLines.removeAll(keepingCapacity: true)
        state.status = trimmed.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        state.contentLength = nil
    } else if state.responseFile != nil, trimmed.count > 15, trimmed.prefix(15).lowercased() == "content-length:" {
        state.contentLength = Int(trimmed.dropFirst(15).drop { $0 == " " || $0 == "\t" })
        if state.bodyToFile, let length = state.contentLength, length > state.maxResponseBytes {
            // Refused from the header, before any of the body is read.
            state.tooLarge = true
            return 0
        }
    }
    if !trimmed.isEmpty { state.headerLines.append(trimmed) }
    return n
}

private let readUpload: curl_read_callback = { buffer, size, count, user in
    let state = state(user)
    let room = size * count
    if let file = state.uploadFile {
        let left = Int(file.length) - state.uploadOffset
        guard left > 0 else { return 0 }
        while true {
            let rc = pread(file.descriptor, buffer, min(room, left), off_t(file.offset) + off_t(state.uploadOffset))
            if rc < 0 && errno == EINTR { continue }
            guard rc > 0 else {
                // Shorter than announced (truncated while sending) or unreadable: abort rather than send a short body.
                state.localFileError = rc < 0 ? errno : -1
                return Int(CURL_READFUNC_ABORT)
            }
            state.uploadOffset += rc
            return rc
        }
    }
    let left = state.upload.count - state.uploadOffset
    let n = min(room, left)
    if n > 0, let buffer {
        state.upload.withUnsafeBufferPointer { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + state.uploadOffset, byteCount: n)
        }
        state.uploadOffset += n
    }
    return n
}

private let rewindUpload: curl_seek_callback = { user, offset, origin in
    let state = state(user)
    guard origin == SEEK_SET, offset >= 0 else { return Int32(CURL_SEEKFUNC_CANTSEEK) }
    let length = state.uploadFile.map { Int($0.length) } ?? state.upload.count
    guard offset <= length else { return Int32(CURL_SEEKFUNC_FAIL) }
    state.uploadOffset = Int(offset)
    return Int32(CURL_SEEKFUNC_OK)
}

private let checkDeadline: curl_xferinfo_callback = { user, _, _, _, _ in
    let state = state(user)
    if let abort = state.abort, abort.isSignalled {
        state.cancelled = true
        return 1
    }
    if let deadline = state.deadline, ContinuousClock.now >= deadline {
        state.deadlineHit = true
        return 1
    }
    return 0
}

extension StringProtocol {
    fileprivate func trimmingSuffix(_ drop: (Character) -> Bool) -> SubSequence {
        var end = endIndex
        while end > startIndex, drop(self[index(before: end)]) { end = index(before: end) }
        return self[startIndex..<end]
    }
}

/// One libcurl easy handle. Reuse it for many transfers so kept-alive connections, TLS sessions and the DNS
/// cache are reused; never share it between threads at once (it is not `Sendable`; `CurlHandlePool` hands
/// handles to blocking threads).
///
/// Options set with `setOption` persist across transfers until `reset()`, as in libcurl.
public final class CurlEasy {
    let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let state = TransferState()
    private var lists: [CurlOption: CurlStringList] = [:]

    public init() throws(CurlError) {
        let rc = cshims_curl_global_init()
        guard rc == CURLE_OK else {
            throw CurlError(kind: .setup, code: Int(rc.rawValue), message: "curl_global_init failed: \(String(cString: curl_easy_strerror(rc)))")
        }
        guard let handle = curl_easy_init() else {
            throw CurlError(kind: .setup, code: 0, message: "curl_easy_init returned NULL (out of memory?)")
        }
        self.handle = handle
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        applyBaseOptions()
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// `curl_easy_reset`: clears every option (kept-alive connections and caches stay), then restores the
    /// wrapper's own (error buffer, callbacks, `NOSIGNAL`).
    public func reset() {
        curl_easy_reset(handle)
        lists.removeAll()
        applyBaseOptions()
    }

    private func applyBaseOptions() {
        let me = Unmanaged.passUnretained(state).toOpaque()
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorBuffer)
        _ = cshims_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = cshims_curl_setopt_write_function(handle, CURLOPT_WRITEFUNCTION, writeBody)
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_WRITEDATA, me)
        _ = cshims_curl_setopt_write_function(handle, CURLOPT_HEADERFUNCTION, writeHeader)
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_HEADERDATA, me)
        _ = cshims_curl_setopt_read_function(handle, readUpload)
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_READDATA, me)
        _ = cshims_curl_setopt_seek_function(handle, rewindUpload)
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_SEEKDATA, me)
        _ = cshims_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        _ = cshims_curl_setopt_xferinfo_function(handle, checkDeadline)
        _ = cshims_curl_setopt_ptr(handle, CURLOPT_XFERINFODATA, me)
    }

    // MARK: Generic options

    /// A `long` option (`CURLOPT_UPLOAD`, `CURLOPT_USE_SSL`, ...).
    public func setOption(_ option: CurlOption, _ value: Int) throws(CurlError) {
        try check(cshims_curl_setopt_long(handle, option.curl, value), option)
    }

    /// A `curl_off_t` option (`*_LARGE`).
    public func setOption(_ option: CurlOption, large value: Int64) throws(CurlError) {
        try check(cshims_curl_setopt_off_t(handle, option.curl, curl_off_t(value)), option)
    }

    /// A string option; libcurl copies it (do not use for `CURLOPT_POSTFIELDS`, use an upload body).
    /// `nil` clears the option.
    public func setOption(_ option: CurlOption, _ value: String?) throws(CurlError) {
        guard let value else {
            try check(cshims_curl_setopt_string(handle, option.curl, nil), option)
            return
        }
        guard !value.utf8.contains(0) else {
            throw CurlError(kind: .invalidRequest, code: 0, message: "option \(option.rawValue): value contains NUL")
        }
        try check(value.withCString { cshims_curl_setopt_string(handle, option.curl, $0) }, option)
    }

    /// A `curl_slist` option (`CURLOPT_HTTPHEADER`, `CURLOPT_MAIL_RCPT`); the handle keeps `list` alive
    /// until the option is replaced or the handle is reset. `nil` clears it.
    public func setOption(_ option: CurlOption, list: CurlStringList?) throws(CurlError) {
        try check(cshims_curl_setopt_slist(handle, option.curl, list?.head), option)
        lists[option] = list
    }

    /// A raw pointer option, for options without a typed setter. The caller keeps the memory alive.
    public func setOption(_ option: CurlOption, pointer: UnsafeMutableRawPointer?) throws(CurlError) {
        try check(cshims_curl_setopt_ptr(handle, option.curl, pointer), option)
    }

    private func check(_ rc: CURLcode, _ option: CurlOption) throws(CurlError) {
        guard rc == CURLE_OK else {
            throw CurlError(kind: .setup, code: Int(rc.rawValue),
                            message: "curl_easy_setopt(\(option.rawValue)): \(String(cString: curl_easy_strerror(rc)))")
        }
    }

    // MARK: Transfer

    /// Runs one transfer with the options set so far (URL, method, headers ...) plus `options`' timeouts,
    /// deadline and upload body. Blocks: call it on a blocking thread, never on Swift's cooperative pool.
    ///
    /// A response of any status is a success here; only transport failures throw.
    public func perform(_ options: CurlTransferOptions = CurlTransferOptions()) throws(CurlError) -> CurlTransfer {
        var timeout = options.timeout
        if let deadline = options.deadline {
            let left = deadline - .now
            guard left > .zero else {
                throw CurlError(kind: .deadlineExceeded, code: 0, message: "the job deadline passed before the transfer started")
            }
            timeout = min(timeout, left)
        }
        state.reset(options)
        errorBuffer[0] = 0
        _ = cshims_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, milliseconds(options.connectTimeout)))
        _ = cshims_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, milliseconds(timeout)))

        let rc = curl_easy_perform(handle)
        if rc != CURLE_OK {
            let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(rc))
            var url: UnsafePointer<CChar>?
            _ = cshims_curl_getinfo_string(handle, CURLINFO_EFFECTIVE_URL, &url)
            let where_ = url.map { redactedURL(String(cString: $0)) }
            let kind: CurlError.Kind
            switch rc {
            case _ where state.cancelled: kind = .cancelled
            case _ where state.localFileError != 0: kind = .localFile
            case CURLE_ABORTED_BY_CALLBACK where state.deadlineHit: kind = .deadlineExceeded
            case CURLE_WRITE_ERROR where state.tooLarge: kind = .responseTooLarge
            case CURLE_OPERATION_TIMEDOUT: kind = .timeout
            case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT, CURLE_SSL_CONNECT_ERROR,
                 CURLE_PEER_FAILED_VERIFICATION:
                kind = .connect
            case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT: kind = .invalidRequest
            default: kind = .transport
            }
            let message = switch kind {
            case .deadlineExceeded: "aborted: the job deadline passed (\(detail))"
            case .responseTooLarge: "response body exceeds \(options.maxResponseBytes) bytes"
            case .cancelled: "aborted: the transfer was cancelled"
            case .localFile where state.localFileError == -1:
                "the upload file ended before its \(options.uploadFile?.length ?? 0) bytes (changed while sending?)"
            case .localFile: "local file: \(String(cString: strerror(state.localFileError)))"
            default: detail
            }
            throw CurlError(kind: kind, code: Int(rc.rawValue), message: message, url: where_)
        }

        var code = 0
        _ = cshims_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        var retryAfter: curl_off_t = 0
        _ = cshims_curl_getinfo_off_t(handle, CURLINFO_RETRY_AFTER, &retryAfter)
        var connect: curl_off_t = 0, firstByte: curl_off_t = 0, total: curl_off_t = 0
        _ = cshims_curl_getinfo_off_t(handle, CURLINFO_CONNECT_TIME_T, &connect)
        _ = cshims_curl_getinfo_off_t(handle, CURLINFO_STARTTRANSFER_TIME_T, &firstByte)
        _ = cshims_curl_getinfo_off_t(handle, CURLINFO_TOTAL_TIME_T, &total)
        var connects = 0
        _ = cshims_curl_getinfo_long(handle, CURLINFO_NUM_CONNECTS, &connects)
        let hasRetryAfter = state.headerLines.contains { $0.lowercased().hasPrefix("retry-after:") }
        return CurlTransfer(
            responseCode: code, headerLines: state.headerLines, body: state.body,
            timing: CurlTiming(connect: .microseconds(connect), firstByte: .microseconds(firstByte),
                               total: .microseconds(total), newConnections: connects),
            retryAfterSeconds: hasRetryAfter ? Int(retryAfter) : nil, responseFileBytes: state.responseFileBytes)
    }
}

@available(*, unavailable)
extension CurlEasy: Sendable {}

/// Whole milliseconds, saturating at a day's worth below zero and a year above (libcurl's timeouts are `long`).
func milliseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    let bounded = min(max(seconds, -86_400), 31_536_000)
    return Int(bounded) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
}
