public import ConveyorCore

/// Which runs get a span, decided before one is started so that a job that is not traced costs a hash of its jid and
/// nothing of the tracer's. OpenTelemetry's samplers, read per job:
///
/// - `always_on` / `always_off`;
/// - `traceidratio`: a share of jobs, chosen by a hash of the jid (so every attempt of a job is traced, or none);
/// - `parentbased_*`: a job whose producer's context is valid follows the producer's sampled flag; one without uses
///   the rest of the name.
///
/// The tracer itself then samples everything it is asked to start (`always_on`): children of a traced run are traced.
public struct JobSampler: Sendable, Equatable {
    public enum Root: Sendable, Equatable {
        case always, never
        /// Sampled when the jid's hash falls under this share of 2⁶⁴.
        case ratio(UInt64)
    }

    public var root: Root
    public var parentBased: Bool

    public init(root: Root, parentBased: Bool) {
        self.root = root
        self.parentBased = parentBased
    }

    /// The sampler named by `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG` (already checked to be in 0...1).
    public init(name: String, ratio: Double) {
        let share: Root
        if ratio >= 1 {
            share = .always
        } else if ratio <= 0 || !ratio.isFinite {
            share = .never
        } else {
            share = .ratio(UInt64((ratio * 18_446_744_073_709_551_616.0).rounded(.down)))
        }
        switch name.lowercased() {
        case "always_on": self.init(root: .always, parentBased: false)
        case "always_off": self.init(root: .never, parentBased: false)
        case "traceidratio": self.init(root: share, parentBased: false)
        case "parentbased_always_off": self.init(root: .never, parentBased: true)
        case "parentbased_traceidratio": self.init(root: share, parentBased: true)
        default: self.init(root: .always, parentBased: true)
        }
    }

    /// Whether nothing is ever traced (the middleware need not be installed).
    public var tracesNothing: Bool { root == .never && !parentBased }

    /// Whether the run of `jid` is traced, given the producer's `traceparent` (already checked as a header).
    public func samples(jid: String, producer traceparent: String?) -> Bool {
        if parentBased, let traceparent, let sampled = Self.sampledFlag(traceparent) { return sampled }
        switch root {
        case .always: return true
        case .never: return false
        case .ratio(let threshold): return Self.hash(jid) < threshold
        }
    }

    /// The sampled bit of a version-00 W3C `traceparent`, nil when it is not one.
    static func sampledFlag(_ traceparent: String) -> Bool? {
        guard W3CTraceparent.isValid(traceparent), let flags = UInt8(traceparent.suffix(2), radix: 16) else { return nil }
        return flags & 1 == 1
    }

    /// FNV-1a over the jid's bytes, then a 64-bit finaliser (splitmix64's) so that close jids spread over the range.
    static func hash(_ jid: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in jid.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        h = (h ^ (h >> 30)) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ (h >> 27)) &* 0x94d0_49bb_1331_11eb
        return h ^ (h >> 31)
    }
}
