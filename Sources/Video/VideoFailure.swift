public import AV
public import ConveyorCore

extension JobFailure {
    /// How an FFmpeg failure on a job's input is recorded: bad input is permanent, the rest retries.
    static func video(_ failure: AVFailure, job: JobContext, source: String) -> JobFailure {
        let message = "\(job.jobClass) jid=\(job.jid) source \(source): \(failure.message) [\(failure.operation)]"
        switch failure.kind {
        case .rejectedInput: return .permanent("UnsupportedMedia", message)
        case .nestedOpenRefused: return .permanent("MediaReferenceRefused", message)
        case .deadline: return .transient("MediaDeadline", message)
        case .resource, .output: return .transient("VideoOutputFailed", message)
        }
    }

    static func mediaKey(_ error: any Error, job: JobContext, argument: String) -> JobFailure {
        .permanent("InvalidMediaKey", "\(job.jobClass) jid=\(job.jid) \(argument): \(error)")
    }
}
