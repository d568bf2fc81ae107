import TrellisJSON

/// A file that cannot be read as YAML or JSON at all.
public struct ManifestError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// One object of a manifest file, with its kind, before anyone interprets it.
public struct ManifestObject: Sendable, Equatable {
    /// `Pod`, `NetworkPolicy`, ...: the object's own `kind`, or the one its typed list implies
    /// (the items of a `PodList` carry none).
    public var kind: String
    /// The object itself (a mapping).
    public var value: JSONValue
    /// Where it is in its file, for messages: `document 2`, `document 2: items[0]`; "" for the
    /// only object of a single-document file.
    public var location: String

    public init(kind: String, value: JSONValue, location: String) {
        self.kind = kind
        self.value = value
        self.location = location
    }

    /// `location: text`, or `text` alone for the only object of a file.
    public func located(_ text: String) -> String { ManifestFile.prefixed(location, text) }
}

/// The one reader of Kubernetes manifests, for the agent's manifests source, `trellisctl lab
/// apply` and `trellisctl policy explain -f`: what `kubectl apply -f` takes, turned into objects.
///
/// - YAML, several documents separated by `---`, comments, empty documents (skipped);
/// - JSON: one object, or a bare array of objects;
/// - JSON is YAML: JSON-style documents separated by `---` are a YAML stream, as kubectl reads
///   them (a file that starts with `{` but is not one JSON value is read as YAML);
/// - `kind: List` and typed lists (`PodList`, `NetworkPolicyList`, ... as the API returns them),
///   whose items are read as objects of their own (an item without `kind` takes the list's).
///
/// A document that is not an object, or has no kind, is a problem of the file, not an error:
/// the rest still counts, and each reader decides what a problem means.
public struct ManifestFile: Sendable, Equatable {
    public var objects: [ManifestObject] = []
    public var problems: [String] = []

    public init(parsing text: String, path: String) throws(ManifestError) {
        let documents = try Self.documents(text, path: path)
        for (i, doc) in documents.enumerated() {
            add(doc, location: documents.count > 1 ? "document \(i + 1)" : "", impliedKind: nil)
        }
    }

    /// The documents of a file: YAML values, or the items of a JSON array.
    public static func documents(_ text: String, path: String) throws(ManifestError) -> [JSONValue] {
        if looksLikeJSON(text, path: path) {
            do {
                // A JSON file may also be a bare array of objects.
                let doc = try JSONValue.parse(Array(text.utf8))
                if case .array(let items) = doc { return items }
                return [doc]
            } catch {
                // Not one JSON value: maybe JSON documents separated by `---`, which YAML reads.
                if let docs = try? YAMLTree.documents(text) { return docs }
                throw ManifestError(path: path, reason: "not valid JSON: \(error)")
            }
        }
        do { return try YAMLTree.documents(text) } catch {
            throw ManifestError(path: path, reason: "not valid YAML: \(error)")
        }
    }

    static func looksLikeJSON(_ text: String, path: String) -> Bool {
        if path.hasSuffix(".json") { return true }
        let first = text.unicodeScalars.first { !$0.properties.isWhitespace }
        return first == "{" || first == "["
    }

    static func prefixed(_ location: String, _ text: String) -> String {
        location.isEmpty ? text : "\(location): \(text)"
    }

    private mutating func add(_ doc: JSONValue, location: String, impliedKind: String?) {
        guard case .object = doc else {
            problems.append(Self.prefixed(location, "expected an object, got \(doc.brief)"))
            return
        }
        var kind = impliedKind
        if case .string(let k)? = doc["kind"], !k.isEmpty { kind = k }
        guard let kind else {
            problems.append(Self.prefixed(location, "no kind"))
            return
        }
        if kind == "List" || (kind.hasSuffix("List") && kind.count > 4) {
            let itemKind = kind == "List" ? nil : String(kind.dropLast(4))
            switch doc["items"] {
            case nil, .null?: return  // an empty list, as kubectl takes it
            case .array(let items)?:
                for (i, item) in items.enumerated() {
                    add(item, location: Self.prefixed(location, "items[\(i)]"), impliedKind: itemKind)
                }
            case let other?:
                problems.append(Self.prefixed(location, "\(kind): items is not a list, got \(other.brief)"))
            }
            return
        }
        objects.append(ManifestObject(kind: kind, value: doc, location: location))
    }
}
