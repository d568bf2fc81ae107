import Foundation

/// Where the API server is and how to prove who we are: what `KubeClient` is built from.
///
/// Make one with `inCluster(...)` (a pod's service account), `kubeconfig(path:context:)`
/// (kubectl's file, as kind writes it) or `automatic()`; or fill the fields directly.
/// PEM material is held as bytes, read once; a bearer token from a file is re-read while
/// the client runs (see `BearerCredential.tokenFile`).
public struct KubeClientConfig: Sendable {
    /// `https://10.96.0.1:443`, `http://127.0.0.1:8080`.
    public var server: String
    /// PEM bundle of the CAs that sign the server's certificate. When set, only these are
    /// trusted (not the system roots), as kubectl does.
    public var certificateAuthorityPEM: [UInt8]?
    /// Accept any server certificate. For tests and throw-away clusters only.
    public var insecureSkipTLSVerify: Bool
    /// Client certificate authentication: PEM certificate (chain) and PEM private key.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    public var bearer: BearerCredential?
    /// The namespace the context or the service account names (the client never applies it
    /// implicitly: namespaced calls take their namespace as a parameter).
    public var namespace: String?
    /// Where this came from, for messages: `kubeconfig /root/.kube/config (context kind-kind)`.
    public var origin: String

    public init(server: String, certificateAuthorityPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
                clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil, bearer: BearerCredential? = nil,
                namespace: String? = nil, origin: String = "explicit configuration") {
        self.server = server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.bearer = bearer
        self.namespace = namespace
        self.origin = origin
    }

    /// In a pod: the service account in the pod (in-cluster) when `KUBERNETES_SERVICE_HOST` is
    /// set, else the kubeconfig named by `$KUBECONFIG` (its first entry) or `~/.kube/config`.
    public static func automatic(environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(KubeConfigError) -> KubeClientConfig {
        if environment["KUBERNETES_SERVICE_HOST"].map({ !$0.isEmpty }) == true {
            return try inCluster(environment: environment)
        }
        if let list = environment["KUBECONFIG"], let first = list.split(separator: ":").first {
            return try kubeconfig(path: String(first))
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return try kubeconfig(path: home + "/.kube/config")
    }
}

/// A bearer token, given or read from a file.
public enum BearerCredential: Sendable, Equatable {
    case token(String)
    /// Re-read while the client runs: at most every few seconds when the file's identity
    /// (inode, size, mtime) changed, and once more after a 401 before the request fails.
    /// Projected service-account tokens are rotated by the kubelet this way (hourly).
    case tokenFile(String)
}
