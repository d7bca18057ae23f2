import Foundation

// The families' settings. Each family's configuration type reads its typed values from the one `SettingsReader`
// (`FamilyContext.settings`) through these declarations: the variable name lives only here, and a value from
// conveyor.yml or a flag reaches a family exactly as one from the environment.

/// Every family setting declared in ConveyorCore: the catalogue of a reader built for one family's configuration
/// from a plain environment (the families' tests, `init(environment:)`).
public enum FamilySettings {
    public static let all: [Setting] = MediaSettings.all + ImagesSettings.all + VideoSettings.all + MailSettings.all + SummariesSettings.all
}

extension SettingsReader {
    /// A reader over the families' settings from `environment` alone (no flags, no file).
    public init(families environment: [String: String]) {
        self.init(catalogue: FamilySettings.all, environment: environment)
    }

    /// Throws a permanent `errorClass` failure listing every refused value among `settings` (each naming its source
    /// and what is allowed): a configuration built from a reader never runs on a value its declaration refuses.
    public func refuse(_ settings: [Setting], as errorClass: ErrorClass = .invalidConfiguration) throws(JobFailure) {
        let names = Set(settings.map(\.name))
        let mine = zip(problems, problemSettingsByProblem).filter { _, name in name.map(names.contains) ?? false }.map(\.0)
        if !mine.isEmpty { throw .permanent(errorClass, mine.joined(separator: "; ")) }
    }

    /// A whole-number setting as the count of a unit (`CONVEYOR_VIDEO_MAX_FILE_MB` in bytes), nil when it does not
    /// fit an `Int`.
    public func int(_ setting: Setting, times unit: Int) -> Int? {
        let (n, overflow) = int(setting).multipliedReportingOverflow(by: unit)
        return overflow ? nil : n
    }
}

/// Where media lives: the local root or an S3-compatible bucket (the Storage family).
public enum MediaSettings {
    public static let mediaRoot = Setting("CONVEYOR_MEDIA_ROOT", note: "`.run/media` (relative to the working directory)", 
            doc: "Root folder of media keys while `CONVEYOR_MEDIA_STORE` is unset (image, video and audio jobs). Job arguments are keys relative to it; absolute paths, `..` and symlinks leaving it are permanent `PathOutsideMediaRoot` failures. A folder named here is created when missing, the default never is.")

    public static let mediaStore = Setting("CONVEYOR_MEDIA_STORE", .url(["s3", "file"]), note: "the local media root", 
            doc: "`s3://bucket[/prefix]`: media in that bucket, object key = prefix + `/` + key; `file:///path`: a local root.")

    public static let scratchDir = Setting("CONVEYOR_SCRATCH_DIR", note: "`$TMPDIR/conveyor-scratch`", 
            doc: "Where a bucket's jobs are staged (mode 0700); the helpers' sandbox may write only here.")

    public static let mediaCacheControl = Setting("CONVEYOR_MEDIA_CACHE_CONTROL", default: "public, max-age=86400", 
            doc: "`Cache-Control` of every uploaded output; empty sends none.")

    public static let awsAccessKeyId = Setting("AWS_ACCESS_KEY_ID", note: "required for S3", 
            doc: "S3 access key (requests are signed with SigV4, payload hashed).")

    public static let awsSecretAccessKey = Setting("AWS_SECRET_ACCESS_KEY", note: "required for S3", secret: true, 
            doc: "S3 secret key.")

    public static let awsSessionToken = Setting("AWS_SESSION_TOKEN", secret: true, 
            doc: "Temporary credentials' token.")

    public static let awsRegion = Setting("AWS_REGION", default: "us-east-1", 
            doc: "Signing region.")

    public static let awsDefaultRegion = Setting("AWS_DEFAULT_REGION", note: "none", 
            doc: "Signing region when `AWS_REGION` is unset.")

    public static let awsEndpointUrlS3 = Setting("AWS_ENDPOINT_URL_S3", .url(["http", "https"]), note: "AWS", 
            doc: "S3 endpoint for MinIO, SeaweedFS, R2, GCS interop: `http(s)://host[:port]`.")

    public static let awsEndpointUrl = Setting("AWS_ENDPOINT_URL", .url(["http", "https"]), note: "AWS", 
            doc: "Endpoint when `AWS_ENDPOINT_URL_S3` is unset.")

    public static let s3PathStyle = Setting("CONVEYOR_S3_PATH_STYLE", .onOff, note: "on with an endpoint, else off", 
            doc: "`host/bucket/key` instead of `bucket.host/key`.")

