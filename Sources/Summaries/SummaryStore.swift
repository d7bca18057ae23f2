public import ConveyorCore

/// Where finished summaries are kept by post id (PostgreSQL in production).
public protocol SummaryStore: Sendable {
    /// Saves `result` for its post. A degraded summary never replaces a non-degraded one; any provider
    /// summary replaces a degraded one (the upgrade path).
    func save(_ result: SummaryResult) async throws
    func summary(postID: String) async throws -> SummaryResult?
}

/// A store in memory, for tests and for running without a database.
public final class InMemorySummaryStore: SummaryStore, @unchecked Sendable {
    private let lock = NSLock()
    private var rows: [String: SummaryResult] = [:]

    public init() {}

    public func save(_ result: SummaryResult) async throws {
        lock.withLock {
            if result.degraded, let existing = rows[result.postID], !existing.degraded { return }
            rows[result.postID] = result
        }
    }

    public func summary(postID: String) async throws -> SummaryResult? {
        lock.withLock { rows[postID] }
    }
}

import Foundation
