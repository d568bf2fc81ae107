/// The operation a runtime asks for, from `CNI_COMMAND`.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case gc = "GC"
    case status = "STATUS"
    case version = "VERSION"

    /// The first spec version that defines the command; nil when every supported version has
    /// it. A config in an older version must not get a command its runtime could not have
    /// meant, so the plugin refuses it (code 1) instead of guessing.
    public var minimumVersion: String? {
        switch self {
        case .add, .del, .version: nil
        case .check: "0.4.0"
        case .gc, .status: "1.1.0"
        }
    }

    /// Whether a config written in `cniVersion` may carry this command.
    public func isAvailable(in cniVersion: String) -> Bool {
        minimumVersion.map { CNIVersionInfo.atLeast(cniVersion, $0) } ?? true
    }
}
