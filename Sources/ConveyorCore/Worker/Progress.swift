import Foundation
import Synchronization

/// Where a running job's progress goes: the queue backend's per-job hash (`conveyor:job:<jid>` with `progress`,
/// `detail`, `updated_at`, and `status` once the job's outcome is decided), written at most once a second, the
/// latest value always written last. A handler reports through `JobContext.progress(_:detail:)`.
public final class JobProgressReporter: Sendable {
    /// Writes `fields` into the job's hash and sets it to expire after `expireSeconds`.
    public typealias Write = @Sendable (_ fields: [(String, String)], _ expireSeconds: Int) async -> Void

    /// At most one write per interval.
    public static let interval: Duration = .seconds(1)
    /// How long the hash lives after a write while the job runs, and after its outcome.
    public static let runningTTL = 86_400
    public static let finishedTTL = 3_600
    /// A detail longer than this (as JSON) is replaced by a note saying so.
    public static let maxDetailBytes = 4_096

    private struct State {
        var pending: (percent: Double, detail: String)?
        var lastWrite: ContinuousClock.Instant?
        var flushScheduled = false
        var wroteAny = false
        var finished = false
        var tail: Task<Void, Never>?
    }

    private let write: Write
    private let state = Mutex(State())

    public init(write: @escaping Write) {
        self.write = write
    }

    /// Records `percent` (clamped to 0...100; NaN ignored) and `detail`; written now, or at the end of the current
    /// second with whatever was reported last.
    public func report(percent: Double, detail: JSONObject) {
        guard !percent.isNaN else { return }
        let clamped = min(100, max(0, percent))
        var text = String(decoding: detail.bytes, as: UTF8.self)
        if text.utf8.count > Self.maxDetailBytes {
            text = "{\"error\":\"detail over \(Self.maxDetailBytes) bytes left out\"}"
        }
        let delay: Duration? = state.withLock { s in
            guard !s.finished else { return nil }
            s.pending = (clamped, text)
            guard !s.flushScheduled else { return nil }
            s.flushScheduled = true
            guard let last = s.lastWrite else { return .zero }
            return max(.zero, last + Self.interval - .now)
        }
        guard let delay else { return }
        Task {
            if delay > .zero { try? await Task.sleep(for: delay) }
            self.flush()
        }
    }

    /// The job's outcome is decided: the last reported value and `status` are written, and the hash expires
    /// `finishedTTL` later. Nothing is written for a job that never reported.
    public func finish(status: String) {
        let fields: [(String, String)]? = state.withLock { s in
            guard !s.finished else { return nil }
            s.finished = true
            guard s.wroteAny || s.pending != nil else { return nil }
            var fields = Self.fields(s.pending)
            s.pending = nil
            fields.append(("status", status))
            return fields
        }
        guard let fields else { return }
        enqueue(fields, ttl: Self.finishedTTL)
    }

    private func flush() {
        let fields: [(String, String)]? = state.withLock { s in
            s.flushScheduled = false
            guard !s.finished, let pending = s.pending else { return nil }
            s.pending = nil
            s.lastWrite = .now
            s.wroteAny = true
            return Self.fields(pending)
        }
        guard let fields else { return }
        enqueue(fields + [("status", "running")], ttl: Self.runningTTL)
    }

    /// Writes in order: each write waits for the one before it.
    private func enqueue(_ fields: [(String, String)], ttl: Int) {
        let write = write
        state.withLock { s in
            let previous = s.tail
            s.tail = Task {
                await previous?.value
                await write(fields, ttl)
            }
        }
    }

    private static func fields(_ pending: (percent: Double, detail: String)?) -> [(String, String)] {
        var fields: [(String, String)] = [("updated_at", String(format: "%.3f", JobTime.now()))]
        if let pending {
            fields.append(("progress", String(format: "%.1f", pending.percent)))
            fields.append(("detail", pending.detail))
        }
        return fields
    }
}

extension JobContext {
    /// Reports how far the job is: `percent` in 0...100 and a small JSON `detail` (at most 4 KiB), written to the
    /// job's hash (`conveyor:job:<jid>`) at most once a second. Free to call often; does nothing outside a worker.
    public func progress(_ percent: Double, detail: JSONObject = JSONObject()) {
        guard let progressReporter, !percent.isNaN else { return }
        let span = progressSpan
        let within = min(100, max(0, percent))
        var detail = detail
        if let step = span.step, detail["step"] == nil { detail["step"] = .string(step) }
        progressReporter.report(percent: span.from + (span.to - span.from) * within / 100, detail: detail)
    }

    /// This job as one step of a longer one: its `progress(0...100)` fills `from...to` of the job's bar, and its
    /// detail names `step` (`media.ingest` runs probe, transcode and poster through such contexts).
    public func progressStep(_ step: String, from: Double, to: Double) -> JobContext {
        var context = self
        let lower = min(100, max(0, from.isNaN ? 0 : from))
        let upper = min(100, max(lower, to.isNaN ? 100 : to))
        // Nested steps narrow the outer span.
        let outer = progressSpan
        context.progressSpan = (
            outer.from + (outer.to - outer.from) * lower / 100, outer.from + (outer.to - outer.from) * upper / 100, step
        )
        return context
    }
}
