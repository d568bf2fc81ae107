import Foundation
import Testing
@testable import TrellisKube
import TrellisTestSupport

// Kubeconfig files as kind and kubeadm write them, in-cluster credentials under a temporary
// root, and the token file that rotates under a running client.
struct KubeCredentialsTests {
    static let caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

    func kubeconfig(_ yaml: String, in dir: TempDir, context: String? = nil) throws -> KubeClientConfig {
        dir.write("config", yaml)
        return try KubeClientConfig.kubeconfig(path: dir.file("config"), context: context)
    }

    static let kindStyle = """
    apiVersion: v1
    kind: Config
    preferences: {}
    clusters:
    - cluster:
        certificate-authority-data: \(Data(caPEM.utf8).base64EncodedString())
        server: https://127.0.0.1:41235
      name: kind-kind
    - cluster:
        server: https://10.0.0.1:6443
        certificate-authority: pki/ca.crt
        insecure-skip-tls-verify: false
      name: prod
    contexts:
    - context:
        cluster: kind-kind
        user: kind-kind
      name: kind-kind
    - context:
        cluster: prod
        user: robot
        namespace: kube-system
      name: prod
    current-context: kind-kind
    users:
    - name: kind-kind
      user:
        client-certificate-data: \(Data("CERT".utf8).base64EncodedString())
        client-key-data: \(Data("KEY".utf8).base64EncodedString())
    - name: robot
      user:
        tokenFile: secrets/token
    """

    @Test func currentContextWithInlineData() async throws {
        try await withTempDir("kube") { dir in
            let config = try kubeconfig(Self.kindStyle, in: dir)
            #expect(config.server == "https://127.0.0.1:41235")
            #expect(config.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(config.clientCertificatePEM == Array("CERT".utf8))
            #expect(config.clientKeyPEM == Array("KEY".utf8))
            #expect(config.bearer == nil)
            #expect(config.namespace == nil)
            #expect(config.origin.contains("context kind-kind"))
        }
    }

    @Test func namedContextWithPathsRelativeToTheFile() async throws {
        try await withTempDir("kube") { dir in
            try FileManager.default.createDirectory(atPath: dir.file("pki"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: dir.file("secrets"), withIntermediateDirectories: true)
            dir.write("pki/ca.crt", Self.caPEM)
            dir.write("secrets/token", "abc.def\n")
            let config = try kubeconfig(Self.kindStyle, in: dir, context: "prod")
            #expect(config.server == "https://10.0.0.1:6443")
            #expect(config.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(config.bearer == .tokenFile(dir.file("secrets/token")))
            #expect(config.namespace == "kube-system")
        }
    }

    @Test func errorsNameTheFileAndTheField() async throws {
        await withTempDir("kube") { dir in
            // The CA file of the prod cluster is missing.
            dir.write("secrets-missing", "")
            let missing = #expect(throws: KubeConfigError.self) { try kubeconfig(Self.kindStyle, in: dir, context: "prod") }
            #expect(missing?.description.contains("clusters[prod].cluster.certificate-authority") == true)
            #expect(missing?.description.contains(dir.file("pki/ca.crt")) == true)

            let unknown = #expect(throws: KubeConfigError.self) { try kubeconfig(Self.kindStyle, in: dir, context: "staging") }
            #expect(unknown?.description.contains("no context named staging (there are: kind-kind, prod)") == true)

            let badBase64 = Self.kindStyle.replacingOccurrences(of: "client-key-data: \(Data("KEY".utf8).base64EncodedString())",
                                                                with: "client-key-data: '%%%'")
            let base64 = #expect(throws: KubeConfigError.self) { try kubeconfig(badBase64, in: dir) }
            #expect(base64?.description == "kubeconfig \(dir.file("config")): users[kind-kind].user.client-key-data: not valid base64")

            let exec = """
            clusters: [{name: c, cluster: {server: "https://x:6443"}}]
            users: [{name: u, user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}}}]
            contexts: [{name: x, context: {cluster: c, user: u}}]
            current-context: x
            """
            let plugin = #expect(throws: KubeConfigError.self) { try kubeconfig(exec, in: dir) }
            #expect(plugin?.field == "users[u].user.exec")

            let wrongType = "clusters: [{name: c, cluster: {server: [1, 2]}}]\ncurrent-context: x\n"
            let typed = #expect(throws: KubeConfigError.self) { try kubeconfig(wrongType, in: dir) }
            #expect(typed?.field == "clusters[0].cluster.server")

            let noContext = #expect(throws: KubeConfigError.self) { try kubeconfig("clusters: []\n", in: dir) }
            #expect(noContext?.field == "current-context")
        }
    }

    func serviceAccount(in dir: TempDir, token: String = "sa-token-1") throws {
        let sa = dir.file(KubeClientConfig.serviceAccountDirectory)
        try FileManager.default.createDirectory(atPath: sa, withIntermediateDirectories: true)
        dir.write(KubeClientConfig.serviceAccountDirectory + "/token", token)
        dir.write(KubeClientConfig.serviceAccountDirectory + "/ca.crt", Self.caPEM)
        dir.write(KubeClientConfig.serviceAccountDirectory + "/namespace", "kube-system\n")
    }

    @Test func inClusterCredentialsFromARootFolder() async throws {
        try await withTempDir("kube") { dir in
            try serviceAccount(in: dir)
            let env = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
            let config = try KubeClientConfig.inCluster(root: dir.path, environment: env)
            #expect(config.server == "https://10.96.0.1:443")
            #expect(config.certificateAuthorityPEM == Array(Self.caPEM.utf8))
            #expect(config.bearer == .tokenFile(dir.path + "/" + KubeClientConfig.serviceAccountDirectory + "/token"))
            #expect(config.namespace == "kube-system")
            let v6 = try KubeClientConfig.inCluster(root: dir.path, environment: ["KUBERNETES_SERVICE_HOST": "fd00::1",
                                                                                  "KUBERNETES_SERVICE_PORT": "6443"])
            #expect(v6.server == "https://[fd00::1]:6443")
            // Outside a pod, automatic() falls back to the kubeconfig and says which file is missing.
            let outside = #expect(throws: KubeConfigError.self) {
                try KubeClientConfig.automatic(environment: ["HOME": dir.path])
            }
            #expect(outside?.file == dir.path + "/.kube/config")
        }
    }

