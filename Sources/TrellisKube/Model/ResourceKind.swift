/// Where a kind of object lives in the API: its group, version, plural resource name and
/// whether it is namespaced. Enough to build every URL the client uses.
public struct ResourceKind: Sendable, Hashable, CustomStringConvertible {
    /// `""` for the core group (`/api/v1`), e.g. `networking.k8s.io` otherwise (`/apis/...`).
    public let group: String
    public let version: String
    /// The URL segment: `pods`, `networkpolicies`.
    public let plural: String
    /// The `kind` in JSON: `Pod`, `NetworkPolicy`.
    public let kind: String
    public let namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    /// `v1`, `networking.k8s.io/v1`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// `/api/v1` or `/apis/GROUP/VERSION`.
    public var groupVersionPath: String { group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)" }

    /// The collection: `/api/v1/namespaces/NS/pods`, or every namespace's (`/api/v1/pods`)
    /// when `namespace` is nil; cluster-scoped kinds ignore `namespace`.
    public func collectionPath(namespace: String?) -> String {
        if namespaced, let namespace {
            return "\(groupVersionPath)/namespaces/\(PathSegment.escape(namespace))/\(plural)"
        }
        return "\(groupVersionPath)/\(plural)"
    }

    /// One object, or one of its subresources (`status`).
    public func objectPath(name: String, namespace: String?, subresource: String? = nil) -> String {
        var path = "\(collectionPath(namespace: namespace))/\(PathSegment.escape(name))"
        if let subresource { path += "/\(PathSegment.escape(subresource))" }
        return path
    }

    /// `pods`, `networkpolicies.networking.k8s.io`: how kubectl names a resource in messages.
    public var description: String { group.isEmpty ? plural : "\(plural).\(group)" }
}

/// Percent-encoding for one URL path segment (names are DNS labels in practice, but a typo
/// must not turn into another path).
enum PathSegment {
    static func escape(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                 UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: ":"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
