import Foundation
import Logging
import Testing
import TrellisAgent
import TrellisKube
import TrellisNet
import TrellisTestSupport

/// The agent's `kubernetes` source on the stand-in: its snapshots hold the Services with the
/// addresses kube-proxy translates (cluster IPs, external IPs; a headless Service has none), and
/// follow their changes.
struct KubernetesSourceTests {
    @Test func snapshotsHoldTheServicesAddresses() async throws {
        try await withStandIn { standin in
            try await withKubeClient(KubeClientConfig(server: standin.url)) { client in
                _ = try await client.create(Fixtures.namespace("shop"))
                let port = [ServicePort(port: 5432)]
                let db = try await client.create(TrellisKube.Service(metadata: ObjectMeta(name: "db", namespace: "shop"),
                                                                     spec: ServiceSpec(selector: ["app": "db"], ports: port)))
                let dbIP = try #require(db.spec?.clusterIP.flatMap { IPAddress($0) }, "the stand-in allocates a cluster IP")
                #expect(IPNetwork("10.96.0.0/16")!.contains(dbIP))
                _ = try await client.create(TrellisKube.Service(metadata: ObjectMeta(name: "headless", namespace: "shop"),
                                                                spec: ServiceSpec(clusterIP: "None", selector: ["app": "db"], ports: port)))
                let ext = try await client.create(TrellisKube.Service(
                    metadata: ObjectMeta(name: "ext", namespace: "shop"),
                    spec: ServiceSpec(externalIPs: ["192.0.2.7"], selector: ["app": "db"], ports: port)))
                let extIP = try #require(ext.spec?.clusterIP.flatMap { IPAddress($0) })

                let source = try KubernetesSource(config: KubeClientConfig(server: standin.url), logger: Logger(label: "test"))
                let latest = Locked<ClusterSnapshot?>(nil)
                let reader = Task { for await s in source.snapshots() { latest.withLock { $0 = s } } }
                defer { reader.cancel() }
                try await waitFor("the first snapshot, with three Services") { latest.current?.services.count == 3 }
                let first = try #require(latest.current)
                #expect(first.services[ClusterService.Key(namespace: "shop", name: "headless")]?.addresses == [])
                #expect(first.serviceAddresses == [dbIP, extIP, IPAddress("192.0.2.7")!])

                try await client.delete(TrellisKube.Service.self, name: "db", namespace: "shop")
                try await waitFor("the deletion") { latest.current?.services.count == 2 }
                #expect(latest.current?.serviceAddresses == [extIP, IPAddress("192.0.2.7")!])
                reader.cancel()
                await source.shutdown()
            }
        }
    }
}
