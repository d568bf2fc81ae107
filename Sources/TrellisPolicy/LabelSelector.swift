/// Kubernetes labels: key -> value.
public typealias Labels = [String: String]

/// A `metav1.LabelSelector`: every `matchLabels` pair and every requirement must hold (AND).
/// The empty selector (`{}`) selects everything.
///
/// Where a selector is optional in the API (a peer's `podSelector`, `namespaceSelector`), the
/// model keeps it as an `Optional`: nil means "not given", which is not the same as `{}`.
public struct LabelSelector: Sendable, Hashable, CustomStringConvertible {
    public var matchLabels: Labels
    public var matchExpressions: [LabelSelectorRequirement]

    public init(matchLabels: Labels = [:], matchExpressions: [LabelSelectorRequirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// `{}`: selects every object.
    public static let everything = LabelSelector()

    public var selectsEverything: Bool { matchLabels.isEmpty && matchExpressions.isEmpty }

    public func matches(_ labels: Labels) -> Bool {
        for (k, v) in matchLabels where labels[k] != v { return false }
        for r in matchExpressions where !r.matches(labels) { return false }
        return true
    }

    /// The selector in `kubectl` syntax: `app=web,tier in (a,b),!legacy`; `{}` selects all.
    public var description: String {
        let parts = matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            + matchExpressions.map(\.description)
        return parts.isEmpty ? "{}" : parts.joined(separator: ",")
    }
}

public struct LabelSelectorRequirement: Sendable, Hashable, CustomStringConvertible {
    public enum Operator: String, Sendable, Hashable, CaseIterable {
        case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist"
    }

    public var key: String
    public var `operator`: Operator
    /// Non-empty for In and NotIn, empty for Exists and DoesNotExist (the parser checks it).
    public var values: [String]

    public init(key: String, _ op: Operator, _ values: [String] = []) {
        self.key = key
        self.operator = op
        self.values = values
    }

    /// Upstream semantics: `NotIn` and `DoesNotExist` also hold when the key is absent.
    public func matches(_ labels: Labels) -> Bool {
        switch self.operator {
        case .in: labels[key].map { values.contains($0) } ?? false
        case .notIn: labels[key].map { !values.contains($0) } ?? true
        case .exists: labels[key] != nil
        case .doesNotExist: labels[key] == nil
        }
    }

    public var description: String {
        switch self.operator {
        case .in: "\(key) in (\(values.joined(separator: ",")))"
        case .notIn: "\(key) notin (\(values.joined(separator: ",")))"
        case .exists: key
        case .doesNotExist: "!\(key)"
        }
    }
}

// MARK: - Syntax of names (apimachinery's validation, for error messages at the source)

enum K8sSyntax {
    /// `[prefix/]name`: name 1-63 of alphanumerics, '-', '_', '.', starting and ending with an
    /// alphanumeric; the optional prefix a DNS subdomain of at most 253 characters.
    static func labelKeyProblem(_ key: String) -> String? {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "\"\(key)\" is not a label key (at most one '/')" }
        let name = String(parts.last!)
        if parts.count == 2 {
            let prefix = String(parts[0])
            if prefix.isEmpty || prefix.count > 253 || !isDNSSubdomain(prefix) {
                return "\"\(key)\" is not a label key (the prefix must be a DNS subdomain)"
            }
        }
        if !isQualifiedName(name) {
            return "\"\(key)\" is not a label key (name part: 1-63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
        }
        return nil
    }

    /// Empty, or up to 63 alphanumerics, '-', '_', '.', starting and ending with an alphanumeric.
    static func labelValueProblem(_ value: String) -> String? {
        if value.isEmpty || isQualifiedName(value) { return nil }
        return "\"\(value)\" is not a label value (at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)"
    }

    static func isQualifiedName(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard !u.isEmpty, u.count <= 63, isAlnum(u.first!), isAlnum(u.last!) else { return false }
        return u.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    static func isDNSSubdomain(_ s: String) -> Bool {
        s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            let u = Array(label.utf8)
            guard !u.isEmpty, u.count <= 63 else { return false }
            let lowerAlnum: (UInt8) -> Bool = { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
            return lowerAlnum(u.first!) && lowerAlnum(u.last!) && u.allSatisfy { lowerAlnum($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// IANA service name (a named container port): 1-15 lower-case alphanumerics and '-', at
    /// least one letter, no '-' at either end, no "--".
    static func portNameProblem(_ s: String) -> String? {
        let u = Array(s.utf8)
        let dash = UInt8(ascii: "-")
        if u.isEmpty || u.count > 15 { return "\"\(s)\" is not a port name (1 to 15 characters)" }
        if !u.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == dash }) {
            return "\"\(s)\" is not a port name (lower-case letters, digits and '-' only)"
        }
        if !u.contains(where: { $0 >= 97 && $0 <= 122 }) {
            return "\"\(s)\" is not a port name (it must contain at least one letter)"
        }
        if u.first == dash || u.last == dash || s.contains("--") {
            return "\"\(s)\" is not a port name (no '-' at either end, no \"--\")"
        }
        return nil
    }

    private static func isAlnum(_ c: UInt8) -> Bool {
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57)
    }
}
