import Foundation
import Testing
@testable import TrellisKube
import TrellisTestSupport

// TLS with a private CA, client certificates and rotating bearer tokens, against the stand-in
// with certificates made by the openssl command line.
struct KubeSecurityTests {
    func bytes(_ path: String) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test func tlsWithAPrivateCAWorksAndAWrongCAFailsClearly() async throws {
        let tls = try TLSMaterial.shared()
        try await withStandIn(StandInOptions(tls: tls)) { standin in
            let good = KubeClientConfig(server: standin.url, certificateAuthorityPEM: try bytes(tls.caCert), origin: "test config")
            try await withKubeClient(good) { client in
                _ = try await client.create(Node(metadata: ObjectMeta(name: "node-1")))
                #expect(try await client.list(Node.self).items.map(\.metadata.name) == ["node-1"])
            }
            let wrong = KubeClientConfig(server: standin.url, certificateAuthorityPEM: try bytes(tls.otherCACert), origin: "test config")
            try await withKubeClient(wrong) { client in
                let failure = await #expect(throws: KubeTransportError.self) { try await client.list(Node.self) }
                #expect(failure?.kind == .tls)
                #expect(failure?.description == "GET \(standin.url)/api/v1/nodes: TLS handshake failed: "
                    + "the server's certificate is not signed by the CA of test config (CERTIFICATE_VERIFY_FAILED)")
            }
            let insecure = KubeClientConfig(server: standin.url, insecureSkipTLSVerify: true)
            try await withKubeClient(insecure) { client in
                let nodes = try await client.list(Node.self).items
                #expect(nodes.count == 1)
            }
        }
    }

    @Test func inClusterCredentialsReachTheServer() async throws {
        let tls = try TLSMaterial.shared()
        try await withStandIn(StandInOptions(tls: tls, tokens: ["sa-token"])) { standin in
            try await withTempDir("kube") { root in
                let sa = KubeClientConfig.serviceAccountDirectory
                try FileManager.default.createDirectory(atPath: root.file(sa), withIntermediateDirectories: true)
                root.write(sa + "/token", "sa-token")
                try FileManager.default.copyItem(atPath: tls.caCert, toPath: root.file(sa + "/ca.crt"))
                root.write(sa + "/namespace", "kube-system")
                let config = try KubeClientConfig.inCluster(root: root.path, environment: [
                    "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": String(standin.port),
                ])
                try await withKubeClient(config) { client in
                    let node = try await client.create(Node(metadata: ObjectMeta(name: "node-1")))
                    #expect(node.metadata.uid != nil)
                }
            }
        }
    }

    @Test func badPEMIsAConfigurationErrorNamingTheField() throws {
        let config = KubeClientConfig(server: "https://127.0.0.1:1", certificateAuthorityPEM: Array("not a certificate".utf8),
                                      origin: "kubeconfig /x (context y)")
        let error = #expect(throws: KubeConfigError.self) { _ = try KubeClient(config: config) }
        #expect(error?.description.hasPrefix("TLS settings of kubeconfig /x (context y): certificate-authority:") == true)
    }

    @Test func clientCertificatesFromAKindStyleKubeconfigAuthenticate() async throws {
        let tls = try TLSMaterial.shared()
        try await withStandIn(StandInOptions(tls: tls, clientCertificates: true)) { standin in
            try await withTempDir("kube") { dir in
                func data(_ path: String) throws -> String { try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString() }
                dir.write("config", """
                apiVersion: v1
                kind: Config
                clusters:
                - name: standin
                  cluster:
                    server: \(standin.url)
                    certificate-authority-data: \(try data(tls.caCert))
                users:
                - name: node
                  user:
                    client-certificate-data: \(try data(tls.clientCert))
                    client-key-data: \(try data(tls.clientKey))
                contexts:
                - name: standin
                  context: {cluster: standin, user: node}
                current-context: standin
                """)
                let config = try KubeClientConfig.kubeconfig(path: dir.file("config"))
                try await withKubeClient(config) { client in
                    let namespaces = try await client.list(Namespace.self).items
                    #expect(namespaces.isEmpty)
                }
                var anonymous = config
                anonymous.clientCertificatePEM = nil
                anonymous.clientKeyPEM = nil
                try await withKubeClient(anonymous) { client in
                    let refused = await #expect(throws: KubeAPIError.self) { try await client.list(Namespace.self) }
                    #expect(refused?.isUnauthorized == true && refused?.reason == "Unauthorized")
                }
            }
        }
    }

    @Test func aRotatedTokenKeepsWorking() async throws {
        try await withStandIn(StandInOptions(tokens: ["token-a"])) { standin in
            try await withTempDir("kube") { dir in
                dir.write("token", "token-a\n")
                let config = KubeClientConfig(server: standin.url, bearer: .tokenFile(dir.file("token")))
                // A long recheck interval: only the retry after a 401 can pick up the new token.
                try await withKubeClient(config, tokenRecheckInterval: .seconds(3600)) { client in
                    #expect(try await client.list(Node.self).items.isEmpty)

                    // Both sides rotate: the server trusts only the new token, the kubelet
                    // swaps the client's file.
                    standin.dir.write("tokens.new", "token-b\n")
                    try FileManager.default.removeItem(atPath: standin.tokensFile)
                    try FileManager.default.moveItem(atPath: standin.dir.file("tokens.new"), toPath: standin.tokensFile)
                    dir.write("token.new", "token-b\n")
                    try FileManager.default.removeItem(atPath: dir.file("token"))
                    try FileManager.default.moveItem(atPath: dir.file("token.new"), toPath: dir.file("token"))

                    #expect(try await client.list(Node.self).items.isEmpty)
                    let codes = try await standin.requests().filter { $0.verb == "list" }.map(\.code)
                    #expect(codes == [200, 401, 200])

                    // A token the server does not know, and no newer one in the file: 401 stays.
                    standin.dir.write("tokens", "token-c\n")
                    let refused = await #expect(throws: KubeAPIError.self) { try await client.list(Node.self) }
                    #expect(refused?.isUnauthorized == true)
                }
            }
            // A fixed token that is wrong from the start.
            try await withKubeClient(KubeClientConfig(server: standin.url, bearer: .token("nope"))) { client in
                let refused = await #expect(throws: KubeAPIError.self) { try await client.list(Node.self) }
                #expect(refused?.description == "GET /api/v1/nodes: 401 Unauthorized: Unauthorized")
            }
        }
    }
}
