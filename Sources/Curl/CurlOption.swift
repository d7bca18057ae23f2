internal import CCurl
internal import CShims

/// A `CURLoption`, for the generic setters on `CurlEasy`. Options not listed here can be added in an
/// extension from curl.h's numbers (`CURLOPTTYPE_* + n`).
public struct CurlOption: Sendable, Hashable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ option: CURLoption) { self.rawValue = option.rawValue }
    var curl: CURLoption { CURLoption(rawValue: rawValue) }

    // General.
    public static let url = CurlOption(CURLOPT_URL)
    public static let verbose = CurlOption(CURLOPT_VERBOSE)
    public static let connectTimeoutMilliseconds = CurlOption(CURLOPT_CONNECTTIMEOUT_MS)
    public static let timeoutMilliseconds = CurlOption(CURLOPT_TIMEOUT_MS)
    public static let upload = CurlOption(CURLOPT_UPLOAD)
    public static let inFileSize = CurlOption(CURLOPT_INFILESIZE_LARGE)
    public static let username = CurlOption(CURLOPT_USERNAME)
    public static let password = CurlOption(CURLOPT_PASSWORD)
    public static let loginOptions = CurlOption(CURLOPT_LOGIN_OPTIONS)
    public static let useSSL = CurlOption(CURLOPT_USE_SSL)
    public static let caInfo = CurlOption(CURLOPT_CAINFO)
    public static let sslVerifyPeer = CurlOption(CURLOPT_SSL_VERIFYPEER)
    public static let sslVerifyHost = CurlOption(CURLOPT_SSL_VERIFYHOST)
    public static let maxConnects = CurlOption(CURLOPT_MAXCONNECTS)
    public static let maxAgeConnection = CurlOption(CURLOPT_MAXAGE_CONN)
    public static let forbidReuse = CurlOption(CURLOPT_FORBID_REUSE)
    public static let freshConnect = CurlOption(CURLOPT_FRESH_CONNECT)

    // HTTP.
    public static let httpHeader = CurlOption(CURLOPT_HTTPHEADER)
    public static let customRequest = CurlOption(CURLOPT_CUSTOMREQUEST)
    public static let post = CurlOption(CURLOPT_POST)
    public static let postFieldSize = CurlOption(CURLOPT_POSTFIELDSIZE_LARGE)
    public static let httpGet = CurlOption(CURLOPT_HTTPGET)
    public static let noBody = CurlOption(CURLOPT_NOBODY)
    public static let followLocation = CurlOption(CURLOPT_FOLLOWLOCATION)
    public static let acceptEncoding = CurlOption(CURLOPT_ACCEPT_ENCODING)
    public static let userAgent = CurlOption(CURLOPT_USERAGENT)
    /// Send the path as given: no squashing of `/../` or `/./` (object keys are names, not file paths).
    public static let pathAsIs = CurlOption(CURLOPT_PATH_AS_IS)

    // SMTP (envelope; the message itself is the upload body).
    public static let mailFrom = CurlOption(CURLOPT_MAIL_FROM)
    public static let mailRecipients = CurlOption(CURLOPT_MAIL_RCPT)
    public static let mailAuth = CurlOption(CURLOPT_MAIL_AUTH)
}

/// Values for `CurlOption.useSSL` (`CURLUSESSL_*`).
public enum CurlUseSSL: Int, Sendable {
    case none = 0, tryTLS = 1, control = 2, all = 3
}
