import ConveyorCore
import Curl
import Foundation
import Testing

/// The libcurl wrapper against the same local server.
@Suite struct CurlEasyTests {
    @Test func reusedHandleKeepsTheConnectionAndSendsTheBody() throws {
        let server = try FakeLLMServer()
        let easy = try CurlEasy()
        let body = Array(#"{"provider":"openai","mode":"ok","count":-1,"delay":0}"#.utf8)
        let first = try easy.perform(HTTPRequest(method: "POST", url: server.base + "/control/fault", body: body))
        #expect(first.status == 200 && first.bodyText == #"{"ok": true}"#)
        #expect(first.header("content-type") == "application/json")
        #expect(first.timing.newConnections == 1)
        let second = try easy.perform(HTTPRequest(url: server.base + "/control/stats"))
        #expect(second.status == 200)
        #expect(second.timing.newConnections == 0, "the kept-alive connection is reused")
    }

    @Test func deadlineAbortsAHangingTransfer() throws {
        let server = try FakeLLMServer()
        try server.fault("openai", "hang")
        let easy = try CurlEasy()
        let started = ContinuousClock.now
        var request = HTTPRequest(method: "POST", url: server.base + "/openai/v1/chat/completions", body: Array("{}".utf8))
        request.transfer = CurlTransferOptions(timeout: .seconds(30), deadline: .now + .milliseconds(300))
        let error = #expect(throws: CurlError.self) { try easy.perform(request) }
        #expect(error?.isTimeout == true)
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func totalTimeoutIsCurlsOwnError() throws {
        let server = try FakeLLMServer()
        try server.fault("anthropic", "hang")
        let easy = try CurlEasy()
        var request = HTTPRequest(method: "POST", url: server.base + "/anthropic/v1/messages", body: Array("{}".utf8))
        request.transfer = CurlTransferOptions(timeout: .milliseconds(300))
        let error = #expect(throws: CurlError.self) { try easy.perform(request) }
        #expect(error?.kind == .timeout && error?.code == 28)
        #expect(error?.message.contains("timed out") == true)
    }

    @Test func refusedConnectionCarriesCurlsMessage() throws {
        // Port 9 (discard) is not listening on loopback here.
        let easy = try CurlEasy()
        let error = #expect(throws: CurlError.self) { try easy.perform(HTTPRequest(url: "http://user:secret@127.0.0.1:9/x?key=1")) }
        #expect(error?.kind == .connect)
        #expect(error?.url == "http://127.0.0.1:9/x")
        #expect(error?.description.contains("secret") == false)
    }

    @Test func headerInjectionIsRejected() throws {
        let easy = try CurlEasy()
        let error = #expect(throws: CurlError.self) {
            try easy.perform(HTTPRequest(url: "http://127.0.0.1:9/", headers: [HTTPHeader("X-A", "b\r\nX-Evil: 1")]))
        }
        #expect(error?.kind == .invalidRequest)
    }

    @Test func responseSizeIsCapped() throws {
        let server = try FakeLLMServer()
        var request = HTTPRequest(url: server.base + "/control/stats")
        request.transfer = CurlTransferOptions(maxResponseBytes: 10)
        let error = #expect(throws: CurlError.self) { try CurlEasy().perform(request) }
        #expect(error?.kind == .responseTooLarge)
    }

    @Test func stringListsAndGenericOptions() throws {
        let list = CurlStringList(["<a@example.net>", "<b@example.net>"])
        #expect(list.count == 2)
        let easy = try CurlEasy()
        try easy.setOption(.mailRecipients, list: list)
        try easy.setOption(.mailFrom, "<bounces@example.com>")
        try easy.setOption(.useSSL, CurlUseSSL.all.rawValue)
        easy.reset()
    }
}