    public static let s3CaFile = Setting("CONVEYOR_S3_CA_FILE", note: "system CAs", 
            doc: "Extra CA bundle; TLS verification is always on.")

    public static let s3MultipartMb = Setting("CONVEYOR_S3_MULTIPART_MB", .int(5...1_048_576), default: "16", 
            doc: "Outputs at least this large go up as multipart uploads.")

    public static let s3PartMb = Setting("CONVEYOR_S3_PART_MB", .int(5...5120), default: "8", 
            doc: "Part size (S3's minimum is 5).")

    public static let s3ParallelParts = Setting("CONVEYOR_S3_PARALLEL_PARTS", .int(1...64), default: "4", 
            doc: "Parts in flight per upload.")

    public static let s3AllowedBuckets = Setting("CONVEYOR_S3_ALLOWED_BUCKETS", .list, 
            doc: "Other buckets a job may name with its `bucket` argument (comma-separated, as imgproxy's `IMGPROXY_S3_ALLOWED_BUCKETS`); needs an `s3://` store.")

    public static let all = [mediaRoot, mediaStore, scratchDir, mediaCacheControl, awsAccessKeyId, awsSecretAccessKey, awsSessionToken, awsRegion, awsDefaultRegion, awsEndpointUrlS3, awsEndpointUrl, s3PathStyle, s3CaFile, s3MultipartMb, s3PartMb, s3ParallelParts, s3AllowedBuckets]

    public static let group = SettingGroup(
        "Media store", note: "Jobs name media by keys, in a local folder or an S3-compatible bucket (see the section after the tables).", all)
}

/// Image jobs and the helper processes that decode (the Images family and the sandbox).
public enum ImagesSettings {
    public static let imageMaxMegapixels = Setting("CONVEYOR_IMAGE_MAX_MEGAPIXELS", .number(0.000001...100_000), default: "50", 
            doc: "Largest frame (width × height after orientation), read from the header before decoding.")

    public static let imageMaxDimension = Setting("CONVEYOR_IMAGE_MAX_DIMENSION", .int(1...1_000_000), default: "20000", 
            doc: "Longest side in pixels (stops 1×100000 strips).")

    public static let imageMaxFileMb = Setting("CONVEYOR_IMAGE_MAX_FILE_MB", .number(0.000001...1_048_576), default: "50", 
            doc: "Largest source file.")

    public static let imageMaxFrames = Setting("CONVEYOR_IMAGE_MAX_FRAMES", .int(1...1_000_000), default: "500", 
            doc: "Most frames in an animated GIF/WebP/HEIF.")

    public static let imageMaxProgressiveMegapixels = Setting("CONVEYOR_IMAGE_MAX_PROGRESSIVE_MEGAPIXELS", .number(0.000001...100_000), default: "30", 
            doc: "Progressive JPEGs and interlaced PNGs cannot use shrink-on-load and cost far more memory: their own cap.")

    public static let imageTimeoutSeconds = Setting("CONVEYOR_IMAGE_TIMEOUT_SECONDS", .int(1...86_400), default: "60", 
            doc: "Job timeout; libvips is stopped through its kill flag, the helper SIGKILLed 0.5 s later if still busy.")

    public static let imageWebpEffort = Setting("CONVEYOR_IMAGE_WEBP_EFFORT", .int(0...6), default: "4", 
            doc: "Encoder effort (0-6) for WebP variants that name none; `0` encodes about three times faster for about 0.35 dB PSNR at the same size (see Benchmarks).")

    public static let imageAvifEffort = Setting("CONVEYOR_IMAGE_AVIF_EFFORT", .int(0...9), default: "2", 
            doc: "The same for AVIF variants (0-9).")

    public static let imageFastShrinkOnLoad = Setting("CONVEYOR_IMAGE_FAST_SHRINK_ON_LOAD", .onOff, default: "on", 
            doc: "JPEGs decode at 1/2, 1/4 or 1/8 scale whenever that still covers the largest variant (sharp's `fastShrinkOnLoad`, imgproxy's default). `off` keeps libvips' rule (a further factor of two left to lanczos3): outputs identical to `vipsthumbnail`'s, and slower (see Benchmarks).")

    public static let imageInProcess = Setting("CONVEYOR_IMAGE_IN_PROCESS", .onOff, default: "off", 
            doc: "`on` runs libvips inside the worker instead of helpers. Debugging only: a decoder crash then kills the worker.")