    @Test func inClusterErrorsNameWhatIsMissing() async throws {
        await withTempDir("kube") { dir in
            let outside = #expect(throws: KubeConfigError.self) { try KubeClientConfig.inCluster(root: dir.path, environment: [:]) }
            #expect(outside?.field == "KUBERNETES_SERVICE_HOST")
            let env = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
            let noToken = #expect(throws: KubeConfigError.self) { try KubeClientConfig.inCluster(root: dir.path, environment: env) }
            #expect(noToken?.file == dir.path + "/" + KubeClientConfig.serviceAccountDirectory + "/token")
            #expect(noToken?.message == "no such file")
        }
    }

    @Test func aRotatedTokenFileIsReadAgain() async throws {
        try await withTempDir("kube") { dir in
            dir.write("token", "first\n")
            let source = BearerTokenSource(.tokenFile(dir.file("token")), recheckInterval: .zero)
            #expect(try source.token() == "first")
            // The kubelet swaps the file (a new inode); same size on purpose.
            dir.write("token.new", "secnd\n")
            try FileManager.default.removeItem(atPath: dir.file("token"))
            try FileManager.default.moveItem(atPath: dir.file("token.new"), toPath: dir.file("token"))
            #expect(try source.token() == "secnd")

            // Within the recheck interval the cached token is used; a 401 forces a read.
            let slow = BearerTokenSource(.tokenFile(dir.file("token")), recheckInterval: .seconds(3600))
            #expect(try slow.token() == "secnd")
            dir.write("token", "third\n")
            #expect(try slow.token() == "secnd")
            #expect(try slow.reloadAfterUnauthorized())
            #expect(try slow.token() == "third")
            #expect(try slow.reloadAfterUnauthorized() == false)

            try FileManager.default.removeItem(atPath: dir.file("token"))
            let gone = #expect(throws: KubeConfigError.self) { try slow.reloadAfterUnauthorized() }
            #expect(gone?.description == "bearer token \(dir.file("token")): no such file")
        }
    }
}
