import Foundation
import Testing
import TrellisNet
@testable import TrellisPolicy

/// One scenario of the upstream netpol e2e model: changes on top of the x/y/z world, then the
/// expected reachability over the 9x9 matrix (80 and 81, TCP and UDP) plus extra probes.
struct Scenario: Sendable, CustomTestStringConvertible {
    var name: String
    var changes: [PolicyChange]
    var reach: Reach
    var family: IPAddress.Family = .v4
    var extra: [Probe] = []
    var testDescription: String { name }
}

private func pods(_ name: String) -> LabelSelector { sel(["pod": name]) }
private func nsSel(_ name: String) -> LabelSelector { sel(["ns": name]) }
private func upsert(_ p: NetworkPolicy) -> PolicyChange { .upsertPolicy(p) }
private func relabel(_ ns: String, _ name: String, _ labels: Labels) -> PolicyChange {
    .upsertPod(NetpolWorld.pod(ns, name, labels: labels))
}
private func probe(_ from: ProbeEnd, _ to: ProbeEnd, _ port: UInt16 = 80, _ proto: Proto = .tcp) -> Probe {
    Probe(from: from, to: to, port: port, proto: proto)
}
private func ext(_ s: String) -> ProbeEnd { .external(addr(s)) }
private let xa = ProbeEnd.p("x/a"), xb = ProbeEnd.p("x/b"), yb = ProbeEnd.p("y/b"), zc = ProbeEnd.p("z/c")
private let denyIngressX = netpol("x", "deny-ingress")
private let denyEgressX = netpol("x", "deny-egress", types: [.egress])
private let denyAllX = netpol("x", "deny-all", types: [.ingress, .egress])
private let selectA = pods("a")

