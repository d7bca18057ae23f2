import Digest
import Foundation
import Redis
import Testing

@testable import BullMQQueue
import ConveyorCore

@Suite struct BullMQScriptTests {
    @Test func pinnedScriptsLoadFromThePythonPackageAndMatchRedisSHA() async throws {
        let dir = try BullMQScripts.discover()
        #expect(dir.hasSuffix("bullmq/commands"))
        let scripts = try BullMQScripts(directory: dir)
        let peer = try BullMQPeer()
        defer { peer.redis.stop() }
        // Redis names each script by its SHA-1: SCRIPT LOAD must return the pinned one.
        try await peer.redis.run { connection in try scripts.load(on: connection) }
        for name in BullMQScripts.Name.allCases {
            let exists = try await peer.command("SCRIPT", "EXISTS", scripts.sha(name))
            #expect(exists.array?.first?.int == 1, "\(name.rawValue)")
        }
    }

    @Test func aChangedMissingOrHugeScriptIsRefused() throws {
        let dir = try BullMQScripts.discover()
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("bullmq-scripts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: copy) }
        for name in BullMQScripts.Name.allCases {
            try FileManager.default.copyItem(atPath: dir + "/\(name.rawValue).lua", toPath: copy.path + "/\(name.rawValue).lua")
        }
        _ = try BullMQScripts(directory: copy.path)
        // One byte more in moveToFinished: refused, naming the file and both digests.
        let target = copy.appendingPathComponent("moveToFinished-14.lua")
        var bytes = try Data(contentsOf: target)
        bytes.append(0x20)
        try bytes.write(to: target)
        #expect {
            try BullMQScripts(directory: copy.path)
        } throws: { error in
            "\(error)".contains("moveToFinished-14.lua has SHA-1") && "\(error)".contains("69666e69dd5621df59067a03de685e55a486560d")
        }
        try FileManager.default.removeItem(at: target)
        #expect { try BullMQScripts(directory: copy.path) } throws: { "\($0)".contains("moveToFinished-14.lua is missing") }
        try Data(count: BullMQScripts.maxScriptBytes + 1).write(to: target)
        #expect { try BullMQScripts(directory: copy.path) } throws: { "\($0)".contains("larger than") }
        #expect { try BullMQScripts(directory: "/nonexistent") } throws: { "\($0)".contains("pip install bullmq==3.4.4") }
    }

    @Test func sha1MatchesKnownVectors() {
        #expect(SHA1Digest.hash([]).hex == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1Digest.hash(Array("abc".utf8)).hex == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(SHA1Digest.hash(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)).hex == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// The encoder's bytes are msgpack-python's (`packb(..., use_bin_type=True)`) for the shapes BullMQ sends, extremes included.
    @Test func messagePackMatchesPython() throws {
        let cases: [(MessagePack, String)] = [
            (.map([("token", .string("abc:1")), ("lockDuration", .int(30000)), ("name", .string("w"))]),
             #"{"token":"abc:1","lockDuration":30000,"name":"w"}"#),
            (.array([.int(0), .int(127), .int(128), .int(255), .int(256), .int(65535), .int(65536), .int(4294967295), .int(4294967296)]),
             "[0,127,128,255,256,65535,65536,4294967295,4294967296]"),
            (.array([.int(-1), .int(-32), .int(-33), .int(-128), .int(-129), .int(-32768), .int(-32769), .int(-2147483648), .int(-2147483649)]),
             "[-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]"),
            (.array([.int(Int.max), .int(Int.min), .bool(true), .bool(false), .null]), "[9223372036854775807,-9223372036854775808,true,false,null]"),
            (.string(String(repeating: "é", count: 20)), "\"" + String(repeating: "é", count: 20) + "\""),
            (.string(String(repeating: "x", count: 70000)), "\"" + String(repeating: "x", count: 70000) + "\""),
            (.string(""), "\"\""),
            (.array([.double(0.5), .double(-1e308), .double(1e-300)]), "[0.5,-1e308,1e-300]"),
            (MessagePack(["a": 1, "b": 0.25, "c": [true, nil, "x"], "d": ["e": -3]]), #"{"a":1,"b":0.25,"c":[true,null,"x"],"d":{"e":-3}}"#),
            (.array((0..<20).map { .int($0) }), "[" + (0..<20).map(String.init).joined(separator: ",") + "]"),
            (.map([("keepJobs", .map([("age", .int(3600)), ("count", .int(-1))]))]), #"{"keepJobs":{"age":3600,"count":-1}}"#),
        ]
        for (value, json) in cases {
            let expected = try BullMQPeer.run(["packb", json])
            let actual = value.encoded().map { String(format: "%02x", $0) }.joined()
            #expect(actual == expected, "\(json.prefix(60))")
        }
    }
}
