import Foundation
import TrellisCore

/// `lab status`: the lab's nodes, pods, policies and services, as recorded and as alive now.
extension Lab {
    public struct NodeStatus: Sendable {
        public var name: String
        public var nodeIP: String
        public var podCIDRs: [String]
        public var netns: String
        public var agentPID: Int32?
        public var agentAlive: Bool
        public var ready: Bool
    }

    public struct PodStatus: Sendable {
        public var namespace: String
        public var name: String
        public var node: String
        public var ips: [String]
        public var netns: String
        public var serverPID: Int32?
        public var serverAlive: Bool
    }

    public struct ServiceStatus: Sendable {
        public var namespace: String
        public var name: String
        public var clusterIP: String
        /// `5432/TCP`
        public var ports: [String]
        /// `ns/pod ip:port`, over every port.
        public var backends: [String]
        /// `shop/db 10.96.0.10 5432/TCP -> shop/db 10.244.2.2:5432`
        public var line: String {
            "\(namespace)/\(name) \(clusterIP) \(ports.joined(separator: ",")) -> "
                + (backends.isEmpty ? "(no backends)" : backends.joined(separator: ", "))
        }
    }

    public struct Status: Sendable {
        public var labID: String
        public var stateDir: String
        public var phase: String
        public var datapath: DatapathMode
        public var agents: Bool
        public var underlayNetns: String
        public var nodes: [NodeStatus]
        public var pods: [PodStatus]
        /// NetworkPolicies, `namespace/name`.
        public var policies: [String]
        /// Services with their cluster IP, ports and current backends.
        public var services: [ServiceStatus] = []
        public var revision: Int

        public var json: [String: Any] {
            [
                "labID": labID, "stateDir": stateDir, "phase": phase, "datapath": datapath.rawValue, "agents": agents,
                "policies": policies, "revision": revision,
                "services": services.map { s -> [String: Any] in
                    ["namespace": s.namespace, "name": s.name, "clusterIP": s.clusterIP, "ports": s.ports, "backends": s.backends]
                },
                "underlay": ["netns": underlayNetns, "device": Lab.underlayBridge, "bridge": Lab.underlayBridge,
                             "subnet": "192.168.200.0/\(LabLayout.underlayPrefix)"],
                "nodes": nodes.map { n -> [String: Any] in
                    ["name": n.name, "nodeIP": n.nodeIP, "podCIDRs": n.podCIDRs, "netns": n.netns,
                     "agentPID": n.agentPID.map { Int($0) as Any } ?? NSNull(), "agentAlive": n.agentAlive, "ready": n.ready]
                },
                "pods": pods.map { p -> [String: Any] in
                    ["namespace": p.namespace, "name": p.name, "node": p.node, "ips": p.ips, "netns": p.netns,
                     "serverPID": p.serverPID.map { Int($0) as Any } ?? NSNull(), "serverAlive": p.serverAlive]
                },
            ]
        }
    }

    public func status() throws -> Status {
        let state = try loadForReading()
        let nodes = state.nodes.map { n in
            let alive = n.agent.map(Processes.isAlive) ?? false
            return NodeStatus(name: n.name, nodeIP: n.nodeIP, podCIDRs: n.podCIDRs, netns: n.netns,
                              agentPID: n.agent?.pid, agentAlive: alive,
                              ready: state.phase == .ready && conflistReady(n.name) && (!state.agents || alive))
        }
        let pods = state.pods.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }.map { p in
            PodStatus(namespace: p.namespace, name: p.name, node: p.node, ips: p.ips, netns: p.netns,
                      serverPID: p.server?.pid, serverAlive: p.server.map(Processes.isAlive) ?? false)
        }
        let services = (state.services ?? []).sorted { $0.id < $1.id }.map { s in
            ServiceStatus(namespace: s.namespace, name: s.name, clusterIP: s.clusterIP, ports: s.ports.map(\.label),
                          backends: s.ports.flatMap { p in LabServices.backends(s, p, pods: state.pods).map { "\($0.pod) \($0.ip):\($0.port)" } })
        }
        return Status(labID: state.labID, stateDir: state.stateDir, phase: state.phase.rawValue, datapath: state.datapath,
                      agents: state.agents, underlayNetns: state.underlayNetns, nodes: nodes, pods: pods,
                      policies: (state.policies ?? []).map(\.id).sorted(), services: services, revision: state.revisionNumber)
    }
}
