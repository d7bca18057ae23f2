import ConveyorCore
import Foundation
import Testing

@Suite struct ErrorClassTests {
    @Test func aFailureRecordsTheConstantsRawValue() {
        let failure = JobFailure.permanent(.invalidArguments, "args[0] is not an object")
        #expect(failure.errorClass == "InvalidArguments")
        #expect(failure == JobFailure.permanent("InvalidArguments", "args[0] is not an object"))
        #expect(JobFailure.transient(.workerLost, "gone").errorClass == ErrorClass.workerLost.rawValue)
        #expect("\(ErrorClass.jobTimeout)" == "JobTimeout")
        #expect(failure.with(message: "jid=1 \(failure.message)") == .permanent(.invalidArguments, "jid=1 args[0] is not an object"))
    }

    /// Each family's `ErrorClass` constants (`static let x: ErrorClass = "X"` in Sources) appear in the table of
    /// docs/jobs.md, and the table names nothing that is not declared; no two constants share a value.
    @Test func everyDeclaredErrorClassIsDocumented() throws {
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        var declared: [String] = []
        let sources = package.appendingPathComponent("Sources").path
        for case let file as String in FileManager.default.enumerator(atPath: sources)! where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: sources + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") {
                guard line.contains(": ErrorClass = \""), let open = line.firstIndex(of: "\"") else { continue }
                declared.append(String(line[line.index(after: open)...].prefix { $0 != "\"" }))
            }
        }
        #expect(declared.count >= 50)
        #expect(Set(declared).count == declared.count, "an error class is declared twice")
        let docs = try String(contentsOf: package.appendingPathComponent("docs/jobs.md"), encoding: .utf8)
        let section = try #require(docs.components(separatedBy: "\n## Error classes\n").last)
        let documented = section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            return String(line.dropFirst(3).prefix { $0 != "`" })
        }.filter { $0 != "error_class" }
        #expect(Set(declared).subtracting(documented).sorted() == [], "declared but missing from docs/jobs.md")
        #expect(Set(documented).subtracting(declared).sorted() == [], "documented but not declared")
    }
}
