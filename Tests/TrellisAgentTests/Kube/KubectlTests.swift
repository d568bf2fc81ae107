import Foundation
import Testing
@testable import TrellisKube
import TrellisTestSupport

/// The real kubectl (v1.32) against the stand-in: proof that the stand-in speaks the API as
/// the real server does, as far as these resources go.
struct KubectlTests {
    static let kubectl: String? = FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl")
        ? "/usr/bin/kubectl" : HostTools.onPath("kubectl")

    static let pod = """
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      namespace: shop
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - name: http
          containerPort: 80
    """

    static func policy(port: Int) -> String {
        """
        apiVersion: networking.k8s.io/v1
        kind: NetworkPolicy
        metadata:
          name: web-from-frontend
          namespace: shop
        spec:
          podSelector:
            matchLabels: {app: web}
          policyTypes: [Ingress]
          ingress:
          - from:
            - podSelector:
                matchLabels: {tier: frontend}
            - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
            ports:
            - {protocol: TCP, port: http}
            - {protocol: TCP, port: \(port)}
        """
    }

    @Test(.enabled(if: kubectl != nil, "kubectl is neither /usr/bin/kubectl nor on PATH"))
    func kubectlCreatesLabelsGetsAppliesAndDeletes() async throws {
        let kubectl = try #require(Self.kubectl)
        // TLS: kubectl sends credentials only to https servers.
        let tls = try TLSMaterial.shared()
        try await withStandIn(StandInOptions(tls: tls, tokens: ["kubectl-token"])) { standin in
            try await withTempDir("kubectl") { dir in
                try FileManager.default.copyItem(atPath: tls.caCert, toPath: dir.file("ca.crt"))
                dir.write("config", """
                apiVersion: v1
                kind: Config
                clusters: [{name: standin, cluster: {server: "\(standin.url)", certificate-authority: ca.crt}}]
                users: [{name: tester, user: {token: kubectl-token}}]
                contexts: [{name: standin, context: {cluster: standin, user: tester, namespace: shop}}]
                current-context: standin
                """)
                dir.write("pod.yaml", Self.pod)
                dir.write("policy.yaml", Self.policy(port: 8080))
                let env = ["HOME": dir.path, "KUBECONFIG": dir.file("config"), "PATH": "/usr/bin:/bin"]
                func run(_ args: String...) throws -> String {
                    let result = try runCommand([kubectl] + args, environment: env)
                    #expect(result.status == 0, "kubectl \(args.joined(separator: " ")): \(result.stderr)")
                    return result.stdout
                }

                #expect(try run("create", "namespace", "shop") == "namespace/shop created\n")
                #expect(try run("create", "-f", dir.file("pod.yaml")) == "pod/web created\n")
                #expect(try run("label", "pod", "web", "tier=frontend") == "pod/web labeled\n")
                #expect(try run("annotate", "pod", "web", "trellis.dev/note=hello") == "pod/web annotated\n")
                let json = try run("get", "pod", "web", "-o", "json")
                let pod = try JSONDecoder().decode(Pod.self, from: Data(json.utf8))
                #expect(pod.metadata.labels == ["app": "web", "tier": "frontend"])
                #expect(pod.metadata.annotations?["trellis.dev/note"] == "hello")
                #expect(pod.spec?.containers.first?.ports?.first == ContainerPort(name: "http", containerPort: 80))
                let table = try run("get", "pods")
                #expect(table.hasPrefix("NAME") && table.contains("web"))

                #expect(try run("apply", "-f", dir.file("policy.yaml")) == "networkpolicy.networking.k8s.io/web-from-frontend created\n")
                dir.write("policy.yaml", Self.policy(port: 9090))
                #expect(try run("apply", "-f", dir.file("policy.yaml")) == "networkpolicy.networking.k8s.io/web-from-frontend configured\n")

                try await withKubeClient(standin.adminConfig()) { client in
                    let policy = try await client.get(NetworkPolicy.self, name: "web-from-frontend", namespace: "shop")
                    #expect(policy.spec.ingress?.first?.ports?.map(\.port) == [.string("http"), .int(9090)])
                    #expect(policy.spec.ingress?.first?.from?.last?.ipBlock?.except == ["10.1.0.0/16"])
                    let namespace = try await client.get(Namespace.self, name: "shop")
                    #expect(namespace.metadata.labels?["kubernetes.io/metadata.name"] == "shop")
                }

                #expect(try run("patch", "pod", "web", "--type=json", "-p", #"[{"op":"remove","path":"/metadata/labels/tier"}]"#)
                    == "pod/web patched\n")
                #expect(try run("delete", "pod", "web") == "pod \"web\" deleted\n")
                try await withKubeClient(standin.adminConfig()) { client in
                    let gone = await #expect(throws: KubeAPIError.self) { try await client.get(Pod.self, name: "web", namespace: "shop") }
                    #expect(gone?.isNotFound == true)
                }
                // Every kubectl request was authenticated with the token.
                #expect(try await standin.requests().allSatisfy { $0.code != 401 })
            }
        }
    }
}
