public import ConveyorCore

extension JobFailure {
    /// The failure with the job named in front of the message.
    func about(_ job: JobContext) -> JobFailure {
        with(message: "\(job.jobClass) jid=\(job.jid): \(message)")
    }
}
