import Foundation
import Testing

/// `conveyor enqueue --unique-for` through the real binary: a held key refuses the push naming the holder (exit 5),
/// out-of-range fields are usage errors (exit 64) before Redis is touched.
@Suite(.enabled(if: TestEnv.redisURL != nil && TestEnv.binary != nil))
struct UniqueEnqueueTests {
    @Test func aHeldKeyRefusesThePushNamingTheHolder() throws {
        let ns = ["--namespace", TestEnv.unique("uniq")]
        let args = ["enqueue", "noop", "--args", #"{"b":2,"a":1}"#, "--unique-for", "60"]
        let first = try TestEnv.conveyor(args + ns)
        #expect(first.code == 0, "\(first.err)")
        let holder = first.out.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!holder.isEmpty)
        // The same arguments in another key order are the same job.
        let second = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"a":1,"b":2}"#, "--unique-for", "60"] + ns)
        #expect(second.code == 5)
        #expect(second.err.contains(holder), "\(second.err)")
        let other = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"a":2}"#, "--unique-for", "60"] + ns)
        #expect(other.code == 0, "\(other.err)")
        let keyed = try TestEnv.conveyor(["enqueue", "noop", "--unique-for", "60", "--unique-key", "order-7"] + ns)
        #expect(keyed.code == 0, "\(keyed.err)")
        let again = try TestEnv.conveyor(["enqueue", "noop", "--args", #"{"x":1}"#, "--unique-for", "60", "--unique-key", "order-7"] + ns)
        #expect(again.code == 5)
    }

    @Test func outOfRangeFieldsAreUsageErrors() throws {
        for value in ["0", "-1", "2592001", "1e400", "1e308", "1.5", "9223372036854775807", "-9223372036854775808", "99999999999999999999"] {
            let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-for=\(value)"])
            #expect(r.code == 64, "--unique-for \(value): \(r.err)")
        }
        for extra in [["--unique-key", ""], ["--unique-key", String(repeating: "k", count: 257)], ["--unique-until", "later"]] {
            let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-for", "60"] + extra)
            #expect(r.code == 64, "\(extra): \(r.err)")
        }
        let r = try TestEnv.conveyor(["enqueue", "noop", "--unique-key", "k"])
        #expect(r.code == 64)
    }
}
