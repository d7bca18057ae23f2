public import ConveyorCore

/// One post to summarise, as the `llm.summarize` job carries it.
public struct SummaryRequest: Sendable, Equatable {
    public var postID: String
    public var title: String
    public var body: String
    public var comments: [String]
    public var maxWords: Int

    public init(postID: String, title: String, body: String, comments: [String] = [], maxWords: Int = 80) {
        self.postID = postID
        self.title = title
        self.body = body
        self.comments = comments
        self.maxWords = maxWords
    }

    public static let maxWordsRange = 10...400
    public static let maxComments = 500

    /// Reads and validates the job's argument object (the rules of `Jobs/llm.summarize.schema.json`).
    public init(arguments job: JobContext) throws(JobFailure) {
        let known: Set<String> = ["post_id", "title", "body", "comments", "max_words"]
        if let unknown = job.arguments.keys.first(where: { !known.contains($0) }) {
            throw .invalidArguments("llm.summarize jid=\(job.jid): unknown argument \(unknown.debugDescription); allowed: post_id, title, body, comments, max_words")
        }
        // A string, or an integer as many APIs' ids are (`42` is post "42"); any other number is refused.
        let postID: String
        switch job.arguments["post_id"] {
        case .number?:
            guard let n = job.arguments["post_id"]?.intValue else {
                throw .invalidArguments("llm.summarize: post_id must be a string or a whole number, got \(job.arguments["post_id"]!.text.prefix(40))")
            }
            postID = String(n)
        default:
            postID = try job.string("post_id")
        }
        guard !postID.isEmpty, postID.utf8.count <= 200 else {
            throw .invalidArguments("llm.summarize jid=\(job.jid): post_id must be 1 to 200 bytes")
        }
        // It keys `conveyor.summaries` and the cache: PostgreSQL text holds no NUL, and a log line no control character.
        guard !postID.unicodeScalars.contains(where: ProviderText.isControl) else {
            throw .invalidArguments("llm.summarize jid=\(job.jid): post_id must not contain NUL or other control characters")
        }
        let title = try job.optionalString("title") ?? ""
        let body = try job.optionalString("body") ?? ""
        var comments: [String] = []
        if let value = job.arguments["comments"], !value.isNull {
            guard let array = value.arrayValue else {
                throw .invalidArguments("llm.summarize post \(postID): comments must be an array of strings, got \(value.typeName)")
            }
            guard array.count <= Self.maxComments else {
                throw .invalidArguments("llm.summarize post \(postID): \(array.count) comments exceed the limit of \(Self.maxComments)")
            }
            for (i, item) in array.enumerated() {
                guard let text = item.stringValue else {
                    throw .invalidArguments("llm.summarize post \(postID): comments[\(i)] must be a string, got \(item.typeName)")
                }
                comments.append(text)
            }
        }
        let maxWords = try job.optionalInt("max_words", in: Self.maxWordsRange) ?? 80
        guard !(title + body).allSatisfy(\.isWhitespace) else {
            throw .invalidArguments("llm.summarize post \(postID): title and body are both empty; nothing to summarise")
        }
        self.init(postID: postID, title: title, body: body, comments: comments, maxWords: maxWords)
    }
}

/// The summary a job produces.
public struct SummaryResult: Sendable, Equatable {
    public var postID: String
    public var summary: String
    /// `openai`, `anthropic`, or `extractive` for the built-in summariser.
    public var provider: String
    /// The model that served the call (as the provider reported it).
    public var model: String
    public var cached: Bool
    /// True when no provider could answer and the built-in extractive summariser wrote it.
    public var degraded: Bool
    /// True when the input was cut to the configured cap before sending.
    public var truncatedInput: Bool
    public var inputTokens: Int?
    public var outputTokens: Int?

    public init(
        postID: String, summary: String, provider: String, model: String, cached: Bool, degraded: Bool,
        truncatedInput: Bool = false, inputTokens: Int? = nil, outputTokens: Int? = nil
    ) {
        // Provider output may carry NUL (which PostgreSQL cannot store) or other control characters: dropped here,
        // so the stored summary, the cache and the job's result all hold the same clean text.
        self.postID = postID
        self.summary = ProviderText.storable(summary)
        self.provider = provider
        self.model = String(ProviderText.storable(model).prefix(200))
        self.cached = cached
        self.degraded = degraded
        self.truncatedInput = truncatedInput
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }

    /// The job's result object.
    public var json: JSONValue {
        var pairs: [(String, JSONValue)] = [
            ("post_id", .string(postID)), ("summary", .string(summary)), ("provider", .string(provider)),
            ("model", .string(model)), ("cached", .bool(cached)), ("degraded", .bool(degraded)),
        ]
        if truncatedInput { pairs.append(("truncated_input", .bool(true))) }
        return .object(JSONObject(pairs))
    }
}
