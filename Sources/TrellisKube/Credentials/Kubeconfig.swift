import Foundation
import Yams

extension KubeClientConfig {
    /// A kubeconfig file (kubectl's): the named context, or `current-context`.
    ///
    /// Understands what kind and kubeadm write: `server`, `certificate-authority(-data)`,
    /// `insecure-skip-tls-verify`; users with `client-certificate(-data)` and
    /// `client-key(-data)`, `token` or `tokenFile`. Relative paths are relative to the
    /// kubeconfig's folder. `exec` and `auth-provider` plugins, basic auth and proxies are not
    /// supported and fail with a message naming them.
    public static func kubeconfig(path: String, context: String? = nil) throws(KubeConfigError) -> KubeClientConfig {
        let text = String(decoding: try FileReading.bytes(path, context: "kubeconfig", field: nil), as: UTF8.self)
        let directory = (path as NSString).deletingLastPathComponent
        return try kubeconfig(yaml: text, path: path, directory: directory.isEmpty ? "." : directory, context: context)
    }

    /// The same from text; `path` names it in messages and `directory` anchors relative paths.
    public static func kubeconfig(yaml: String, path: String, directory: String, context wanted: String? = nil)
        throws(KubeConfigError) -> KubeClientConfig {
        func fail(_ field: String?, _ message: String) -> KubeConfigError {
            KubeConfigError(context: "kubeconfig", file: path, field: field, message: message)
        }
        let file: KubeconfigFile
        do {
            file = try YAMLDecoder().decode(KubeconfigFile.self, from: yaml)
        } catch let error as DecodingError {
            throw fail(error.fieldPath, error.summary)
        } catch {
            throw fail(nil, "not a kubeconfig: \(error)")
        }
        guard let contextName = wanted ?? file.currentContext.flatMap({ $0.isEmpty ? nil : $0 }) else {
            throw fail("current-context", "not set, and no context was asked for")
        }
        guard let context = file.contexts?.first(where: { $0.name == contextName })?.context else {
            let known = (file.contexts ?? []).map(\.name).joined(separator: ", ")
            throw fail("contexts", "no context named \(contextName) (there are: \(known.isEmpty ? "none" : known))")
        }
        let contextField = "contexts[\(contextName)].context"
        guard let clusterName = context.cluster, !clusterName.isEmpty else {
            throw fail("\(contextField).cluster", "not set")
        }
        guard let cluster = file.clusters?.first(where: { $0.name == clusterName })?.cluster else {
            throw fail("\(contextField).cluster", "names cluster \(clusterName), which is not in clusters")
        }
        let clusterField = "clusters[\(clusterName)].cluster"
        guard let server = cluster.server, !server.isEmpty else {
            throw fail("\(clusterField).server", "not set")
        }
        guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw fail("\(clusterField).server", "not an http(s) URL: \(server)")
        }
        if cluster.proxyURL != nil {
            throw fail("\(clusterField).proxy-url", "proxies are not supported")
        }

        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : directory + "/" + p }
        func material(data: String?, file: String?, field: String) throws(KubeConfigError) -> [UInt8]? {
            if let data {
                let cleaned = data.filter { !$0.isWhitespace }
                guard let decoded = Data(base64Encoded: cleaned) else {
                    throw fail("\(field)-data", "not valid base64")
                }
                return Array(decoded)
            }
            if let file {
                return try FileReading.bytes(resolve(file), context: "kubeconfig \(path)", field: field)
            }
            return nil
        }

        var config = KubeClientConfig(server: server, origin: "kubeconfig \(path) (context \(contextName))")
        config.namespace = context.namespace
        config.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
        config.certificateAuthorityPEM = try material(data: cluster.certificateAuthorityData, file: cluster.certificateAuthority,
                                                      field: "\(clusterField).certificate-authority")

        if let userName = context.user, !userName.isEmpty {
            guard let user = file.users?.first(where: { $0.name == userName })?.user else {
                throw fail("\(contextField).user", "names user \(userName), which is not in users")
            }
            let userField = "users[\(userName)].user"
            if user.exec != nil {
                throw fail("\(userField).exec", "exec credential plugins are not supported; use a token or a client certificate")
            }
            if user.authProvider != nil {
                throw fail("\(userField).auth-provider", "auth providers are not supported; use a token or a client certificate")
            }
            if user.username != nil || user.password != nil {
                throw fail("\(userField).username", "basic authentication is not supported")
            }
            config.clientCertificatePEM = try material(data: user.clientCertificateData, file: user.clientCertificate,
                                                       field: "\(userField).client-certificate")
            config.clientKeyPEM = try material(data: user.clientKeyData, file: user.clientKey,
                                               field: "\(userField).client-key")
            if (config.clientCertificatePEM == nil) != (config.clientKeyPEM == nil) {
                let missing = config.clientKeyPEM == nil ? "client-key" : "client-certificate"
                throw fail("\(userField).\(missing)", "missing: a client certificate needs both the certificate and its key")
            }
            if let token = user.token, !token.isEmpty {
                config.bearer = .token(token)
            } else if let tokenFile = user.tokenFile, !tokenFile.isEmpty {
                let resolved = resolve(tokenFile)
                _ = try FileReading.text(resolved, context: "kubeconfig \(path)", field: "\(userField).tokenFile")
                config.bearer = .tokenFile(resolved)
            }
        }
        return config
    }
}

// The file's shape, as far as it is read. Unknown keys are ignored.
struct KubeconfigFile: Decodable {
    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }

    struct NamedCluster: Decodable {
        var name: String
        var cluster: Cluster
    }

    struct Cluster: Decodable {
        var server: String?
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?
        var proxyURL: String?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            case proxyURL = "proxy-url"
        }
    }

    struct NamedUser: Decodable {
        var name: String
        var user: User
    }

    struct User: Decodable {
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var token: String?
        var tokenFile: String?
        var username: String?
        var password: String?
        var exec: Present?
        var authProvider: Present?

        enum CodingKeys: String, CodingKey {
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
            case token, tokenFile, username, password, exec
            case authProvider = "auth-provider"
        }
    }

    struct NamedContext: Decodable {
        var name: String
        var context: Context
    }

    struct Context: Decodable {
        var cluster: String?
        var user: String?
        var namespace: String?
    }

    /// A section whose presence is all that matters.
    struct Present: Decodable {
        init(from decoder: any Decoder) throws {}
    }
}

extension DecodingError {
    /// `clusters[0].cluster.server`.
    var fieldPath: String? {
        let path: [any CodingKey]
        switch self {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): path = c.codingPath
        case .keyNotFound(let key, let c): path = c.codingPath + [key]
        @unknown default: return nil
        }
        if path.isEmpty { return nil }
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text
    }

    var summary: String {
        switch self {
        case .typeMismatch(let type, let c): "expected \(type): \(c.debugDescription)"
        case .valueNotFound(let type, let c): "missing \(type): \(c.debugDescription)"
        case .keyNotFound: "required but missing"
        case .dataCorrupted(let c): c.debugDescription
        @unknown default: "\(self)"
        }
    }
}