enum TruthTables {
    static let scenarios: [Scenario] = [
        // Isolation and its defaults.
        Scenario(name: "no policies: everything allowed", changes: [], reach: Reach()),
        Scenario(name: "default deny ingress in x", changes: [upsert(denyIngressX)],
                 reach: Reach().deny(to: .ns("x"))),
        Scenario(name: "default deny egress in x", changes: [upsert(denyEgressX)],
                 reach: Reach().deny(from: .ns("x")),
                 extra: [probe(xa, ext("8.8.8.8"), 53, .udp)]),
        Scenario(name: "default deny all in x", changes: [upsert(denyAllX)],
                 reach: Reach().deny(from: .ns("x")).deny(to: .ns("x"))),
        Scenario(name: "allow-all ingress overrides default deny",
                 changes: [upsert(denyIngressX), upsert(netpol("x", "allow-all", ingress: [rule()]))],
                 reach: Reach(), extra: [probe(ext("203.0.113.9"), xa)]),
        Scenario(name: "allow-all egress overrides default deny egress",
                 changes: [upsert(denyEgressX), upsert(netpol("x", "allow-all-egress", types: [.egress], egress: [rule()]))],
                 reach: Reach(), extra: [probe(xa, ext("203.0.113.9"))]),
        Scenario(name: "policy in y does not affect x", changes: [upsert(netpol("y", "deny"))],
                 reach: Reach().deny(to: .ns("y"))),
        Scenario(name: "policyTypes Ingress only: egress rules are ignored",
                 changes: [upsert(netpol("x", "ing", types: [.ingress], ingress: [rule()], egress: [rule([.namespaces(nsSel("y"))])]))],
                 reach: Reach()),
        Scenario(name: "policyTypes defaulted from egress rules isolates both directions",
                 changes: [upsert(netpol("x", "eg", egress: [rule([.namespaces(nsSel("y"))])]))],
                 reach: Reach().deny(to: .ns("x")).deny(from: .ns("x")).allow(from: .ns("x"), to: .ns("y"))),
        Scenario(name: "default deny in every namespace, allow-all ingress in y",
                 changes: ["x", "y", "z"].map { upsert(netpol($0, "deny")) } + [upsert(netpol("y", "allow", ingress: [rule()]))],
                 reach: Reach(false).allow(to: .ns("y"))),
        Scenario(name: "policy podSelector with matchExpressions",
                 changes: [upsert(netpol("x", "deny-ab", select: sel([:], [.init(key: "pod", .in, ["a", "b"])])))],
                 reach: Reach().deny(to: .pod("x/a")).deny(to: .pod("x/b"))),

        // Pod and namespace selectors.
        Scenario(name: "podSelector peer: x/a from x/b",
                 changes: [upsert(netpol("x", "a-from-b", select: selectA, ingress: [rule([.pods(pods("b"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a"))),
        Scenario(name: "empty podSelector peer: pods of the policy's namespace",
                 changes: [upsert(netpol("x", "from-x", ingress: [rule([.pods(.everything)])]))],
                 reach: Reach().deny(to: .ns("x")).allow(from: .ns("x"), to: .ns("x"))),
        Scenario(name: "namespaceSelector peer: x/a from namespace y",
                 changes: [upsert(netpol("x", "a-from-y", select: selectA, ingress: [rule([.namespaces(nsSel("y"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a"))),
        Scenario(name: "empty namespaceSelector: every pod, not outside, not other nodes",
                 changes: [upsert(netpol("x", "a-from-pods", select: selectA, ingress: [rule([.namespaces(.everything)])]))],
                 reach: Reach().deny(from: .external, to: .pod("x/a")).deny(from: .node("node-b"), to: .pod("x/a")),
                 extra: [probe(ext("203.0.113.9"), xa), probe(.node("node-b"), xa), probe(.node("node-a"), xa)]),
        Scenario(name: "pod and namespace selector in one peer: AND",
                 changes: [upsert(netpol("x", "and", select: selectA,
                                         ingress: [rule([PolicyPeer(podSelector: pods("c"), namespaceSelector: nsSel("y"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("y/c"), to: .pod("x/a"))),
        Scenario(name: "pod and namespace selector in two peers: OR",
                 changes: [upsert(netpol("x", "or", select: selectA,
                                         ingress: [rule([.namespaces(nsSel("y")), .pods(pods("c"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "matchExpressions In",
                 changes: [upsert(netpol("x", "in", select: selectA, ingress: [rule([.pods(sel([:], [.init(key: "pod", .in, ["b", "c"])]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "matchExpressions NotIn",
                 changes: [upsert(netpol("x", "notin", select: selectA, ingress: [rule([.pods(sel([:], [.init(key: "pod", .notIn, ["b"])]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "matchExpressions Exists on a pod label",
                 changes: [relabel("x", "b", ["pod": "b", "role": "db"]),
                           upsert(netpol("x", "exists", select: selectA, ingress: [rule([.pods(sel([:], [.init(key: "role", .exists)]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a"))),
        Scenario(name: "matchExpressions DoesNotExist on a pod label",
                 changes: [relabel("x", "b", ["pod": "b", "role": "db"]),
                           upsert(netpol("x", "dne", select: selectA, ingress: [rule([.pods(sel([:], [.init(key: "role", .doesNotExist)]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "namespace matchExpressions In",
                 changes: [upsert(netpol("x", "ns-in", select: selectA, ingress: [rule([.namespaces(sel([:], [.init(key: "ns", .in, ["y", "z"])]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a")).allow(from: .ns("z"), to: .pod("x/a"))),
        Scenario(name: "namespace matchExpressions NotIn",
                 changes: [upsert(netpol("x", "ns-notin", select: selectA, ingress: [rule([.namespaces(sel([:], [.init(key: "ns", .notIn, ["y"])]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("x"), to: .pod("x/a")).allow(from: .ns("z"), to: .pod("x/a"))),
        Scenario(name: "namespace matchExpressions Exists",
                 changes: [.upsertNamespace(NamespaceInfo(name: "z", labels: ["ns": "z", "team": "blue"])),
                           upsert(netpol("x", "ns-exists", select: selectA, ingress: [rule([.namespaces(sel([:], [.init(key: "team", .exists)]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("z"), to: .pod("x/a"))),
        Scenario(name: "namespaceSelector on kubernetes.io/metadata.name",
                 changes: [upsert(netpol("x", "by-name", select: selectA, ingress: [rule([.namespaces(sel(["kubernetes.io/metadata.name": "y"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a"))),
        Scenario(name: "egress to a pod of another namespace by pod and namespace selector",
                 changes: [upsert(netpol("x", "to-yb", select: selectA, types: [.egress],
                                         egress: [rule([PolicyPeer(podSelector: pods("b"), namespaceSelector: nsSel("y"))])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("y/b"))),
        Scenario(name: "ingress and egress in one policy",
                 changes: [upsert(netpol("x", "both", select: selectA, types: [.ingress, .egress],
                                         ingress: [rule([.pods(pods("b"))])], egress: [rule([.pods(pods("b"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).deny(from: .pod("x/a"))
                    .allow(from: .pod("x/b"), to: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("x/b"))),

        // Ports and protocols.
        Scenario(name: "ingress on TCP 80 only, from anywhere",
                 changes: [upsert(netpol("x", "tcp80", select: selectA, ingress: [rule([], [.tcp(80)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), port: 80, .tcp)),
        Scenario(name: "ingress on port 81 from namespace y",
                 changes: [upsert(netpol("x", "y81", select: selectA, ingress: [rule([.namespaces(nsSel("y"))], [.tcp(81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a"), port: 81, .tcp)),
        Scenario(name: "all sources on one port for every pod of x",
                 changes: [upsert(netpol("x", "any81", ingress: [rule([], [.tcp(81)])]))],
                 reach: Reach().deny(to: .ns("x")).allow(to: .ns("x"), port: 81, .tcp)),
        Scenario(name: "protocol specific: TCP allowed, UDP denied",
                 changes: [upsert(netpol("x", "tcp-only", select: selectA, ingress: [rule([], [.tcp(80), .tcp(81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), .tcp)),
        Scenario(name: "protocol specific: UDP allowed, TCP denied",
                 changes: [upsert(netpol("x", "udp-only", select: selectA, ingress: [rule([], [.udp(80), .udp(81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), .udp)),
        Scenario(name: "protocol without port: every port of UDP",
                 changes: [upsert(netpol("x", "udp-all", select: selectA, ingress: [rule([], [PolicyPort(.udp)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), .udp),
                 extra: [probe(yb, xa, 5353, .udp), probe(yb, xa, 5353, .tcp)]),
        Scenario(name: "SCTP rule compiled",
                 changes: [upsert(netpol("x", "sctp80", select: selectA, ingress: [rule([], [.sctp(80)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), port: 80, .sctp),
                 extra: [probe(yb, xa, 80, .sctp), probe(yb, xa, 81, .sctp), probe(zc, xa, 80, .sctp)]),
        Scenario(name: "named port ingress",
                 changes: [upsert(netpol("x", "named", select: selectA,
                                         ingress: [rule([], [.named("serve-81-tcp"), .named("serve-80-udp", .udp)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), port: 81, .tcp).allow(to: .pod("x/a"), port: 80, .udp)),
        Scenario(name: "named port ingress resolves per selected pod",
                 changes: [upsert(netpol("x", "web", ingress: [rule([], [.named("web")])]))],
                 reach: Reach().deny(to: .ns("x")).allow(to: .pod("x/a"), port: 80, .tcp)
                    .allow(to: .pod("x/b"), port: 81, .tcp).allow(to: .pod("x/c"), port: 81, .tcp)),
        Scenario(name: "named port egress resolves per destination pod",
                 changes: [upsert(netpol("x", "to-web", select: selectA, types: [.egress], egress: [rule([], [.named("web")])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .podName("a"), port: 80, .tcp)
                    .allow(from: .pod("x/a"), to: .podName("b"), port: 81, .tcp).allow(from: .pod("x/a"), to: .podName("c"), port: 81, .tcp),
                 extra: [probe(xa, ext("203.0.113.9"), 80)]),
        Scenario(name: "named port egress to selected pods",
                 changes: [upsert(netpol("x", "to-y-web", select: selectA, types: [.egress],
                                         egress: [rule([.namespaces(nsSel("y"))], [.named("web")])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("y/a"), port: 80, .tcp)
                    .allow(from: .pod("x/a"), to: .pod("y/b"), port: 81, .tcp).allow(from: .pod("x/a"), to: .pod("y/c"), port: 81, .tcp)),
        Scenario(name: "named port with another protocol matches nothing",
                 changes: [upsert(netpol("x", "wrong-proto", select: selectA, ingress: [rule([], [PolicyPort(.udp, .named("serve-80-tcp"))])]))],
                 reach: Reach().deny(to: .pod("x/a"))),
        Scenario(name: "endPort range 80-81",
                 changes: [upsert(netpol("x", "range", select: selectA, ingress: [rule([], [.tcp(80, endPort: 81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), .tcp)),
        Scenario(name: "endPort range 81-9000",
                 changes: [upsert(netpol("x", "range2", select: selectA, ingress: [rule([], [.tcp(81, endPort: 9000)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), port: 81, .tcp).allow(to: .pod("x/a"), port: 8080, .tcp)
                    .allow(to: .pod("x/a"), port: 9000, .tcp),
                 extra: [probe(yb, xa, 8080), probe(yb, xa, 9000), probe(yb, xa, 9001), probe(yb, xa, 8080, .udp)]),
        Scenario(name: "egress DNS-style: UDP 53 anywhere, TCP 80 to y",
                 changes: [upsert(netpol("x", "dns", types: [.egress],
                                         egress: [rule([], [.udp(53)]), rule([.namespaces(nsSel("y"))], [.tcp(80)])]))],
                 reach: Reach().deny(from: .ns("x")).allow(from: .ns("x"), to: .ns("y"), port: 80, .tcp).allow(from: .ns("x"), port: 53, .udp),
                 extra: [probe(xa, zc, 53, .udp), probe(xa, zc, 53, .tcp), probe(xa, ext("8.8.8.8"), 53, .udp),
                         probe(xa, ext("8.8.8.8"), 53, .tcp), probe(xa, ext("8.8.8.8"), 80, .tcp)]),

        // Several policies.
        Scenario(name: "multiple policies unioned",
                 changes: [upsert(netpol("x", "p1", select: selectA, ingress: [rule([.pods(pods("b"))])])),
                           upsert(netpol("x", "p2", select: selectA, ingress: [rule([.namespaces(nsSel("y"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a"))),
        Scenario(name: "multiple policies on different ports unioned",
                 changes: [upsert(netpol("x", "p80", select: selectA, ingress: [rule([.pods(pods("b"))], [.tcp(80)])])),
                           upsert(netpol("x", "p81", select: selectA, ingress: [rule([.namespaces(nsSel("y"))], [.tcp(81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a"), port: 80, .tcp)
                    .allow(from: .ns("y"), to: .pod("x/a"), port: 81, .tcp)),

        // Updates.
        Scenario(name: "policy replaced: from x/b becomes from x/c",
                 changes: [upsert(netpol("x", "p", select: selectA, ingress: [rule([.pods(pods("b"))])])),
                           upsert(netpol("x", "p", select: selectA, ingress: [rule([.pods(pods("c"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "policy deleted", changes: [upsert(denyAllX), .removePolicy(denyAllX.key)], reach: Reach()),
        Scenario(name: "default deny replaced by allow from y",
                 changes: [upsert(denyIngressX), upsert(netpol("x", "deny-ingress", ingress: [rule([.namespaces(nsSel("y"))])]))],
                 reach: Reach().deny(to: .ns("x")).allow(from: .ns("y"), to: .ns("x"))),
        Scenario(name: "policy with ipBlock replaced by one with another except",
                 changes: [upsert(netpol("x", "blk", select: selectA, ingress: [rule([.block(block("10.244.0.0/16", except: ["10.244.2.0/24"]))])])),
                           upsert(netpol("x", "blk", select: selectA, ingress: [rule([.block(block("10.244.0.0/16", except: ["10.244.3.0/24"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .podName("a"), to: .pod("x/a")).allow(from: .podName("b"), to: .pod("x/a"))),
        Scenario(name: "label change on a live peer pod",
                 changes: [upsert(netpol("x", "a-from-b", select: selectA, ingress: [rule([.pods(pods("b"))])])),
                           relabel("x", "c", ["pod": "b"])],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("x/b"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "label change takes a live pod out of a policy",
                 changes: [upsert(netpol("x", "deny-a", select: selectA)), relabel("x", "a", ["pod": "a2"])],
                 reach: Reach()),
        Scenario(name: "label change puts a live pod under a policy",
                 changes: [upsert(netpol("x", "deny-a2", select: pods("a2"))), relabel("x", "b", ["pod": "a2"])],
                 reach: Reach().deny(to: .pod("x/b"))),
        Scenario(name: "namespace label change adds peers",
                 changes: [upsert(netpol("x", "a-from-y", select: selectA, ingress: [rule([.namespaces(nsSel("y"))])])),
                           .upsertNamespace(NamespaceInfo(name: "z", labels: ["ns": "y"]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a")).allow(from: .ns("z"), to: .pod("x/a"))),
        Scenario(name: "namespace label change removes peers",
                 changes: [upsert(netpol("x", "a-from-y", select: selectA, ingress: [rule([.namespaces(nsSel("y"))])])),
                           .upsertNamespace(NamespaceInfo(name: "y", labels: ["ns": "yy"]))],
                 reach: Reach().deny(to: .pod("x/a"))),
        Scenario(name: "namespace label change of the policy's own namespace",
                 changes: [upsert(netpol("x", "from-x", select: selectA, ingress: [rule([.namespaces(nsSel("x"))])])),
                           .upsertNamespace(NamespaceInfo(name: "x", labels: ["ns": "x", "env": "prod"])),
                           .upsertNamespace(NamespaceInfo(name: "y", labels: ["ns": "x"]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .ns("x"), to: .pod("x/a")).allow(from: .ns("y"), to: .pod("x/a"))),

        // Nodes.
        Scenario(name: "traffic from the pod's own node is always allowed",
                 changes: [upsert(denyAllX)],
                 reach: Reach().deny(from: .ns("x")).deny(to: .ns("x")).allow(from: .node("node-a"), to: .pod("x/a"))
                    .allow(from: .node("node-b"), to: .pod("x/b")).allow(from: .node("node-c"), to: .pod("x/c")),
                 extra: [probe(.node("node-a"), xa), probe(.node("node-b"), xa), probe(.node("node-b"), xb),
                         probe(.node("node-c"), .p("y/a")), probe(xa, .node("node-a")), probe(.node("node-a"), xa, 9, .udp)]),
        Scenario(name: "a node's address is matched by ipBlock like any address",
                 changes: [upsert(netpol("x", "from-nodes", select: selectA, types: [.ingress, .egress],
                                         ingress: [rule([.block(block("192.168.0.0/24", except: ["192.168.0.3/32"]))])],
                                         egress: [rule([.block(block("192.168.0.2/32"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).deny(from: .pod("x/a")).allow(from: .node("node-a"), to: .pod("x/a"))
                    .allow(from: .node("node-b"), to: .pod("x/a")).allow(from: .pod("x/a"), to: .node("node-b")),
                 extra: [probe(.node("node-a"), xa), probe(.node("node-b"), xa), probe(.node("node-c"), xa),
                         probe(xa, .node("node-a")), probe(xa, .node("node-b"))]),

        // ipBlock.
        Scenario(name: "ipBlock ingress with except (IPv4)",
                 changes: [upsert(netpol("x", "blk", select: selectA, ingress: [rule([.block(block("10.244.0.0/16", except: ["10.244.2.0/24"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .podName("a"), to: .pod("x/a")).allow(from: .podName("c"), to: .pod("x/a"))
                    .allow(from: .address("10.244.7.7"), to: .pod("x/a")).allow(from: .node("node-a"), to: .pod("x/a")),
                 extra: [probe(ext("10.244.2.200"), xa), probe(ext("10.244.7.7"), xa), probe(.node("node-a"), xa)]),
        Scenario(name: "ipBlock egress with one pod's /32 excepted",
                 changes: [upsert(netpol("x", "blk-eg", select: selectA, types: [.egress],
                                         egress: [rule([.block(block("10.244.0.0/16", except: ["10.244.3.12/32"]))])]))],
                 reach: Reach().deny(from: .pod("x/a"), to: .pod("y/c")).deny(from: .pod("x/a"), to: .external)
                    .allow(from: .pod("x/a"), to: .address("10.244.9.9")),
                 extra: [probe(xa, ext("8.8.8.8")), probe(xa, ext("10.244.9.9"))]),
        Scenario(name: "ipBlock with except (IPv6)", changes: [
                    upsert(netpol("x", "blk6", select: selectA, ingress: [rule([.block(block("fd00:244::/32", except: ["fd00:244:3::/48"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .podName("a"), to: .pod("x/a")).allow(from: .podName("b"), to: .pod("x/a"))
                    .allow(from: .address("fd00:244:5::1"), to: .pod("x/a")),
                 family: .v6,
                 extra: [probe(ext("fd00:244:5::1"), xa), probe(ext("fd00:244:3::99"), xa)]),
        Scenario(name: "ipBlock egress to one pod's /128 (IPv6)", changes: [
                    upsert(netpol("x", "to-yb6", select: selectA, types: [.egress], egress: [rule([.block(block("fd00:244:2::12/128"))])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .pod("y/b")), family: .v6),
        Scenario(name: "ipBlock only outside the cluster",
                 changes: [upsert(netpol("x", "ext", select: selectA, types: [.egress], egress: [rule([.block(block("203.0.113.0/24"))])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .address("203.0.113.7")),
                 extra: [probe(xa, ext("203.0.113.7")), probe(xa, ext("198.51.100.1"))]),
        Scenario(name: "ipBlock ingress from outside with except",
                 changes: [upsert(netpol("x", "ext-in", select: selectA, ingress: [rule([.block(block("203.0.113.0/24", except: ["203.0.113.128/25"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .address("203.0.113.5"), to: .pod("x/a")),
                 extra: [probe(ext("203.0.113.5"), xa), probe(ext("203.0.113.200"), xa)]),
        Scenario(name: "ipBlock with except added to an isolated pod",
                 changes: [upsert(netpol("x", "deny-a", select: selectA)),
                           upsert(netpol("x", "ext-in", select: selectA, ingress: [rule([.block(block("203.0.113.0/24", except: ["203.0.113.128/25"]))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .address("203.0.113.5"), to: .pod("x/a")),
                 extra: [probe(ext("203.0.113.5"), xa), probe(ext("203.0.113.200"), xa), probe(ext("198.51.100.7"), xa)]),
        Scenario(name: "ipBlock with except added and removed again",
                 changes: [upsert(netpol("x", "deny-a", select: selectA)),
                           upsert(netpol("x", "ext-in", select: selectA, ingress: [rule([.block(block("203.0.113.0/24", except: ["203.0.113.128/25"]))])])),
                           .removePolicy(PolicyKey("x", "ext-in"))],
                 reach: Reach().deny(to: .pod("x/a")),
                 extra: [probe(ext("203.0.113.5"), xa), probe(ext("203.0.113.200"), xa)]),
        Scenario(name: "ipBlock and podSelector peers in one rule",
                 changes: [upsert(netpol("x", "mix", select: selectA, ingress: [rule([.block(block("10.244.2.12/32")), .pods(pods("c"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .pod("y/b"), to: .pod("x/a")).allow(from: .pod("x/c"), to: .pod("x/a"))),
        Scenario(name: "overlapping ipBlocks of two policies",
                 changes: [upsert(netpol("x", "wide", select: selectA, ingress: [rule([.block(block("10.244.0.0/16", except: ["10.244.1.0/24"]))])])),
                           upsert(netpol("x", "narrow", select: selectA, ingress: [rule([.block(block("10.244.1.12/32"))])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .podName("b"), to: .pod("x/a")).allow(from: .podName("c"), to: .pod("x/a"))
                    .allow(from: .pod("y/a"), to: .pod("x/a"))),
        Scenario(name: "nested ipBlocks: an except of one is the cidr of another",
                 changes: [upsert(netpol("x", "outer", select: selectA, ingress: [rule([.block(block("10.244.0.0/16", except: ["10.244.2.0/24"]))], [.tcp(80)])])),
                           upsert(netpol("x", "inner", select: selectA, ingress: [rule([.block(block("10.244.2.0/24", except: ["10.244.2.13/32"]))], [.tcp(81)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(to: .pod("x/a"), port: 80, .tcp).deny(from: .podName("b"), to: .pod("x/a"))
                    .allow(from: .podName("b"), to: .pod("x/a"), port: 81, .tcp).deny(from: .pod("z/b"), to: .pod("x/a"))),
        Scenario(name: "named port egress to an ipBlock",
                 changes: [upsert(netpol("x", "blk-web", select: selectA, types: [.egress], egress: [rule([.block(block("10.244.0.0/16"))], [.named("web")])]))],
                 reach: Reach().deny(from: .pod("x/a")).allow(from: .pod("x/a"), to: .podName("a"), port: 80, .tcp)
                    .allow(from: .pod("x/a"), to: .podName("b"), port: 81, .tcp).allow(from: .pod("x/a"), to: .podName("c"), port: 81, .tcp),
                 extra: [probe(xa, ext("10.244.9.9"), 80), probe(xa, ext("10.244.9.9"), 81)]),
        Scenario(name: "named port ingress from an ipBlock",
                 changes: [upsert(netpol("x", "blk-udp", select: selectA, ingress: [rule([.block(block("10.244.2.0/24"))], [.named("serve-80-udp", .udp)])]))],
                 reach: Reach().deny(to: .pod("x/a")).allow(from: .podName("b"), to: .pod("x/a"), port: 80, .udp)),
        Scenario(name: "policy from a manifest (parsed)", changes: [upsert(try! NetworkPolicy(parsing: [
                    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": ["name": "allow-db", "namespace": "y"],
                    "spec": [
                        "podSelector": ["matchLabels": ["pod": "b"]],
                        "ingress": [["from": [["namespaceSelector": ["matchExpressions": [["key": "ns", "operator": "In", "values": ["x"]]]],
                                               "podSelector": ["matchLabels": ["pod": "a"]]]],
                                     "ports": [["port": 80], ["protocol": "UDP", "port": 81, "endPort": 81]]]],
                    ],
                 ]))],
                 reach: Reach().deny(to: .pod("y/b")).allow(from: .pod("x/a"), to: .pod("y/b"), port: 80, .tcp)
                    .allow(from: .pod("x/a"), to: .pod("y/b"), port: 81, .udp)),
    ]
}

@Suite struct PolicyTruthTableTests {
    @Test func enoughScenarios() {
        #expect(TruthTables.scenarios.count >= 40)
        #expect(Set(TruthTables.scenarios.map(\.name)).count == TruthTables.scenarios.count)
    }

    /// Reference evaluator, incremental per-node compile and fresh compile, all through the
    /// simulator, against the expectation; every intermediate datapath state checked too.
    @Test(arguments: TruthTables.scenarios)
    func truthTable(_ s: Scenario) throws {
        var nodes = Nodes()
        nodes.apply(NetpolWorld.baseChanges)
        let probes = Probe.matrix + s.extra
        for change in s.changes {
            let before = nodes.simulated
            let diffs = nodes.apply(change)
            checkTransition(from: before, diffs: diffs, to: nodes.simulated, probes: probes, family: s.family, change: change)
        }
        let reference = nodes.engines["node-a"]!
        let fresh = nodes.recompiled
        let incremental = nodes.simulated, recompiled = fresh.simulated
        var wrong: [String] = []
        for p in probes {
            let want = s.reach.expected(p.from, p.to, p.port, p.proto)
            let ref = reference.verdict(from: p.from.endpoint, to: p.to.endpoint, port: p.port, proto: p.proto, family: s.family)
            let src = p.from.address(s.family), dst = p.to.address(s.family)
            let inc = incremental.allows(src, dst, p.proto, p.port)
            let full = recompiled.allows(src, dst, p.proto, p.port)
            if ref.allowed != want || inc != want || full != want {
                wrong.append("\(p): expected \(want), reference \(ref.allowed), compiled \(inc), recompiled \(full) -- \(ref)")
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(probes.count) probes wrong:\n\(wrong.prefix(12).joined(separator: "\n"))")
        for (name, engine) in nodes.engines {
            let a = SymbolicState(engine), b = SymbolicState(fresh.engines[name]!)
            #expect(a == b, "node \(name): incremental and fresh compile differ:\n\(a.difference(b))")
        }
    }
}

/// Applies each node's diff one operation at a time; after each, every direction whose
/// decision is the same before and after the change must have that decision.
func checkTransition(from before: SimulatedCluster, diffs: [String: PolicyDiff], to after: SimulatedCluster,
                     probes: [Probe], family: IPAddress.Family, change: PolicyChange,
                     address: (ProbeEnd, IPAddress.Family) -> IPAddress? = { $0.address($1) },
                     sourceLocation: SourceLocation = #_sourceLocation) {
    struct Key: Hashable { var probe: Probe; var egress: Bool }
    var stable: [Key: Bool] = [:]
    var addresses: [ProbeEnd: IPAddress] = [:]
    for p in probes {
        guard let src = address(p.from, family), let dst = address(p.to, family) else { continue }
        addresses[p.from] = src
        addresses[p.to] = dst
        let b = before.directions(src, dst, p.proto, p.port), a = after.directions(src, dst, p.proto, p.port)
        if let be = b.egress, be == a.egress { stable[Key(probe: p, egress: true)] = be }
        if let bi = b.ingress, bi == a.ingress { stable[Key(probe: p, egress: false)] = bi }
    }
    var mid = before
    var problems: [String] = []
    for node in diffs.keys.sorted() {
        for op in diffs[node]!.operations {
            mid.nodes[node]!.apply(op)
            let dp = mid.nodes[node]!
            for (k, want) in stable {
                let src = addresses[k.probe.from]!, dst = addresses[k.probe.to]!
                let got: Bool
                if k.egress {
                    guard let ep = dp.endpoints[src] else { continue }
                    got = dp.allows(endpoint: ep, .egress, peer: dst, k.probe.proto, k.probe.port)
                } else {
                    guard let ep = dp.endpoints[dst] else { continue }
                    got = dp.allows(endpoint: ep, .ingress, peer: src, k.probe.proto, k.probe.port)
                }
                if got != want {
                    problems.append("after \(op) on \(node): \(k.egress ? "egress" : "ingress") of \(k.probe) is \(got), before and after \(want)")
                }
            }
        }
    }
    #expect(problems.isEmpty, "transition window in \(change): \(problems.count) problems:\n\(problems.prefix(8).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
}

@Suite struct PolicyExplanationTests {
    /// `trellisctl policy explain` emulates the datapath's lookups at the compiled pods: for
    /// every scenario and probe, at the node of each end, that emulation must decide as the
    /// reference does.
    @Test(arguments: TruthTables.scenarios)
    func datapathAgreesWithReference(_ s: Scenario) {
        var nodes = Nodes()
        nodes.apply(NetpolWorld.baseChanges)
        for change in s.changes { _ = nodes.apply(change) }
        var wrong: [String] = []
        for p in Probe.matrix + s.extra {
            for engine in nodes.engines.values {
                let e = engine.explain(from: p.from.endpoint, to: p.to.endpoint, port: p.port, proto: p.proto, family: s.family)
                if !e.datapathAgrees { wrong.append("\(p) at \(engine.localNode ?? "?"):\n\(e)") }
            }
        }
        #expect(wrong.isEmpty, "\(wrong.count) explanations disagree:\n\(wrong.prefix(4).joined(separator: "\n"))")
    }

    @Test func textNamesPoliciesRulesAndEntries() throws {
        var nodes = Nodes()
        nodes.apply(NetpolWorld.baseChanges)
        _ = nodes.apply(.upsertPolicy(netpol("x", "a-from-y", select: sel(["pod": "a"]),
                                             ingress: [rule([.namespaces(sel(["ns": "y"]))], [.tcp(80)])])))
        let engine = try #require(nodes.engines["node-a"])
        let allowed = engine.explain(from: .pod("y", "b"), to: .pod("x", "a"), port: 80, proto: .tcp)
        #expect(allowed.verdict.allowed && allowed.datapath.count == 1)
        #expect(allowed.description.contains("ingress at x/a: allowed by x/a-from-y ingress[0]"), "\(allowed)")
        #expect(allowed.description.contains("allowed by entry ep "), "\(allowed)")
        let denied = engine.explain(from: .pod("y", "b"), to: .pod("x", "a"), port: 81, proto: .tcp)
        #expect(denied.description.hasPrefix("pod y/b -> pod x/a 81/TCP: DENIED"), "\(denied)")
        #expect(denied.description.contains("no entry matches: denied"), "\(denied)")
        // Offline (no datapath): the verdict only.
        #expect(engine.explain(from: .pod("y", "b"), to: .pod("x", "a"), port: 81, proto: .tcp, datapath: false).datapath.isEmpty)
    }
}

@Suite struct PolicyManifestTests {
    /// What the lab writes for the agents reads back as the same policy.
    @Test func everyScenarioPolicyRoundTrips() throws {
        var count = 0
        for s in TruthTables.scenarios {
            for case .upsertPolicy(let p) in s.changes {
                let text = p.manifest.json
                let back = try NetworkPolicy(parsing: try JSONDecoder().decode(PolicyValue.self, from: Data(text.utf8)))
                #expect(back == p, "\(p.key): \(text)")
                count += 1
            }
        }
        #expect(count > 40)
    }

    @Test func jsonEscapes() {
        let v: PolicyValue = ["a\"b": "line\nnext\t\u{1}", "n": 80, "f": 1.5, "list": [true, nil]]
        #expect(v.json == #"{"a\"b":"line\nnext\t\u0001","n":80,"f":1.5,"list":[true,null]}"#)
    }
}
