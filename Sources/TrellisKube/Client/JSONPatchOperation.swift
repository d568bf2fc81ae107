import Foundation

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
