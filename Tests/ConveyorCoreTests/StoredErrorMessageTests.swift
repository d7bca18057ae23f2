import Testing

@testable import ConveyorCore

/// What the API reads in `error_message`: no jid (a column of its own) and no server paths (the log keeps them).
@Suite struct StoredErrorMessageTests {
    @Test(arguments: [
        ("video.transcode jid=abc123: output and poster must differ from source uploads/a.mp4", "video.transcode: output and poster must differ from source uploads/a.mp4"),
        ("llm.summarize jid=abc123 post 7: body is empty", "llm.summarize post 7: body is empty"),
        ("cannot move output into place: rename /srv/media/out/.a.mp4.tmp-1 /srv/media/out/a.mp4: No such file", "cannot move output into place: rename …/.a.mp4.tmp-1 …/a.mp4: No such file"),
        ("mail template x has no files in /etc/conveyor/templates/mail (CONVEYOR_MAIL_TEMPLATES)", "mail template x has no files in …/mail (CONVEYOR_MAIL_TEMPLATES)"),
        ("cannot open \"/var/lib/conveyor/media/uploads/x.jpg\".", "cannot open \"…/x.jpg\"."),
        ("GET https://api.example/v1/x failed: 503", "GET https://api.example/v1/x failed: 503"),
        ("ratio 1/2 and /tmp are kept", "ratio 1/2 and /tmp are kept"),
        ("jid=other stays: only this job's is taken out", "jid=other stays: only this job's is taken out"),
    ])
    func cleans(message: String, stored: String) {
        #expect(StoredErrorMessage.clean(message, jid: "abc123") == stored)
    }

    @Test func hugeAndOddMessagesStayBounded() {
        let huge = String(repeating: "/a/b ", count: 100_000)
        let cleaned = StoredErrorMessage.clean(huge, jid: "")
        #expect(cleaned.utf8.count <= huge.utf8.count + 200_000)
        #expect(!cleaned.contains("/a/b"))
        #expect(StoredErrorMessage.clean("", jid: "x").isEmpty)
        #expect(StoredErrorMessage.clean("//", jid: "") == "//")
    }
}
