import Testing
import TrellisJSON

@Suite struct JSONParserTests {
    private func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func parsesEveryKindOfValue() throws {
        let v = try parse(#"{"s":"a\"b\\c\n\u00e9\ud83d\ude00","n":-12.5e1,"i":1500,"t":true,"f":false,"z":null,"a":[1,[],{}]}"#)
        #expect(v["s"] == .string("a\"b\\c\né😀"))
        #expect(v["n"] == .number(-125))
        #expect(v["i"] == .number(1500))
        #expect(v["t"] == .bool(true) && v["f"] == .bool(false) && v["z"] == .null)
        #expect(v["a"] == .array([.number(1), .array([]), JSONValue.object([JSONMember]())]))
    }

    @Test func keepsMemberOrderAndLastDuplicateWins() throws {
        let v = try parse(#"{"b":1,"a":2,"b":3}"#)
        guard case .object(let members) = v else { Issue.record("not an object"); return }
        #expect(members.map(\.key) == ["b", "a"])
        #expect(v["b"] == .number(3))
    }

    @Test(arguments: [
        ("{\"a\":1,}", "expected a member name in quotes", 1, 8),
        ("{\"a\" 1}", "expected ':'", 1, 6),
        ("[1 2]", "expected ',' or ']'", 1, 4),
        ("{\n  \"a\": tru }", "invalid literal", 2, 8),
        ("\"abc", "unterminated string", 1, 5),
        ("01", "cannot start with 0", 1, 3),
        ("{} x", "unexpected text after", 1, 4),
        ("\"\\x\"", "invalid escape", 1, 3),
        ("\"\\ud800\"", "unpaired surrogate", 1, 8),
        ("", "unexpected end of input", 1, 1),
    ])
    func reportsWhereAndWhy(input: String, reason: String, line: Int, column: Int) {
        do {
            _ = try parse(input)
            Issue.record("accepted \(input)")
        } catch {
            #expect(error.reason.contains(reason), "\(error)")
            #expect(error.line == line && error.column == column, "\(error)")
        }
    }

    @Test func boundsNesting() {
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(throws: JSONSyntaxError.self) { try parse(deep) }
    }

    @Test func writesWhatItReads() throws {
        let text = #"{"cniVersion":"1.1.0","mtu":1500,"ok":true,"x":null,"ips":["10.0.0.2/24"],"s":"tab\tquote\""}"#
        let v = try parse(text)
        #expect(v.serialized == text)
        #expect(try parse(v.serialized) == v)
    }
}
