internal import ConveyorCore
internal import Curl

/// One configured LLM endpoint and how to speak to it.
public struct LLMProvider: Sendable {
    public enum Kind: String, Sendable {
        /// OpenAI Chat Completions, or any compatible server (Ollama, vLLM): `POST {base}/chat/completions`.
        case openAI = "openai"
        /// Anthropic Messages: `POST {base}/v1/messages`.
        case anthropic
    }

    public var kind: Kind
    /// Name in metrics and results: `openai`, `anthropic`.
    public var name: String
    /// `https://api.openai.com/v1` (OpenAI SDK convention, `/v1` included) or `https://api.anthropic.com`.
    public var baseURL: String
    /// Never logged or put in errors.
    var apiKey: String
    public var model: String
    /// OpenAI only: `max_completion_tokens` (OpenAI) or `max_tokens` (many compatible servers).
    public var maxTokensField: String
    public var temperature: Double

    public init(kind: Kind, name: String? = nil, baseURL: String, apiKey: String, model: String,
                maxTokensField: String = "max_completion_tokens", temperature: Double = 0.2) {
        self.kind = kind
        self.name = name ?? kind.rawValue
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey
        self.model = model
        self.maxTokensField = maxTokensField
        self.temperature = temperature
    }

    var endpoint: String {
        switch kind {
        case .openAI: baseURL + "/chat/completions"
        case .anthropic: baseURL + "/v1/messages"
        }
    }

    /// The HTTP request for one prompt.
    func request(_ prompt: SummaryPrompt, maxTokens: Int, transfer: CurlTransferOptions, idempotencyKey: String) -> HTTPRequest {
        var headers = [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Accept", "application/json"),
                       HTTPHeader("Idempotency-Key", idempotencyKey)]
        let body: JSONValue
        switch kind {
        case .openAI:
            headers.append(HTTPHeader("Authorization", "Bearer \(apiKey)"))
            body = .object(JSONObject([
                ("model", .string(model)),
                ("messages", .array([
                    .object(JSONObject([("role", "system"), ("content", .string(prompt.system))])),
                    .object(JSONObject([("role", "user"), ("content", .string(prompt.user))])),
                ])),
                ("temperature", JSONValue(min(2, max(0, temperature)))),
                (maxTokensField, JSONValue(maxTokens)),
            ]))
        case .anthropic:
            headers.append(HTTPHeader("x-api-key", apiKey))
            headers.append(HTTPHeader("anthropic-version", "2023-06-01"))
            body = .object(JSONObject([
                ("model", .string(model)),
                ("max_tokens", JSONValue(maxTokens)),
                // Anthropic's range is 0...1, OpenAI's 0...2.
                ("temperature", JSONValue(min(1, max(0, temperature)))),
                ("system", .string(prompt.system)),
                ("messages", .array([.object(JSONObject([("role", "user"), ("content", .string(prompt.user))]))])),
            ]))
        }
        return HTTPRequest(method: "POST", url: endpoint, headers: headers, body: body.bytes, transfer: transfer)
    }

    /// The normalised reply of a 2xx response (§3.3 of the provider notes).
    struct Reply: Sendable, Equatable {
        enum Stop: String, Sendable { case complete, truncated, refused }
        var text: String
        var modelServed: String
        var stop: Stop
        var inputTokens: Int?
        var outputTokens: Int?
        var requestID: String?
    }

    /// Parses a 2xx body; nil when it is not the expected shape.
    func parse(_ body: [UInt8], requestID: String?) -> Reply? {
        guard let json = try? JSONValue(parsing: body) else { return nil }
        switch kind {
        case .openAI:
            guard let choice = json["choices"]?[0], let message = choice["message"] else { return nil }
            let finish = choice["finish_reason"]?.stringValue ?? "stop"
            let refused = (message["refusal"].map { !$0.isNull } ?? false) || finish == "content_filter"
            return Reply(
                text: ProviderText.storable(message["content"]?.stringValue ?? ""), modelServed: json["model"]?.stringValue ?? model,
                stop: refused ? .refused : finish == "length" ? .truncated : .complete,
                inputTokens: json["usage"]?["prompt_tokens"]?.intValue, outputTokens: json["usage"]?["completion_tokens"]?.intValue,
                requestID: requestID ?? json["id"]?.stringValue)
        case .anthropic:
            guard let blocks = json["content"]?.arrayValue else { return nil }
            let text = ProviderText.storable(blocks.filter { $0["type"]?.stringValue == "text" }.compactMap { $0["text"]?.stringValue }.joined())
            let stop = json["stop_reason"]?.stringValue ?? "end_turn"
            return Reply(
                text: text, modelServed: json["model"]?.stringValue ?? model,
                stop: stop == "refusal" ? .refused : (stop == "max_tokens" || stop == "model_context_window_exceeded") ? .truncated : .complete,
                inputTokens: json["usage"]?["input_tokens"]?.intValue, outputTokens: json["usage"]?["output_tokens"]?.intValue,
                requestID: requestID ?? json["id"]?.stringValue)
        }
    }

    /// The provider's error text from an error body (`error.type`/`code` and `error.message`), with credentials
    /// removed (`secrets`, the configured API keys, and anything shaped like a key or bearer token: see
    /// `ProviderText.redacted`) and cut short: a 401 body may echo the key it refused.
    static func errorText(_ body: [UInt8], secrets: [String]) -> String {
        guard let json = try? JSONValue(parsing: body), let error = json["error"] else {
            return ProviderText.redacted(String(decoding: body.prefix(16_384), as: UTF8.self), secrets: secrets)
        }
        let type = error["code"]?.stringValue ?? error["type"]?.stringValue ?? "error"
        let message = error["message"]?.stringValue ?? ""
        // Only the start is kept, and masking it first means a cut can never leave part of a key.
        return ProviderText.redacted("\(type.prefix(100)): \(message.prefix(16_384))", secrets: secrets)
    }
}
