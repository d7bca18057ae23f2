public import ConveyorCore
import Foundation

/// Gives every upload an answer: when a `media.ingest` job lands in the dead set, writes a `failed` row for its
/// upload if none exists yet, so the API never waits for an upload that will not become ready.
public struct IngestDeathObserver: JobObserver {
    public let recorder: any IngestRecorder

    public init(recorder: any IngestRecorder) {
        self.recorder = recorder
    }

    public func jobFinished(_ outcome: JobOutcome) {
        guard outcome.jobClass == IngestHandler.jobClass, outcome.status == .dead else { return }
        Task { await record(outcome) }
    }

    /// The row for one dead outcome (a no-op for other outcomes and for jobs without an upload id).
    public func record(_ outcome: JobOutcome) async {
        guard outcome.jobClass == IngestHandler.jobClass, outcome.status == .dead,
              case .object(let arguments)? = outcome.payload["args"]?[0],
              let uploadID = arguments["upload_id"]?.stringValue, IngestHandler.uploadIDProblem(uploadID) == nil
        else { return }
        var row = JSONObject()
        row["upload_id"] = JSONValue(uploadID)
        // The job may have died for this very source (a NUL in it): kept without control characters, so the row is written.
        row["source"] = arguments["source"]?.stringValue.map {
            JSONValue(String(String.UnicodeScalarView($0.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(1024))))
        } ?? ""
        row["detected_type"] = "unknown"
        row["status"] = "failed"
        row["error_class"] = JSONValue(outcome.failure?.errorClass ?? ErrorClass.jobDead.rawValue)
        row["error_message"] = JSONValue(outcome.failure?.message ?? "media.ingest jid=\(outcome.jid) is in the dead set")
        do {
            try await recorder.recordIfAbsent(uploadID: uploadID, jid: outcome.jid, row: row)
        } catch {
            // The job's dead outcome is still in the dead set and conveyor.job_results.
        }
    }
}
