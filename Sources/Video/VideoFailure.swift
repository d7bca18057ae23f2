public import ConveyorCore

extension JobFailure {
    static func mediaKey(_ error: any Error, job: JobContext, argument: String) -> JobFailure {
        .permanent("InvalidMediaKey", "\(job.jobClass) jid=\(job.jid) \(argument): \(error)")
    }
}
