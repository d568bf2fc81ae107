
/// A CNI error object: what the plugin prints on stdout (and exits non-zero with) when a
/// command fails. The codes are the ones the spec reserves; a runtime acts on them (11 makes
/// it retry, 50/51 from STATUS hold pod creation), so each failure has to map to the right one.
public struct CNIError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: Int
    public let msg: String
    public let details: String?

    public init(code: Int, msg: String, details: String? = nil) {
        self.code = code
        self.msg = msg
        self.details = details
    }

    public static func incompatibleVersion(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 1, msg: msg, details: details)
    }
    public static func unsupportedField(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 2, msg: msg, details: details)
    }
    public static func unknownContainer(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 3, msg: msg, details: details)
    }
    public static func invalidEnvironment(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 4, msg: msg, details: details)
    }
    public static func ioFailure(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 5, msg: msg, details: details)
    }
    public static func decodeFailure(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 6, msg: msg, details: details)
    }
    public static func invalidConfig(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 7, msg: msg, details: details)
    }
    public static func tryAgainLater(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 11, msg: msg, details: details)
    }
    /// STATUS only: the plugin cannot set up any pod network right now.
    public static func pluginNotAvailable(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 50, msg: msg, details: details)
    }
    /// STATUS only: new pods would get a network, but without full connectivity.
    public static func limitedConnectivity(_ msg: String, details: String? = nil) -> CNIError {
        CNIError(code: 51, msg: msg, details: details)
    }

    /// The spec's error object, `{"cniVersion", "code", "msg", "details"?}`, in the version the
    /// runtime asked for (the error shape is the same in every supported version). An empty
    /// version, when the config could not even be read, becomes the latest.
    public func json(cniVersion: String) -> [UInt8] {
        JSONValue.object([
            ("cniVersion", .string(cniVersion.isEmpty ? CNIVersionInfo.latest : cniVersion)),
            ("code", .int(code)),
            ("msg", .string(msg)),
            ("details", details.map { .string($0) }),
        ]).data
    }

    public var description: String {
        "CNI error \(code): \(msg)" + (details.map { " (\($0))" } ?? "")
    }
}