    public static let helpers = Setting("CONVEYOR_HELPERS", .int(1...256), default: "2", 
            doc: "Helper processes (`conveyor helper`) kept warm for image jobs; also the per-process concurrency of each image class.")

    public static let helperMaxJobs = Setting("CONVEYOR_HELPER_MAX_JOBS", .int(1...1_000_000), default: "200", 
            doc: "A helper is replaced after this many jobs.")

    public static let helperMemoryMb = Setting("CONVEYOR_HELPER_MEMORY_MB", .int(64...1_048_576), default: "2048", 
            doc: "Helper address-space limit (`RLIMIT_AS`).")

    public static let helperCpuSeconds = Setting("CONVEYOR_HELPER_CPU_SECONDS", .int(1...86_400), default: "60", 
            doc: "CPU seconds per job (`RLIMIT_CPU`, re-armed before each job).")

    public static let helperOpenFiles = Setting("CONVEYOR_HELPER_OPEN_FILES", .int(16...1_048_576), default: "256", 
            doc: "`RLIMIT_NOFILE` of a helper.")

    public static let helperSandbox = Setting("CONVEYOR_HELPER_SANDBOX", .onOff, default: "on", 
            doc: "The image and video helpers' sandbox: non-dumpable helpers keeping only the file capabilities, a seccomp filter (no sockets, no exec, no ptrace, no kernel administration; no signals to other processes where Landlock cannot scope them) and Landlock (write only below the media root and the helper's own scratch folder, its `TMPDIR`; read only there, below `/usr`, `/lib*`, `/bin`, `/sbin`, `/opt`, `/sys`, `/dev`, the helper's own `/proc/self` and a few global `/proc` files, and the few `/etc` files glibc reads: `ld.so.cache`, `nsswitch.conf`, `passwd`, `group`, `localtime`; from ABI 6, signals only to itself). A helper that cannot install the filter refuses to start; Landlock is best effort (a kernel without it leaves the filesystem unconfined and the helper says so on stderr). `off` runs helpers with the resource limits only. A worker that starts helpers makes itself non-dumpable: no core dumps of the worker, and debuggers attach only as root.")

    public static let helperBin = Setting("CONVEYOR_HELPER_BIN", note: "`/proc/self/exe`", 
            doc: "The `conveyor` binary started as `conveyor helper` (tests point it at the built binary).")

    public static let vipsConcurrency = Setting("VIPS_CONCURRENCY", .int(1...256), default: "1", 
            doc: "libvips threads per helper (the pool already runs helpers in parallel).")

    public static let all = [imageMaxMegapixels, imageMaxDimension, imageMaxFileMb, imageMaxFrames, imageMaxProgressiveMegapixels, imageTimeoutSeconds, imageWebpEffort, imageAvifEffort, imageFastShrinkOnLoad, imageInProcess, helpers, helperMaxJobs, helperMemoryMb, helperCpuSeconds, helperOpenFiles, helperSandbox, helperBin, vipsConcurrency]

    public static let group = SettingGroup("Images and helpers", all)
}

/// Video and audio jobs and `media.ingest` (the Media family).
public enum VideoSettings {
    public static let videoMaxPixels = Setting("CONVEYOR_VIDEO_MAX_PIXELS", .int(1...268_435_456), default: "8294400", 
            doc: "Largest width×height of a video stream, checked on the demuxer's numbers before decoding and as the decoders' `max_pixels`.")

    public static let videoMaxDuration = Setting("CONVEYOR_VIDEO_MAX_DURATION", .int(0...86_400), default: "10800", 
            doc: "Longest accepted duration in seconds (0: none).")

    public static let audioMaxDuration = Setting("CONVEYOR_AUDIO_MAX_DURATION", .int(1...86_400), default: "14400", 
            doc: "Longest audio in seconds (1-86400) that `audio.waveform`, `audio.transcode` and `media.ingest` accept, by its header or by what decodes (`MediaTooLong`). The audio jobs run in the video helpers, with the video file size limit and `CONVEYOR_VIDEO_TRANSCODE_TIMEOUT` as their timeout.")

    public static let videoMaxFileMb = Setting("CONVEYOR_VIDEO_MAX_FILE_MB", .int(1...1_048_576), default: "4096", 
            doc: "Largest source file the video jobs and `media.ingest` accept; from an object store, refused before it is downloaded whole.")

