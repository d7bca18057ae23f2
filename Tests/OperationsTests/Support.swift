import Foundation
import Postgres
import Redis

/// The test servers from the environment (scripts/test.sh) and per-test names.
enum TestEnv {
    static var databaseURL: String? { ProcessInfo.processInfo.environment["DATABASE_URL"] }
    static var redisURL: String? { ProcessInfo.processInfo.environment["REDIS_URL"] }
    static var binary: String? { ProcessInfo.processInfo.environment["CONVEYOR_BIN"] }
    static var hasServers: Bool { databaseURL != nil && redisURL != nil }

    static func unique(_ base: String) -> String { "\(base)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    static func redis() throws -> RedisConnection { try RedisConnection(RedisEndpoint(url: redisURL!)) }

    /// Runs the built `conveyor` binary and returns its exit code, stdout and stderr.
    static func conveyor(_ arguments: [String], environment extra: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary!)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes to the end before waiting, so a large output cannot block the child.
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// Runs a command found on PATH with `input` on its stdin; its exit code, stdout and stderr.
    static func command(_ arguments: [String], input: [UInt8] = []) throws -> (code: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        nonisolated(unsafe) var errData = Data()
        let reader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let writer = Thread {
            inp.fileHandleForWriting.write(Data(input))
            try? inp.fileHandleForWriting.close()
        }
        writer.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !reader.isFinished || !writer.isFinished { usleep(1000) }
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }
}
