/// A problem with one field of a document, named by its path (`spec.podCIDRs[1]`, `ips[0]`):
/// the agent's config and manifests, and the handshake messages, whose errors travel back to
/// the plugin and from there to the container runtime's log.
public struct FieldError: Error, CustomStringConvertible, Sendable, Equatable {
    public let path: String
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}
