import TrellisCore
import TrellisJSON
import TrellisNet

/// Typed, path-aware access to the members of one object of a `JSONValue` tree: the one field
/// reader of the handshake's messages, the agent's config and local API, and manifests. Every
/// error names the field by its path.
public struct TreeReader: Sendable {
    public let value: JSONValue
    /// Where this object sits in its document; "" for the top.
    public let path: String

    public init(_ value: JSONValue, path: String = "") throws(FieldError) {
        guard case .object = value else { throw FieldError(path, "expected a mapping, got \(value.brief)") }
        self.value = value
        self.path = path
    }

    public func path(of key: String) -> String { path.isEmpty ? key : path + "." + key }

    public var keys: [String] {
        guard case .object(let members) = value else { return [] }
        return members.map(\.key)
    }

    /// The member, nil when absent or null (YAML's `key:` with nothing after it).
    public func member(_ key: String) -> JSONValue? {
        guard let v = value[key], v != .null else { return nil }
        return v
    }

    public func string(_ key: String) throws(FieldError) -> String? {
        guard let v = member(key) else { return nil }
        guard case .string(let s) = v else { throw FieldError(path(of: key), "expected a string, got \(v.brief)") }
        return s
    }

    public func requiredString(_ key: String) throws(FieldError) -> String {
        guard let s = try string(key), !s.isEmpty else { throw FieldError(path(of: key), "missing") }
        return s
    }

    public func bool(_ key: String) throws(FieldError) -> Bool? {
        guard let v = member(key) else { return nil }
        guard case .bool(let b) = v else { throw FieldError(path(of: key), "expected true or false, got \(v.brief)") }
        return b
    }

    public func integer(_ key: String) throws(FieldError) -> Int? {
        guard let v = member(key) else { return nil }
        guard case .number(let n) = v, n.rounded() == n, abs(n) < 9e15 else {
            throw FieldError(path(of: key), "expected an integer, got \(v.brief)")
        }
        return Int(n)
    }

    public func object(_ key: String) throws(FieldError) -> TreeReader? {
        guard let v = member(key) else { return nil }
        return try TreeReader(v, path: path(of: key))
    }

    public func array(_ key: String) throws(FieldError) -> [JSONValue]? {
        guard let v = member(key) else { return nil }
        guard case .array(let items) = v else { throw FieldError(path(of: key), "expected a list, got \(v.brief)") }
        return items
    }

    public func objects(_ key: String) throws(FieldError) -> [TreeReader] {
        guard let items = try array(key) else { return [] }
        var out: [TreeReader] = []
        for (i, item) in items.enumerated() { out.append(try TreeReader(item, path: "\(path(of: key))[\(i)]")) }
        return out
    }

    public func strings(_ key: String) throws(FieldError) -> [String] {
        guard let items = try array(key) else { return [] }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                throw FieldError("\(path(of: key))[\(i)]", "expected a string, got \(item.brief)")
            }
            out.append(s)
        }
        return out
    }

    /// A mapping of strings to strings (labels, annotations).
    public func stringMap(_ key: String) throws(FieldError) -> [String: String] {
        guard let obj = try object(key), case .object(let members) = obj.value else { return [:] }
        var out: [String: String] = [:]
        for m in members {
            switch m.value {
            case .string(let s): out[m.key] = s
            case .null: out[m.key] = ""
            default: throw FieldError(obj.path(of: m.key), "expected a string, got \(m.value.brief)")
            }
        }
        return out
    }

    /// A CIDR (`10.244.1.0/24`); with `networkOnly`, host bits must be clear.
    public func network(_ key: String, networkOnly: Bool = true) throws(FieldError) -> IPNetwork? {
        guard let s = try string(key) else { return nil }
        return try Self.network(s, path: path(of: key), networkOnly: networkOnly)
    }

    public static func network(_ text: String, path: String, networkOnly: Bool = true) throws(FieldError) -> IPNetwork {
        guard let n = IPNetwork(text) else {
            throw FieldError(path, "\"\(text)\" is not a CIDR (e.g. 10.244.1.0/24)")
        }
        if networkOnly, n.network != n {
            throw FieldError(path, "\"\(text)\" has host bits set; the network is \(n.network)")
        }
        return n
    }

    public func address(_ key: String) throws(FieldError) -> IPAddress? {
        guard let s = try string(key) else { return nil }
        return try Self.address(s, path: path(of: key))
    }

    public static func address(_ text: String, path: String) throws(FieldError) -> IPAddress {
        guard let a = IPAddress(text) else { throw FieldError(path, "\"\(text)\" is not an IPv4 or IPv6 address") }
        return a
    }

    /// A MAC address member (aa:bb:cc:dd:ee:ff), required.
    public func mac(_ key: String) throws(FieldError) -> MACAddress {
        let text = try requiredString(key)
        guard let m = MACAddress(text) else {
            throw FieldError(path(of: key), "\"\(text)\" is not a MAC address (aa:bb:cc:dd:ee:ff)")
        }
        return m
    }
}
