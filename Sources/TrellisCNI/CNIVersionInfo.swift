
/// The spec versions this plugin speaks, and the answer to the VERSION command.
public struct CNIVersionInfo: Sendable, Equatable {
    /// Oldest first. 0.3.1 is the oldest that runtimes still send and whose result shape
    /// (interfaces, ips with an interface index) we can fill in faithfully.
    public static let supported = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    public static let latest = "1.1.0"

    public let supportedVersions: [String]

    public init(supportedVersions: [String] = CNIVersionInfo.supported) {
        self.supportedVersions = supportedVersions
    }

    public static func isSupported(_ version: String) -> Bool { supported.contains(version) }

    /// `{"cniVersion": requested, "supportedVersions": [...]}`. The runtime names the version it
    /// wants the answer in; a runtime that sent none gets the latest.
    public func json(requested: String) -> [UInt8] {
        JSONValue.object([
            ("cniVersion", .string(requested.isEmpty ? Self.latest : requested)),
            ("supportedVersions", .strings(supportedVersions)),
        ]).data
    }

    /// True when `version` is `minimum` or newer, comparing the dotted numbers as numbers
    /// (so 0.10.0 is newer than 0.4.0). A version that is not `X.Y.Z` is never new enough:
    /// gating a command on garbage must fail closed.
    public static func atLeast(_ version: String, _ minimum: String) -> Bool {
        guard let v = numbers(version), let m = numbers(minimum) else { return false }
        return !v.lexicographicallyPrecedes(m)
    }

    private static func numbers(_ version: String) -> [Int]? {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var out: [Int] = []
        for part in parts {
            guard !part.isEmpty, part.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(part) else {
                return nil
            }
            out.append(n)
        }
        return out
    }
}
