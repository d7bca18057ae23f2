import ConveyorCore
import Foundation
import Testing

/// The folder of this test target (for its Python helpers) and the repository root.
let testsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let repositoryRoot = testsFolder.deletingLastPathComponent().deletingLastPathComponent()
let defaultTemplates = repositoryRoot.appendingPathComponent("templates/mail")

/// Runs `/usr/bin/python3 script args` with `input` on stdin and returns stdout.
func runPython(_ script: String, _ arguments: [String] = [], input: [UInt8] = []) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = [testsFolder.appendingPathComponent(script).path] + arguments
    let stdin = Pipe(), stdout = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    try process.run()
    try stdin.fileHandleForWriting.write(contentsOf: Data(input))
    try stdin.fileHandleForWriting.close()
    let output = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "python3 \(script) failed")
    return Array(output)
}

/// The message as Python's `email` package sees it (see parse_eml.py).
func parseWithPython(_ message: [UInt8]) throws -> JSONValue {
    try JSONValue(parsing: try runPython("parse_eml.py", input: message))
}

func temporaryFolder(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("conveyor-mail-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
