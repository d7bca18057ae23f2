import Foundation

/// Which queues a worker takes jobs from, and in what order on each fetch (Sidekiq's semantics).
public struct QueueSelection: Sendable, Equatable, CustomStringConvertible {
    public enum Mode: Sendable, Equatable {
        /// Always in the given order: a lower queue runs only when every higher one is empty.
        case strict
        /// A fresh random order each fetch, each queue as likely to come first as its weight says.
        case weighted
    }

    public let queues: [(name: String, weight: Int)]
    public let mode: Mode

    /// Parses `critical,default,low` (strict) or `critical:5,default:2,low:1` (weighted).
    public init(parsing spec: String) throws(JobFailure) {
        var queues: [(String, Int)] = []
        var weighted = false
        for part in spec.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            guard pieces.count <= 2, let name = pieces.first, !name.isEmpty else {
                throw .permanent(.invalidConfiguration, "bad queue \"\(part)\" in \"\(spec)\"")
            }
            var weight = 1
            if pieces.count == 2 {
                guard let w = Int(pieces[1]), Self.weightRange.contains(w) else {
                    throw .permanent(
                        .invalidConfiguration,
                        "queue weight must be an integer in \(Self.weightRange.lowerBound)...\(Self.weightRange.upperBound) in \"\(part)\"")
                }
                weight = w
                weighted = true
            }
            guard !queues.contains(where: { $0.0 == name }) else {
                throw .permanent(.invalidConfiguration, "queue \(name) is listed twice in \"\(spec)\"")
            }
            queues.append((String(name), weight))
        }
        guard !queues.isEmpty else { throw .permanent(.invalidConfiguration, "no queues in \"\(spec)\"") }
        self.queues = queues.map { (name: $0.0, weight: $0.1) }
        self.mode = weighted ? .weighted : .strict
    }

    /// A queue's weight: bounded so the weights of any number of queues add up without overflowing.
    public static let weightRange = 1...1_000_000

    public var names: [String] { queues.map(\.name) }

    /// The order to try the queues in for one fetch.
    public func order<G: RandomNumberGenerator>(using generator: inout G) -> [String] {
        guard mode == .weighted, queues.count > 1 else { return names }
        var remaining = queues
        var order: [String] = []
        while !remaining.isEmpty {
            let total = remaining.reduce(0) { $0 + $1.weight }
            var pick = Int.random(in: 0..<total, using: &generator)
            let index = remaining.firstIndex { q in
                if pick < q.weight { return true }
                pick -= q.weight
                return false
            }!
            order.append(remaining.remove(at: index).name)
        }
        return order
    }

    public func order() -> [String] {
        var g = SystemRandomNumberGenerator()
        return order(using: &g)
    }

    public var description: String {
        queues.map { mode == .weighted ? "\($0.name):\($0.weight)" : $0.name }.joined(separator: ",")
    }

    public static func == (lhs: QueueSelection, rhs: QueueSelection) -> Bool {
        lhs.mode == rhs.mode && lhs.queues.elementsEqual(rhs.queues) { $0.name == $1.name && $0.weight == $1.weight }
    }
}
