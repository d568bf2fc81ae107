import Foundation

/// A PATCH body and its type.
///
/// - `merge` (RFC 7386): maps merge, `null` deletes, lists are replaced whole.
/// - `strategicMerge`: like merge, but lists the API marks as keyed merge by key: a Node's
///   `status.conditions` by `type`, a Pod's `status.podIPs` by `ip` and `status.conditions`
///   by `type`, containers by `name`. Built-in kinds only.
/// - `json` (RFC 6902): a list of operations on JSON pointers; `test` makes it conditional.
public struct KubePatch: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case merge, strategicMerge, json

        public var contentType: String {
            switch self {
            case .merge: "application/merge-patch+json"
            case .strategicMerge: "application/strategic-merge-patch+json"
            case .json: "application/json-patch+json"
            }
        }
    }

    public let kind: Kind
    public let body: [UInt8]

    /// A patch from JSON text.
    public init(_ kind: Kind, json: String) {
        self.kind = kind
        self.body = Array(json.utf8)
    }

    /// A merge patch from any Encodable (nil optionals are left out, so only set fields change).
    public static func merge(_ value: some Encodable) throws -> KubePatch {
        KubePatch(kind: .merge, body: try JSONCoding.encode(value))
    }

    /// A strategic merge patch from any Encodable, e.g. a `Node` with only `status.conditions`.
    public static func strategicMerge(_ value: some Encodable) throws -> KubePatch {
        KubePatch(kind: .strategicMerge, body: try JSONCoding.encode(value))
    }

    public static func json(_ operations: [JSONPatchOperation]) -> KubePatch {
        let items = operations.map(\.json).joined(separator: ",")
        return KubePatch(kind: .json, body: Array("[\(items)]".utf8))
    }

    init(kind: Kind, body: [UInt8]) {
        self.kind = kind
        self.body = body
    }
}

/// One RFC 6902 operation. Paths are JSON pointers: `/metadata/labels/app`, with `~1` for
/// `/` and `~0` for `~` inside a key (`JSONPatchOperation.escape`).
public struct JSONPatchOperation: Sendable, Hashable {
    /// The operation as JSON text.
    let json: String

    private init(op: String, path: String, from: String? = nil, valueJSON: String? = nil) {
        var text = "{\"op\":\(JSONCoding.quote(op)),\"path\":\(JSONCoding.quote(path))"
        if let from { text += ",\"from\":\(JSONCoding.quote(from))" }
        if let valueJSON { text += ",\"value\":\(valueJSON)" }
        json = text + "}"
    }

    public static func add(_ path: String, _ value: some Encodable) throws -> JSONPatchOperation {
        JSONPatchOperation(op: "add", path: path, valueJSON: String(decoding: try JSONCoding.encode(value), as: UTF8.self))
    }

    public static func replace(_ path: String, _ value: some Encodable) throws -> JSONPatchOperation {
        JSONPatchOperation(op: "replace", path: path, valueJSON: String(decoding: try JSONCoding.encode(value), as: UTF8.self))
    }

    /// Fails the whole patch (422) unless the value at `path` equals `value`.
    public static func test(_ path: String, _ value: some Encodable) throws -> JSONPatchOperation {
        JSONPatchOperation(op: "test", path: path, valueJSON: String(decoding: try JSONCoding.encode(value), as: UTF8.self))
    }

    public static func remove(_ path: String) -> JSONPatchOperation {
        JSONPatchOperation(op: "remove", path: path)
    }

    public static func move(from: String, to path: String) -> JSONPatchOperation {
        JSONPatchOperation(op: "move", path: path, from: from)
    }

    public static func copy(from: String, to path: String) -> JSONPatchOperation {
        JSONPatchOperation(op: "copy", path: path, from: from)
    }

    /// One key as a pointer segment: `kubernetes.io/role` -> `kubernetes.io~1role`.
    public static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

/// One JSON encoder configuration for every body the client sends.
enum JSONCoding {
    static func encode(_ value: some Encodable) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    static func quote(_ text: String) -> String {
        // Encoding a String cannot fail.
        String(decoding: (try? encode(text)) ?? Array("\"\"".utf8), as: UTF8.self)
    }
}
