/// `metav1.LabelSelector`, as NetworkPolicy uses it (podSelector, namespaceSelector).
/// An empty selector (`{}`) selects everything; an absent one is a different thing, which
/// is why peers hold it as an optional.
public struct LabelSelector: Codable, Sendable, Hashable {
    public var matchLabels: [String: String]?
    public var matchExpressions: [LabelSelectorRequirement]?

    public init(matchLabels: [String: String]? = nil, matchExpressions: [LabelSelectorRequirement]? = nil) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// The query-string form (`app=web,tier in (a,b)`) for `labelSelector=` parameters.
    public var queryString: String {
        var parts = (matchLabels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        for e in matchExpressions ?? [] {
            let values = (e.values ?? []).joined(separator: ",")
            switch e.operator {
            case "In": parts.append("\(e.key) in (\(values))")
            case "NotIn": parts.append("\(e.key) notin (\(values))")
            case "Exists": parts.append(e.key)
            case "DoesNotExist": parts.append("!\(e.key)")
            default: parts.append("\(e.key) \(e.operator.lowercased()) (\(values))")
            }
        }
        return parts.joined(separator: ",")
    }
}

/// One `matchExpressions` entry: `operator` is `In`, `NotIn`, `Exists` or `DoesNotExist`.
public struct LabelSelectorRequirement: Codable, Sendable, Hashable {
    public var key: String
    public var `operator`: String
    public var values: [String]?

    public init(key: String, operator: String, values: [String]? = nil) {
        self.key = key
        self.operator = `operator`
        self.values = values
    }
}
