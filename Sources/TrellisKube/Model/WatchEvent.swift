/// One line of a watch stream, typed.
public enum WatchEvent<Object: KubeResource>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// The server has sent every event up to this version (only with allowWatchBookmarks): a
    /// watch restarted from here misses nothing.
    case bookmark(resourceVersion: String)
    /// The server ended the watch with a Status; `code` 410 means the version watched from is
    /// gone from its history and the caller must list again.
    case error(Status)

    public var object: Object? {
        switch self {
        case .added(let o), .modified(let o), .deleted(let o): o
        case .bookmark, .error: nil
        }
    }

    /// The version this event brings the watcher to (nil for errors).
    public var resourceVersion: String? {
        switch self {
        case .added(let o), .modified(let o), .deleted(let o): o.metadata.resourceVersion
        case .bookmark(let rv): rv
        case .error: nil
        }
    }

    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`, as on the wire.
    public var type: String {
        switch self {
        case .added: "ADDED"
        case .modified: "MODIFIED"
        case .deleted: "DELETED"
        case .bookmark: "BOOKMARK"
        case .error: "ERROR"
        }
    }
}

/// The wire form `{"type": ..., "object": ...}`, decoded in one pass: the type decides what
/// the object is.
struct WatchEventLine<Object: KubeResource>: Decodable {
    let event: WatchEvent<Object>

    private enum Keys: String, CodingKey { case type, object }
    private struct BookmarkObject: Decodable { let metadata: ObjectMeta }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "ADDED": event = .added(try c.decode(Object.self, forKey: .object))
        case "MODIFIED": event = .modified(try c.decode(Object.self, forKey: .object))
        case "DELETED": event = .deleted(try c.decode(Object.self, forKey: .object))
        case "BOOKMARK":
            let object = try c.decode(BookmarkObject.self, forKey: .object)
            event = .bookmark(resourceVersion: object.metadata.resourceVersion ?? "")
        case "ERROR": event = .error(try c.decode(Status.self, forKey: .object))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown watch event type \(type)")
        }
    }
}
