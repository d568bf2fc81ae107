/// Credentials or connection settings that cannot be used, naming the file and the field:
/// `kubeconfig /home/u/.kube/config: users[kind-kind].user.client-key-data: not valid base64`.
public struct KubeConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// `kubeconfig`, `in-cluster credentials`, `bearer token`, `TLS settings`.
    public var context: String
    /// The file the problem is in (or that could not be read).
    public var file: String?
    /// The field inside it, dotted (`clusters[kind-kind].cluster.server`).
    public var field: String?
    public var message: String

    public init(context: String, file: String? = nil, field: String? = nil, message: String) {
        self.context = context
        self.file = file
        self.field = field
        self.message = message
    }

    public var description: String {
        var text = context
        if let file { text += " \(file)" }
        if let field { text += ": \(field)" }
        return text + ": " + message
    }
}
