// The client's other errors: no answer, an unexpected answer, a wrong call.

/// The request never got an answer: connection refused or reset, TLS handshake failure,
/// timeout, a watch stream cut in the middle.
public struct KubeTransportError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case connection
        case tls
        case timeout
        /// A streamed answer (a watch) ended before its end.
        case streamBroken
    }

    public let kind: Kind
    /// `GET https://127.0.0.1:6443/api/v1/pods`.
    public let request: String
    public let message: String

    public init(kind: Kind, request: String, message: String) {
        self.kind = kind
        self.request = request
        self.message = message
    }

    public var description: String {
        switch kind {
        case .tls: "\(request): TLS handshake failed: \(message)"
        case .timeout: "\(request): timed out: \(message)"
        case .connection: "\(request): cannot reach the API server: \(message)"
        case .streamBroken: "\(request): the stream broke: \(message)"
        }
    }
}

/// The server answered 2xx, but with something that is not the expected JSON.
public struct KubeDecodingError: Error, CustomStringConvertible, Sendable {
    public let request: String
    /// What was expected: `PodList`, `watch event`.
    public let expected: String
    public let message: String
    public let excerpt: String

    public var description: String { "\(request): not a valid \(expected): \(message) (\(excerpt))" }
}

/// The call itself is wrong (a namespaced kind without a namespace, an object without name).
public struct KubeRequestError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public var description: String { message }
}
