import TrellisJSON
import TrellisNet

/// Typed access to the members of a handshake message (one flat JSON object); every error
/// names the member, so that the plugin's log says which field the agent refused.
struct Fields {
    let value: JSONValue

    init(_ value: JSONValue) throws(FieldError) {
        guard case .object = value else { throw FieldError("", "expected a mapping, got \(value.kind)") }
        self.value = value
    }

    /// The member, nil when absent or null.
    func member(_ key: String) -> JSONValue? {
        guard let v = value[key], v != .null else { return nil }
        return v
    }

    func string(_ key: String) throws(FieldError) -> String? {
        guard let v = member(key) else { return nil }
        guard case .string(let s) = v else { throw FieldError(key, "expected a string, got \(v.kind)") }
        return s
    }

    func requiredString(_ key: String) throws(FieldError) -> String {
        guard let s = try string(key), !s.isEmpty else { throw FieldError(key, "missing") }
        return s
    }

    func bool(_ key: String) throws(FieldError) -> Bool? {
        guard let v = member(key) else { return nil }
        guard case .bool(let b) = v else { throw FieldError(key, "expected true or false, got \(v.kind)") }
        return b
    }

    func integer(_ key: String) throws(FieldError) -> Int? {
        guard let v = member(key) else { return nil }
        guard case .number(let n) = v, n.rounded() == n, abs(n) < 9e15 else {
            throw FieldError(key, "expected an integer, got \(v.kind)")
        }
        return Int(n)
    }

    func array(_ key: String) throws(FieldError) -> [JSONValue]? {
        guard let v = member(key) else { return nil }
        guard case .array(let items) = v else { throw FieldError(key, "expected a list, got \(v.kind)") }
        return items
    }

    func mac(_ key: String) throws(FieldError) -> MACAddress {
        let text = try requiredString(key)
        guard let m = MACAddress(text) else { throw FieldError(key, "\"\(text)\" is not a MAC address (aa:bb:cc:dd:ee:ff)") }
        return m
    }
}

extension JSONValue {
    /// A short description of a value for errors: `"abc"`, `12`, `true`, `a list`.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .number: serialized
        case .string(let s): "\"\(s)\""
        case .array: "a list"
        case .object: "a mapping"
        }
    }
}
