public import ConveyorCore

/// The summary jobs' error classes.
extension ErrorClass {
    /// A provider rejected the request itself (400, 413, 422).
    public static let llmBadRequest: ErrorClass = "LLMBadRequest"
    /// The summary could not be stored.
    public static let summaryStoreFailed: ErrorClass = "SummaryStoreFailed"
}
