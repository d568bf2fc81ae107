/// The naming rules the spec (and the kernel) put on identifiers the plugin receives.
///
/// Each check returns the reason a name is bad, phrased to follow the kind of name
/// ("an interface name " + reason), or nil when the name is fine; callers add which field or
/// variable held it, since only they know.
enum NameRules {
    /// IFNAMSIZ is 16 including the terminating NUL.
    static let maxInterfaceNameBytes = 15

    /// Linux interface names: what `dev_valid_name` in the kernel accepts, as libcni checks it.
    static func interfaceNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "cannot be empty" }
        if name.utf8.count > maxInterfaceNameBytes {
            return "is at most \(maxInterfaceNameBytes) bytes, this one has \(name.utf8.count)"
        }
        if name == "." || name == ".." { return "cannot be \".\" or \"..\"" }
        if name.contains("/") { return "cannot contain '/'" }
        if name.contains(":") { return "cannot contain ':'" }
        if name.unicodeScalars.contains(where: { $0.properties.isWhitespace }) {
            return "cannot contain whitespace"
        }
        return nil
    }

    /// Container IDs and network names share one rule in the spec: an ASCII letter or digit,
    /// then letters, digits, '_', '.' or '-'. Both end up in file names (IPAM state), so the
    /// rule also keeps them from escaping a folder.
    static func identifierProblem(_ id: String) -> String? {
        guard let first = id.unicodeScalars.first else { return "cannot be empty" }
        if !isASCIIAlphanumeric(first) { return "must start with a letter or digit" }
        if let bad = id.unicodeScalars.first(where: { !isASCIIAlphanumeric($0) && !"_.-".unicodeScalars.contains($0) }) {
            return "may contain only letters, digits, '_', '.' and '-' (found \(quoteScalar(bad)))"
        }
        return nil
    }

    private static func isASCIIAlphanumeric(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
    }

    private static func quoteScalar(_ s: Unicode.Scalar) -> String {
        s.properties.isWhitespace || s.value < 0x20 ? "U+\(String(s.value, radix: 16, uppercase: true))" : "'\(s)'"
    }
}
