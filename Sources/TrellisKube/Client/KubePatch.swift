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
