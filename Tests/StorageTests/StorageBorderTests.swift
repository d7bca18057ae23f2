import ConveyorCore
import Foundation
import Testing

@testable import Storage

/// The storage settings and key rules with extreme values: a clean error naming the value, never a trap.
@Suite struct StorageBorderTests {
    let credentials = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"]

    @Test(arguments: ["CONVEYOR_S3_MULTIPART_MB", "CONVEYOR_S3_PART_MB", "CONVEYOR_S3_PARALLEL_PARTS"])
    func everyNumberIsInRangeOrANamedConfigurationError(name: String) {
        for value in ["inf", "-inf", "nan", "1e300", "1e400", "-1", "0", "9223372036854775807", "-9223372036854775808",
                      "18446744073709551616", "0x10", "1.5", "abc"] {
            do {
                _ = try S3Configuration(environment: credentials.merging([name: value]) { $1 })
                Issue.record("\(name)=\(value) was accepted")
            } catch {
                #expect(error.errorClass == "InvalidConfiguration" && error.message.hasPrefix("\(name)="), "\(name)=\(value): \(error.message)")
            }
        }
    }

    @Test(arguments: [
        (String(repeating: "k", count: 201), "201-byte part"),
        ("a/" + String(repeating: "é", count: 101) + "/b", "202-byte part"),
        (Array(repeating: "ab", count: 301).joined(separator: "/"), "902 bytes long"),
    ])
    func overLongKeysAreInvalidArgumentsNamingTheField(key: String, detail: String) {
        let failure = #expect(throws: JobFailure.self) { try MediaRoot.validate(key, field: "destination") }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.isPermanent == true)
        #expect(failure?.message.hasPrefix("destination ") == true && failure?.message.contains(detail) == true, "\(failure?.message ?? "")")
    }

    @Test func aKeyTooLongForTheRootsPathIsRefusedBeforeAnyFolder() throws {
        // A root near PATH_MAX: a key within the key limits still cannot be a path under it.
        let base = FileManager.default.temporaryDirectory.path + "/conveyor-storage-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        var deep = base
        while deep.utf8.count < 3400 { deep += "/" + String(repeating: "r", count: 200) }
        let root = try MediaRoot(deep)
        let key = Array(repeating: String(repeating: "k", count: 150), count: 5).joined(separator: "/")
        let failure = #expect(throws: JobFailure.self) { try root.destination(key, field: "output") }
        #expect(failure?.errorClass == "InvalidArguments" && failure?.message.contains("PATH_MAX") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).isEmpty)
    }
}
