import ConveyorCore
import Foundation
import Redis
import SidekiqQueue
import Testing
import Web

@Suite(.enabled(if: TestEnv.hasServers, "needs REDIS_URL and DATABASE_URL"))
struct DashboardSecurityTests {
    @Test func everyResponseCarriesTheSecurityHeadersAndASameSiteCSRFCookie() async throws {
        let s = try Session()
        for path in ["/", "/queues", "/busy", "/dead", "/retry", "/scheduled", "/lookup", "/actions", "/nope", "/assets/app.css"] {
            let r = await s.get(path)
            let csp = try #require(r.header("Content-Security-Policy"), "\(path)")
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"))
            #expect(r.header("X-Frame-Options") == "DENY")
            #expect(r.header("Referrer-Policy") == "same-origin")
            #expect(r.header("X-Content-Type-Options") == "nosniff")
        }
        let first = await (try Session()).get("/")
        let cookie = try #require(first.headers.first { $0.0 == "Set-Cookie" && $0.1.hasPrefix("conveyor_csrf=") }?.1)
        #expect(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"))
        #expect(await s.get("/nope").status == 404)
    }

    @Test func aPostWithoutTheRightTokenOrFromAnotherOriginChangesNothing() async throws {
        let s = try Session()
        let queue = TestEnv.unique("q")
        #expect(await s.post("/queues/\(queue)/pause", [], csrf: "").status == 403)
        #expect(await s.post("/queues/\(queue)/pause", [], csrf: String(repeating: "0", count: 64)).status == 403)
        #expect(await s.post("/queues/\(queue)/pause", [], ["Origin": "http://evil.example"]).status == 403)
        #expect(await s.post("/queues/\(queue)/pause", [], ["Sec-Fetch-Site": "cross-site"]).status == 403)
        // No cookie at all (a form on another site cannot send the SameSite=Strict cookie).
        let bare = await s.dashboard.respond(
            WebRequest(
                method: "POST", path: "/queues/\(queue)/pause", form: "csrf=abc",
                headers: ["Host": "127.0.0.1:9292", "Origin": "http://127.0.0.1:9292", "Content-Type": "application/x-www-form-urlencoded"]))
        #expect(bare.status == 403)
        #expect(try s.redis.command("SISMEMBER", s.keys.pausedQueues, queue).check().int == 0)
        // The same request with the token goes through, and is a redirect (POST, then GET).
        let ok = await s.post("/queues/\(queue)/pause", [], ["Origin": "http://127.0.0.1:9292"])
        #expect(ok.status == 303)
        #expect(try s.redis.command("SISMEMBER", s.keys.pausedQueues, queue).check().int == 1)
    }

    @Test func readOnlyShowsNoButtonsAndRefusesEveryPost() async throws {
        let s = try Session(readOnly: true)
        try s.addToSet(s.keys.dead, jid: "0123456789abcdef01234567")
        let page = await s.get("/dead")
        #expect(page.status == 200)
        #expect(page.text.contains("0123456789abcdef01234567"))
        #expect(!page.text.contains("<button name=\"one\""))
        #expect(page.text.contains("Read-only"))
        let r = await s.post("/dead/delete", [("one", "0123456789abcdef01234567")])
        #expect(r.status == 403)
        #expect(try s.redis.command("ZCARD", s.keys.dead).check().int == 1)
    }

    @Test func aPasswordIsCheckedOnEveryRequest() async throws {
        let s = try Session(password: "correct horse")
        #expect(await s.get("/").status == 401)
        #expect(await s.get("/").header("WWW-Authenticate")?.hasPrefix("Basic") == true)
        s.user = ("ops", "correct hors")
        #expect(await s.get("/").status == 401)
        s.user = ("ops", "correct horse!")
        #expect(await s.get("/").status == 401)
        s.user = ("ops", "correct horse")
        #expect(await s.get("/").status == 200)
    }

    @Test func anyAddressButLoopbackNeedsAPassword() throws {
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292"]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": ":9292"]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "10.1.2.3:80", "CONVEYOR_WEB_PASSWORD": ""]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "nonsense"]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_READ_ONLY": "maybe"]) }
        // Off loopback: at least 12 characters, not all spaces.
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292", "CONVEYOR_WEB_PASSWORD": "x"]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292", "CONVEYOR_WEB_PASSWORD": " "]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292", "CONVEYOR_WEB_PASSWORD": "12345678901"]) }
        #expect(throws: JobFailure.self) {
            try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292", "CONVEYOR_WEB_PASSWORD": String(repeating: " ", count: 20)])
        }
        let open = try WebConfiguration(environment: ["CONVEYOR_WEB_ADDR": "0.0.0.0:9292", "CONVEYOR_WEB_PASSWORD": "123456789012"])
        #expect(open.host == "0.0.0.0" && open.password == "123456789012")
        // On loopback a short password is the operator's business.
        #expect(try WebConfiguration(environment: ["CONVEYOR_WEB_PASSWORD": "x"]).password == "x")
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_HOSTS": "evil.example/path"]) }
        #expect(throws: JobFailure.self) { try WebConfiguration(environment: ["CONVEYOR_WEB_HOSTS": "a.example:99999"]) }
        #expect(try WebConfiguration(environment: ["CONVEYOR_WEB_HOSTS": " Dash.Example ,10.0.0.5:9292,[::1]:80"]).allowedHosts == [
            .init(host: "dash.example"), .init(host: "10.0.0.5", port: 9292), .init(host: "::1", port: 80),
        ])
        let local = try WebConfiguration(environment: [:])
        #expect(local.host == "127.0.0.1" && local.port == 9292 && local.password == nil && !local.readOnly)
    }

    @Test func jobArgumentsAndErrorsAreShownAsTextNeverAsMarkup() async throws {
        let s = try Session()
        let jid = "5c819f1a2b3c4d5e6f708192"
        try s.addToSet(
            s.keys.dead, jid: jid, jobClass: "<b>evil</b>", queue: "q\"><script>alert(3)</script>",
            args: #"["<script>alert(1)</script>", {"x": "</pre><img src=x onerror=alert(2)>"}]"#,
            error: "Boom<script>: <img src=x onerror=alert(4)> & \"quotes\"")
        _ = try s.redis.command("LPUSH", s.keys.queue("default"), #"{"class":"noop","args":["<script>alert(5)</script>"],"jid":"aaaaaaaaaaaaaaaaaaaaaaaa","queue":"default"}"#).check()
        _ = try s.redis.command("SADD", s.keys.queues, "default").check()
        for path in ["/dead", "/dead/job?jid=\(jid)", "/lookup?q=\(jid)", "/queues/default"] {
            let page = await s.get(path).text
            #expect(!page.contains("<script>alert"), "\(path)")
            #expect(!page.contains("<img src=x"), "\(path)")
            #expect(!page.contains("<b>evil"), "\(path)")
            #expect(page.contains("&lt;script&gt;alert"), "\(path)")
        }
        #expect(await s.get("/dead/job?jid=\(jid)").text.contains("&lt;img src=x onerror=alert(2)&gt;"))
    }

    @Test func formValuesDecodeLikeABrowserSendsThem() {
        let f = FormCoding.parse("a=1+2&b=%3Cx%3E&b=&c&d=%zz&e=%E2%9C%93")
        #expect(f["a"] == ["1 2"])
        #expect(f["b"] == ["<x>", ""])
        #expect(f["c"] == [""])
        #expect(f["d"] == ["%zz"])
        #expect(f["e"] == ["✓"])
        #expect(WebRequest(method: "get", path: "/queues/a%2Fb").segments == ["queues", "a/b"])
    }
}
