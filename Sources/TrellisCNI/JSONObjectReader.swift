import TrellisNet

/// Typed access to the members of one JSON object, where every error names the member's full
/// path (`ipam.ranges[1].subnet`) and carries the code of the document being read: 7 for the
/// network config, 6 for a result we have to decode.
///
/// A member set to `null` reads as absent: Go-based runtimes marshal unset optional fields
/// that way, and "not configured" is what they mean.
struct JSONObjectReader {
    let path: String
    let errorCode: Int
    private let value: JSONValue

    init(_ value: JSONValue, path: String, errorCode: Int) throws(CNIError) {
        guard case .object = value else {
            throw CNIError(code: errorCode, msg: "\(path.isEmpty ? "document" : path): expected an object, got \(value.brief)")
        }
        self.value = value
        self.path = path
        self.errorCode = errorCode
    }

    func path(of key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ text: String) -> CNIError {
        CNIError(code: errorCode, msg: "\(path(of: key)): \(text)")
    }

    /// For a value that has the right type but breaks a rule: `bridge "br/0": <text>`.
    func invalid(_ key: String, _ value: String, _ text: String) -> CNIError {
        CNIError(code: errorCode, msg: "\(path(of: key)) \"\(value)\": \(text)")
    }

    subscript(key: String) -> JSONValue? {
        guard let v = value[key], v != .null else { return nil }
        return v
    }

    private func required<T>(_ key: String, _ read: (String) throws(CNIError) -> T?) throws(CNIError) -> T {
        guard let v = try read(key) else { throw error(key, "required, but missing") }
        return v
    }

    func string(_ key: String) throws(CNIError) -> String? {
        guard let v = self[key] else { return nil }
        guard case .string(let s) = v else { throw error(key, "expected a string, got \(v.brief)") }
        return s
    }

    func requiredString(_ key: String) throws(CNIError) -> String {
        try required(key) { (k) throws(CNIError) in try string(k) }
    }

    func int(_ key: String) throws(CNIError) -> Int? {
        guard let v = self[key] else { return nil }
        guard case .number(let n) = v, n.rounded() == n, abs(n) < 9_007_199_254_740_992 else {
            throw error(key, "expected an integer, got \(v.brief)")
        }
        return Int(n)
    }

    func array(_ key: String) throws(CNIError) -> [JSONValue]? {
        guard let v = self[key] else { return nil }
        guard case .array(let items) = v else { throw error(key, "expected an array, got \(v.brief)") }
        return items
    }

    func stringArray(_ key: String) throws(CNIError) -> [String]? {
        guard let items = try array(key) else { return nil }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                throw CNIError(code: errorCode, msg: "\(path(of: key))[\(i)]: expected a string, got \(item.brief)")
            }
            out.append(s)
        }
        return out
    }

    /// Each element of an array of objects, as a reader for `key[i]`.
    func objects(_ key: String) throws(CNIError) -> [JSONObjectReader]? {
        guard let items = try array(key) else { return nil }
        var out: [JSONObjectReader] = []
        for (i, item) in items.enumerated() {
            out.append(try JSONObjectReader(item, path: "\(path(of: key))[\(i)]", errorCode: errorCode))
        }
        return out
    }

    func object(_ key: String) throws(CNIError) -> JSONObjectReader? {
        guard let v = self[key] else { return nil }
        return try JSONObjectReader(v, path: path(of: key), errorCode: errorCode)
    }

    func requiredObject(_ key: String) throws(CNIError) -> JSONObjectReader {
        try required(key) { (k) throws(CNIError) in try object(k) }
    }

    func address(_ key: String) throws(CNIError) -> IPAddress? {
        guard let s = try string(key) else { return nil }
        guard let a = IPAddress(s) else { throw error(key, "\"\(s)\" is not an IPv4 or IPv6 address") }
        return a
    }

    /// `ADDR/LEN`, host bits kept (callers that mean a subnet mask it themselves).
    func network(_ key: String, meaning: String = "an address with a prefix length (ADDR/LEN)") throws(CNIError) -> IPNetwork? {
        guard let s = try string(key) else { return nil }
        guard let n = IPNetwork(s) else { throw error(key, "\"\(s)\" is not \(meaning)") }
        return n
    }

    func requiredNetwork(_ key: String, meaning: String = "an address with a prefix length (ADDR/LEN)") throws(CNIError) -> IPNetwork {
        try required(key) { (k) throws(CNIError) in try network(k, meaning: meaning) }
    }
}

extension JSONValue {
    /// The value as JSON, cut short: enough to recognise it in an error message.
    var brief: String {
        let text = serialized
        return text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }
}
