import Foundation

extension KubeClientConfig {
    /// The service-account folder of a pod, under `root`.
    public static let serviceAccountDirectory = "var/run/secrets/kubernetes.io/serviceaccount"

    /// A pod's own credentials: the API at `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`,
    /// the CA in `ca.crt`, the token in `token` (re-read as it rotates) and the namespace in
    /// `namespace`, from `<root>/var/run/secrets/kubernetes.io/serviceaccount/`.
    ///
    /// - Parameter root: `/` in a pod; a temporary folder in tests.
    public static func inCluster(root: String = "/",
                                 environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(KubeConfigError) -> KubeClientConfig {
        let context = "in-cluster credentials"
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeConfigError(context: context, field: "KUBERNETES_SERVICE_HOST",
                                  message: "not set: not running in a pod (use a kubeconfig instead)")
        }
        guard let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeConfigError(context: context, field: "KUBERNETES_SERVICE_PORT", message: "not set")
        }
        guard let portNumber = Int(port), (1...65535).contains(portNumber) else {
            throw KubeConfigError(context: context, field: "KUBERNETES_SERVICE_PORT", message: "not a port number: \(port)")
        }
        let dir = (root.hasSuffix("/") ? root : root + "/") + serviceAccountDirectory
        let tokenPath = dir + "/token"
        // Read once now, so that a pod without a token fails at start with the path in the message.
        _ = try FileReading.text(tokenPath, context: context, field: nil)
        let ca = try FileReading.bytes(dir + "/ca.crt", context: context, field: nil)
        let namespace = FileManager.default.contents(atPath: dir + "/namespace")
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeClientConfig(server: "https://\(hostPart):\(portNumber)", certificateAuthorityPEM: ca,
                                bearer: .tokenFile(tokenPath), namespace: namespace,
                                origin: "in-cluster service account (\(dir))")
    }
}

/// File reads whose errors name the file.
enum FileReading {
    static func bytes(_ path: String, context: String, field: String?) throws(KubeConfigError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw KubeConfigError(context: context, file: path, field: field, message: "no such file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigError(context: context, file: path, field: field, message: "cannot read the file")
        }
        return Array(data)
    }

    static func text(_ path: String, context: String, field: String?) throws(KubeConfigError) -> String {
        let text = String(decoding: try bytes(path, context: context, field: field), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty {
            throw KubeConfigError(context: context, file: path, field: field, message: "the file is empty")
        }
        return text
    }
}
