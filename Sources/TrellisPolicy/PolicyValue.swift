import TrellisJSON

/// A decoded JSON or YAML document as a tree: what the policy parser reads. The same shape as
/// `JSONValue` (which it converts to and from, and which writes it), plus what the parser needs
/// of its own: `Hashable`, `Decodable` and literals. Three easy ways to build one:
///
/// - from any `Decoder`: `PolicyValue` is `Decodable`, so
///   `try JSONDecoder().decode(PolicyValue.self, from: data)` or Yams'
///   `try YAMLDecoder().decode(PolicyValue.self, from: text)` give a tree directly;
/// - from a `JSONValue`: `PolicyValue(json)`;
/// - in code and tests, with literals: `["metadata": ["name": "deny"], "spec": ["podSelector": [:]]]`.
///
/// Objects keep their members in order (the last of repeated keys wins on lookup).
public indirect enum PolicyValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([PolicyValue])
    case object([(key: String, value: PolicyValue)])

    /// The value of `key` when this is an object holding it.
    public subscript(key: String) -> PolicyValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    /// A short description for error messages: `"abc"`, `12`, `true`, `a mapping`.
    public var brief: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
        case .string(let s): "\"\(s)\""
        case .array: "a list"
        case .object: "a mapping"
        }
    }

    public static func == (a: PolicyValue, b: PolicyValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    public func hash(into h: inout Hasher) {
        switch self {
        case .null: h.combine(0)
        case .bool(let b): h.combine(1); h.combine(b)
        case .number(let n): h.combine(2); h.combine(n)
        case .string(let s): h.combine(3); h.combine(s)
        case .array(let items): h.combine(4); h.combine(items)
        case .object(let members):
            h.combine(5)
            for m in members { h.combine(m.key); h.combine(m.value) }
        }
    }
}

extension PolicyValue: Decodable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    public init(from decoder: any Decoder) throws {
        if let keyed = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [(key: String, value: PolicyValue)] = []
            for key in keyed.allKeys {
                members.append((key.stringValue, try keyed.decode(PolicyValue.self, forKey: key)))
            }
            self = .object(members)
            return
        }
        if var list = try? decoder.unkeyedContainer() {
            var items: [PolicyValue] = []
            while !list.isAtEnd { items.append(try list.decode(PolicyValue.self)) }
            self = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let i = try? single.decode(Int64.self) { self = .number(Double(i)) }
        else if let d = try? single.decode(Double.self) { self = .number(d) }
        else { self = .string(try single.decode(String.self)) }
    }
}

extension PolicyValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: PolicyValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, PolicyValue)...) {
        self = .object(elements.map { (key: $0.0, value: $0.1) })
    }
}

extension PolicyValue {
    /// The same tree from a `JSONValue` (the cases correspond one to one).
    public init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let n): self = .number(n)
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map(PolicyValue.init))
        case .object(let members): self = .object(members.map { (key: $0.key, value: PolicyValue($0.value)) })
        }
    }
}

extension JSONValue {
    /// The same tree as a `JSONValue`, to write it.
    public init(_ value: PolicyValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let n): self = .number(n)
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let members): self = .object(members.map { JSONMember(key: $0.key, value: JSONValue($0.value)) })
        }
    }
}
