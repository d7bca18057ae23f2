import Testing
@testable import ConveyorCore

@Suite struct JSONValueTests {
    @Test func roundTripKeepsOrderAndNumberText() throws {
        let text = #"{"class":"noop","args":[{"a":[],"b":{}}],"created_at":1763780000.123,"big":12345678901234567890,"e":1e-7}"#
        let value = try JSONValue(parsing: text)
        #expect(value.text == text)
        #expect(value["class"]?.stringValue == "noop")
        #expect(value["created_at"]?.doubleValue == 1763780000.123)
    }

    @Test func escapesAndUnicode() throws {
        let value = try JSONValue(parsing: #""a\"b\\c\n\u00e9\ud83d\ude00\u0001""#)
        #expect(value.stringValue == "a\"b\\c\né😀\u{01}")
        #expect(try JSONValue(parsing: value.text) == value)
        #expect(value.text == #""a\"b\\c\né😀\u0001""#)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\"}", "01", "1.", "-", "\"\u{01}\"", "tru", "[1] x", "\"\\ud800\"", "{\"a\":1,}", "nul",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func rejectsInvalidUTF8AndDeepNesting() {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0x22]) }
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: deep) }
    }

    @Test func objectEditing() {
        var o = JSONObject([("a", 1), ("b", 2)])
        o["a"] = "x"
        o["c"] = true
        o["b"] = nil
        #expect(JSONValue.object(o).text == #"{"a":"x","c":true}"#)
        #expect(JSONValue(3.0).text == "3")
        #expect(JSONValue(0.5).text == "0.5")
        #expect(JSONValue.number("3.0").intValue == 3)
    }
}