    public static let videoPreset = Setting("CONVEYOR_VIDEO_PRESET", .choice(["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]), default: "veryfast", 
            doc: "libx264 preset (Mastodon and PeerTube use `veryfast`).")

    public static let videoCrf = Setting("CONVEYOR_VIDEO_CRF", .int(0...51), default: "23", 
            doc: "libx264 CRF; the profile's maxrate still caps it.")

    public static let videoProbeTimeout = Setting("CONVEYOR_VIDEO_PROBE_TIMEOUT", .int(1...3600), default: "30", 
            doc: "Seconds per `video.probe` job (the FFmpeg interrupt callback stops at the job deadline).")

    public static let videoTranscodeTimeout = Setting("CONVEYOR_VIDEO_TRANSCODE_TIMEOUT", .int(1...86_400), default: "1800", 
            doc: "Seconds per `video.transcode` job.")

    public static let videoTranscodeConcurrency = Setting("CONVEYOR_VIDEO_TRANSCODE_CONCURRENCY", .int(1...64), default: "1", 
            doc: "Transcodes at once per worker process (x264 already uses every core), whether `video.transcode` or the video half of `media.ingest` runs them. `media.ingest` itself runs up to this plus `CONVEYOR_HELPERS` jobs at once, so image uploads keep every image helper busy.")

    public static let videoHelpers = Setting("CONVEYOR_VIDEO_HELPERS", .int(1...64), default: "2", 
            doc: "`conveyor helper` processes that run libav* for the video jobs.")

    public static let videoHelperMemoryMb = Setting("CONVEYOR_VIDEO_HELPER_MEMORY_MB", .int(256...1_048_576), default: "8192", 
            doc: "Address-space limit (RLIMIT_AS) of each video helper; CPU limit = 4 × the transcode timeout.")

    public static let videoFfmpegLog = Setting("CONVEYOR_VIDEO_FFMPEG_LOG", .choice(["error", "warning", "info"]), note: "quiet", 
            doc: "`error`, `warning` or `info`: FFmpeg's own log lines to stderr, prefixed `ffmpeg:`.")

    public static let videoInProcess = Setting("CONVEYOR_VIDEO_IN_PROCESS", .onOff, default: "off", 
            doc: "`on` runs libav* on the worker's own threads instead of helpers (debugging only: a decoder crash then takes the worker down).")

    public static let all = [videoMaxPixels, videoMaxDuration, audioMaxDuration, videoMaxFileMb, videoPreset, videoCrf, videoProbeTimeout, videoTranscodeTimeout, videoTranscodeConcurrency, videoHelpers, videoHelperMemoryMb, videoFfmpegLog, videoInProcess]

    public static let group = SettingGroup("Video and audio", all)
}

/// `email.send` (the Mail family).
public enum MailSettings {
    public static let smtpUrl = Setting("SMTP_URL", .url(["smtp", "smtps"]), note: "none: mail is written to `CONVEYOR_MAIL_OUTBOX`", 
            doc: "`smtps://host:465` (implicit TLS) or `smtp://host:587`. Unset: mail is written as `.eml` files into `CONVEYOR_MAIL_OUTBOX` instead of being sent. Credentials may be in the URL (`smtps://user:pass@host`); they are never logged. A path sets the EHLO name (`smtps://host:465/worker1.example.com`; libcurl's default is `localhost`).")

    public static let smtpUsername = Setting("SMTP_USERNAME", note: "from `SMTP_URL`", 
            doc: "AUTH user name; wins over the one in `SMTP_URL`.")

    public static let smtpPassword = Setting("SMTP_PASSWORD", note: "from `SMTP_URL`", secret: true, 
            doc: "AUTH password; wins over the one in `SMTP_URL`. Never logged.")

    public static let smtpStarttls = Setting("SMTP_STARTTLS", .choice(["required", "optional", "off"]), default: "required", 
            doc: "`smtp://` only: `required` (fail, permanently, if the server does not offer STARTTLS), `optional` (upgrade when offered; trusted networks only), `off` (local sinks).")

    public static let smtpCaFile = Setting("SMTP_CA_FILE", note: "system CAs", 
            doc: "PEM file of CA certificates to trust for the SMTP server (a private relay). Certificates are always verified.")

    public static let smtpConnectTimeout = Setting("SMTP_CONNECT_TIMEOUT", .int(1...300), default: "10", 
            doc: "Seconds to connect (TCP + TLS).")

    public static let smtpTimeout = Setting("SMTP_TIMEOUT", .int(1...900), default: "120", 
            doc: "Seconds for one whole send, DATA included (capped by the job's deadline).")

    public static let smtpRateLimit = Setting("SMTP_RATE_LIMIT", .int(0...100_000), default: "0", 
            doc: "Messages per second for the transport, shared by every worker process through Redis (the hash `conveyor:mail:rate:smtp`, counted per second of Redis' clock); needs `REDIS_URL`. A send over budget waits for the next second.")

    public static let smtpRateLimitPerDomain = Setting("SMTP_RATE_LIMIT_PER_DOMAIN", .int(0...100_000), default: "0", 
            doc: "Messages per second to one recipient domain (the part after `@`, lowercased), shared by every worker process through Redis (`conveyor:mail:rate:smtp:domain:<domain>`); needs `REDIS_URL`. A send over its domain's budget waits for the next second, up to the job's deadline. 0: no per-domain limit.")

    public static let mailFrom = Setting("CONVEYOR_MAIL_FROM", default: "Conveyor <no-reply@conveyor.localhost>", 
            doc: "`From:` and envelope sender, `Name <address>` or a bare address.")

    public static let mailReplyTo = Setting("CONVEYOR_MAIL_REPLY_TO", 
            doc: "`Reply-To:`.")

    public static let mailMessageIdDomain = Setting("CONVEYOR_MAIL_MESSAGE_ID_DOMAIN", note: "the `From` domain", 
            doc: "Right-hand side of generated Message-IDs.")

    public static let mailTemplates = Setting("CONVEYOR_MAIL_TEMPLATES", note: "the bundled `templates/mail`", 
            doc: "Template folder: `<template>/<locale>.{subject,text,html}.mustache`.")

    public static let mailDefaultLocale = Setting("CONVEYOR_MAIL_DEFAULT_LOCALE", default: "en", 
            doc: "Locale used when the job's locale (and its language) has no template.")

    public static let mailListTemplates = Setting("CONVEYOR_MAIL_LIST_TEMPLATES", .list, default: "notification", 
            doc: "Comma-separated templates that are notifications: they need `data.unsubscribe_url` and get `List-Unsubscribe` + `List-Unsubscribe-Post`.")

    public static let mailOutbox = Setting("CONVEYOR_MAIL_OUTBOX", default: ".run/mail", 
            doc: "Where `.eml` files go when `SMTP_URL` is unset.")

    public static let mailConcurrency = Setting("CONVEYOR_MAIL_CONCURRENCY", .int(1...256), default: "4", 
            doc: "`email.send` jobs at once per process, and so SMTP connections per process.")

    public static let all = [smtpUrl, smtpUsername, smtpPassword, smtpStarttls, smtpCaFile, smtpConnectTimeout, smtpTimeout, smtpRateLimit, smtpRateLimitPerDomain, mailFrom, mailReplyTo, mailMessageIdDomain, mailTemplates, mailDefaultLocale, mailListTemplates, mailOutbox, mailConcurrency]

    public static let group = SettingGroup("Email", note: "With `SMTP_URL` unset mail is written as `.eml` files; credentials are never logged.", all)
}

/// `llm.summarize` (the Summaries family).
public enum SummariesSettings {
    public static let llmProviders = Setting("CONVEYOR_LLM_PROVIDERS", .list, default: "openai,anthropic", 
            doc: "Order providers are tried in; providers without a key are skipped", check: { text in
            let unknown = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                .filter { !$0.isEmpty && $0 != "openai" && $0 != "anthropic" }
            return unknown.isEmpty ? nil : "\(unknown.joined(separator: ", ")) is not a provider (openai, anthropic)"
        })

    public static let openaiApiKey = Setting("OPENAI_API_KEY", secret: true, 
            doc: "Enables the OpenAI-compatible provider (`Authorization: Bearer`)")

    public static let openaiBaseUrl = Setting("OPENAI_BASE_URL", .url(["http", "https"]), default: "https://api.openai.com/v1", 
            doc: "Any Chat Completions server (Ollama `http://127.0.0.1:11434/v1`, vLLM)")

    public static let openaiModel = Setting("OPENAI_MODEL", default: "gpt-4o-mini", 
            doc: "Model sent to it")

    public static let llmOpenaiMaxTokensField = Setting("CONVEYOR_LLM_OPENAI_MAX_TOKENS_FIELD", .choice(["max_completion_tokens", "max_tokens"]), default: "max_completion_tokens", 
            doc: "Set `max_tokens` for servers that only know the old name")

    public static let anthropicApiKey = Setting("ANTHROPIC_API_KEY", secret: true, 
            doc: "Enables Anthropic Messages (`x-api-key`, `anthropic-version: 2023-06-01`)")

    public static let anthropicBaseUrl = Setting("ANTHROPIC_BASE_URL", .url(["http", "https"]), default: "https://api.anthropic.com", 
            doc: "Messages endpoint is `{base}/v1/messages`")

    public static let anthropicModel = Setting("ANTHROPIC_MODEL", default: "claude-haiku-4-5", 
            doc: "Model sent to it")

    public static let llmTimeout = Setting("CONVEYOR_LLM_TIMEOUT", .number(0.001...3600), default: "30", 
            doc: "Total timeout in seconds of one provider call (also capped by the job deadline).")

    public static let llmConnectTimeout = Setting("CONVEYOR_LLM_CONNECT_TIMEOUT", .number(0.001...300), default: "5", 
            doc: "Connect timeout in seconds of one provider call.")

    public static let llmMaxInputChars = Setting("CONVEYOR_LLM_MAX_INPUT_CHARS", .int(200...1_000_000), default: "12000", 
            doc: "Title + body + comments are cut to this before sending (`truncated_input` in the result)")

    public static let llmMaxOutputTokens = Setting("CONVEYOR_LLM_MAX_OUTPUT_TOKENS", .int(16...8192), default: "400", 
            doc: "Output budget asked of the provider")

    public static let llmCacheTtl = Setting("CONVEYOR_LLM_CACHE_TTL", .number(1...31_536_000), default: "86400", 
            doc: "Summary cache in Redis (`REDIS_URL`), key `conveyor:summary:v1:<sha256>`")

    public static let llmLockTtl = Setting("CONVEYOR_LLM_LOCK_TTL", .number(0.001...3600), default: "60", 
            doc: "Single-flight lock `conveyor:summary:lock:<sha256>` per request")

    public static let llmModelAlias = Setting("CONVEYOR_LLM_MODEL_ALIAS", default: "summary-default", 
            doc: "Logical model in the cache key (a fallback's summary serves later jobs)")

    public static let llmBreakerWindow = Setting("CONVEYOR_LLM_BREAKER_WINDOW", .int(1...10_000), default: "20", 
            doc: "Count-based sliding window (calls) of each provider's breaker")

    public static let llmBreakerMinCalls = Setting("CONVEYOR_LLM_BREAKER_MIN_CALLS", .int(1...10_000), default: "10", 
            doc: "Calls needed before the breaker can open")

    public static let llmBreakerFailureRate = Setting("CONVEYOR_LLM_BREAKER_FAILURE_RATE", .int(1...100), default: "50", 
            doc: "Opens at or above this failure rate")

    public static let llmBreakerSlowCall = Setting("CONVEYOR_LLM_BREAKER_SLOW_CALL", .number(0.001...3600), default: "10", 
            doc: "Seconds after which a provider call counts as slow.")

    public static let llmBreakerSlowRate = Setting("CONVEYOR_LLM_BREAKER_SLOW_RATE", .int(1...100), default: "100", 
            doc: "The breaker opens at or above this slow-call rate (%).")

    public static let llmBreakerOpen = Setting("CONVEYOR_LLM_BREAKER_OPEN", .number(0.001...86_400), default: "60", 
            doc: "OPEN lasts this long, then the next call turns it HALF_OPEN")

    public static let llmBreakerHalfOpenCalls = Setting("CONVEYOR_LLM_BREAKER_HALF_OPEN_CALLS", .int(1...1000), default: "3", 
            doc: "Probe calls in HALF_OPEN, judged as their own window")

    public static let llmAuthFailureOpen = Setting("CONVEYOR_LLM_AUTH_FAILURE_OPEN", .number(0.001...604_800), default: "900", 
            doc: "How long a 401/403/402/404 forces the breaker open")

    public static let all = [llmProviders, openaiApiKey, openaiBaseUrl, openaiModel, llmOpenaiMaxTokensField, anthropicApiKey, anthropicBaseUrl, anthropicModel, llmTimeout, llmConnectTimeout, llmMaxInputChars, llmMaxOutputTokens, llmCacheTtl, llmLockTtl, llmModelAlias, llmBreakerWindow, llmBreakerMinCalls, llmBreakerFailureRate, llmBreakerSlowCall, llmBreakerSlowRate, llmBreakerOpen, llmBreakerHalfOpenCalls, llmAuthFailureOpen]

    public static let group = SettingGroup(
        "LLM summaries", note: "With no key set, `llm.summarize` uses the built-in extractive summariser (no network). Keys are never logged.", all)
}
