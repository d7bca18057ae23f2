import Foundation
public import ConveyorCore

/// BullMQ's decision for a failed attempt that may be retried: the back-off of the job's `opts.backoff`, as
/// BullMQ's `Backoffs` computes it (milliseconds).
public enum BullMQBackoff {
    /// The longest back-off Conveyor applies (ten years): every delay saturates here.
    public static let maxDelay = 315_360_000_000

    /// The delay before the retry that follows `attemptsMade` failed runs (this one included, so ≥ 1), or a reason
    /// the back-off cannot be computed (a custom strategy only a Node worker knows). `random` is in `0..<1`.
    public static func delay(_ backoff: JSONValue?, attemptsMade: Int, random: Double) -> Result<Int, JobFailure> {
        let spec: JSONObject
        switch backoff {
        case nil, .null?:
            return .success(0)
        case .number?:
            // A bare number is a fixed delay (`Backoffs.normalize`).
            spec = ["type": "fixed", "delay": backoff!]
        case .object(let object)?:
            spec = object
        case let other?:
            return .failure(.permanent(.invalidArguments, "opts.backoff must be a number or an object, got \(other.typeName)"))
        }
        let type = spec["type"]?.stringValue ?? "fixed"
        let delay = spec["delay"]?.doubleValue ?? 0
        let jitter = Saturating.clamp(spec["jitter"]?.doubleValue ?? 0, to: 0...1)
        guard delay.isFinite, delay >= 0 else {
            return .failure(.permanent(.invalidArguments, "opts.backoff.delay must be a non-negative number, got \(spec["delay"] ?? .null)"))
        }
        let n = Double(max(1, attemptsMade))
        let raw: Double
        switch type {
        case "fixed": raw = delay
        case "exponential": raw = (Foundation.pow(2, n - 1) * delay).rounded()
        case "linear": raw = delay * n
        case "polynomial":
            let exponent = spec["exponent"]?.doubleValue ?? 2
            guard exponent > 0, exponent.isFinite else {
                return .failure(.permanent(.invalidArguments, "opts.backoff.exponent must be a positive number, got \(exponent)"))
            }
            raw = delay * Foundation.pow(n, exponent)
        default:
            return .failure(
                .permanent(
                    .invalidArguments,
                    "unknown backoff strategy \"\(type)\": a custom strategy runs only in the Node worker that defines it; a Conveyor worker knows fixed, exponential, linear and polynomial"))
        }
        var value = raw
        if jitter > 0 {
            // BullMQ: floor(random * raw * jitter + raw * (1 - jitter)).
            value = (Saturating.clamp(random, to: 0...0.999_999_999) * raw * jitter + raw * (1 - jitter)).rounded(.down)
        }
        if value.isNaN { value = Double(maxDelay) }
        return .success(Saturating.int(Saturating.clamp(value, to: 0...Double(maxDelay))))
    }
}
