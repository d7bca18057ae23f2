// A libFuzzer target over the job envelope: JSON parsing, `Job.init`'s validation and every transition the worker
// computes from an envelope (failure, retry delay, reaping, requeueing, replay, quarantine). Compiled with
// ConveyorCore's own sources for those (Fuzz/run.sh lists them); any trap, and any broken invariant below, is a crash
// that libFuzzer reports with the input that caused it.

/// The first bytes pick the knobs (random draw, policy, clock); the rest is the payload.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelope(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let knob = bytes.first ?? 0
    let random = Double(knob) / 256
    let now = 1_796_603_000.5 + Double(knob) * 1_000_003
    let policies = [
        RetryPolicy.default, RetryPolicy(maxAttempts: Int.max),
        RetryPolicy(maxAttempts: Int.max, backoff: .exponential(base: 0, factor: 1e308)),
        RetryPolicy(maxAttempts: Int(knob), backoff: .exponential(base: 1e300, factor: 1e300, cap: .infinity, jitter: 2)),
    ]

    // The payload itself, and the payload behind one knob byte (so seeds stay plain JSON files).
    for raw in [bytes, Array(bytes.dropFirst())] {
        // What Conveyor writes back reads back the same (numbers keep their text, objects their order).
        if let value = try? JSONValue(parsing: raw) {
            precondition((try? JSONValue(parsing: value.bytes)) == value, "a parsed document does not survive its own serialization")
        }
        let job: Job
        do {
            job = try Job(raw: raw, fetchedFrom: "default")
        } catch {
            // Refused: as the worker keeps it, a readable dead-set entry with the bytes kept.
            precondition(error.errorClass == "MalformedJob" || error.errorClass == "InvalidArguments", "refused as \(error.errorClass)")
            let kept = JobTransitions.quarantined(raw: raw, queue: "default", failure: error, now: now)
            let back = try? JSONValue(parsing: kept.bytes)
            precondition(back?.objectValue?["error_class"]?.stringValue == error.errorClass, "quarantined entry does not read back")
            if let envelope = try? JSONValue(parsing: raw).objectValue {
                _ = JobTransitions.rejected(envelope, raw: raw, queue: "default", failure: error, now: now).bytes
            }
            continue
        }
        precondition(job.previousFailures >= 0 && job.previousFailures <= JobEnvelope.retryCountRange.upperBound + 1)
        precondition(job.jobClass.utf8.count <= JobEnvelope.maxNameBytes && job.queue.utf8.count <= JobEnvelope.maxNameBytes)
        for t in [job.enqueuedAt, job.createdAt].compactMap({ $0 }) { precondition(t.isFinite && t >= 0 && t <= 1e11) }
        _ = JobTime.day(job.enqueuedAt ?? now)
        _ = JobTime.value(now, like: job.payload)
        for policy in policies {
            // The last: a class and message longer than the envelope keeps (a long Swift type name), cut when written.
            let long = JobFailure.transient(
                ErrorClass(rawValue: String(repeating: "Généric<", count: Int(knob))), String(repeating: "ü", count: 50 * Int(knob)))
            for failure in [JobFailure.transient("Boom", "x"), JobFailure.permanent("Bad", "y"), long] {
                let (payload, destination) = JobTransitions.failed(job, failure: failure, policy: policy, now: now, random: random)
                if case .retry(let at) = destination {
                    precondition(at.isFinite && at >= now && at <= now + RetryPolicy.maxDelay, "retry at \(at)")
                    _ = Saturating.int((at - now).rounded())
                }
                // What the worker writes must parse again as a job (its failure fields in range).
                let written = payload.bytes
                guard let again = try? Job(raw: written) else { preconditionFailure("a rewritten payload no longer parses") }
                precondition(again.previousFailures == min(job.previousFailures + 1, JobEnvelope.retryCountRange.upperBound + 1))
                if case .retry = destination { precondition(again.previousFailures <= JobEnvelope.retryCountRange.upperBound) }
                _ = JobTransitions.enqueued(payload, now: now).bytes
                _ = JobTransitions.replayed(payload, queue: job.queue, resetAttempts: knob & 1 == 0, now: now).bytes
            }
            // A deferral (a destination's 429): bounded wait, and either no attempt spent or, past the cap or with an
            // `overrated` that is not a count, one attempt as any failure.
            let waits: [Double?] = [nil, Double(knob), .infinity, -.infinity, .nan, 1e308, -1]
            let deferred = JobFailure.deferred("Throttled", "429", after: waits[Int(knob) % waits.count])
            let (payload, destination) = JobTransitions.failed(job, failure: deferred, policy: policy, now: now, random: random)
            guard let again = try? Job(raw: payload.bytes) else { preconditionFailure("a deferred payload no longer parses") }
            if case .deferred(let at) = destination {
                precondition(at.isFinite && at >= now + 1 && at <= now + JobTransitions.maximumDeferralWait, "deferred to \(at)")
                precondition(again.previousFailures == job.previousFailures, "a deferral spent an attempt")
                let count = again.payload["overrated"]?.intValue ?? -1
                precondition(count >= 1 && count <= JobTransitions.maximumDeferrals, "overrated \(count)")
            } else {
                precondition(again.previousFailures == min(job.previousFailures + 1, JobEnvelope.retryCountRange.upperBound + 1))
            }
            _ = JobTransitions.reaped(job, identity: "fuzz", policy: policy, now: now)
            _ = policy.delay(retryCount: job.previousFailures, random: random)
        }
    }
    return 0
}
