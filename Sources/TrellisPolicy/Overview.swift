// TrellisPolicy: Kubernetes NetworkPolicy (networking.k8s.io/v1) as pure logic.
//
// Pieces, in the order data flows:
//
// - `PolicyValue` (a decoded JSON/YAML tree) -> `NetworkPolicy(parsing:)`; manifest files are
//   read by TrellisManifests (`ManifestFile`), Pods, Namespaces and Nodes by the agent's
//   `ManifestParser`. Validation follows the API server and names the field:
//   `policy x/deny: spec.ingress[0].ports[1].endPort 79 < port 80`.
// - `PolicyCluster`: the objects, indexed. `verdict(from:to:port:proto:)` is the reference
//   semantics, evaluated directly on the objects; `Verdict.description` is the
//   `trellisctl policy explain` text.
// - `PolicyEngine`: identities, the compiled maps (`ipcache`, `policyMap`) for one node, and
//   `apply(_:)` returning an ordered `PolicyDiff`. What the entries mean: `PolicyMapKey`,
//   `IPCacheEntry` (their bytes: bpf/lib/common.h);
//   update order and why it is safe: `PolicyDiff`.
//
// Semantics choices where upstream leaves room (the evaluator and the compiler agree on them,
// and the truth-table tests check both):
//
// - An ipBlock applies to any address, pod and node addresses included.
// - Ingress from the pod's own node (its host stack) is always allowed. Other nodes' addresses
//   are addresses like any other (an ipBlock may match them).
// - A named port resolves at the destination: the selected pod for ingress, the destination
//   pod for egress (an address that is not a pod has no named ports). It matches the rule's
//   protocol only.
// - A rule without ports matches every protocol, ICMP included; a rule with ports never
//   matches ICMP.
// - A pod's traffic to itself is treated like any other (upstream probes it through a service,
//   which hairpins through the datapath). In a pod, traffic to its own address goes through
//   `lo` and is never seen by the datapath.
// - Rules of a direction the policy does not apply to (policyTypes) are ignored.
//
// What the agent does with it (not here):
//
// - Map its ClusterPod/ClusterNamespace/ClusterNode to PodInfo/NamespaceInfo/NodeInfo, leaving
//   out host-network and finished pods; feed NetworkPolicy objects through the parser.
// - Own one `PolicyEngine(localNode:)`, seed it with a full compile at start, reconcile the
//   pinned maps with `PolicyDiff.between(...)`, then write each change's `operations` in
//   order. Write `endpointsAdded` ids into the pods' `trellis_endpoints` entries after the
//   policy upserts; the engine's ipcache replaces the agent's current per-pod ipcache intent
//   (identity 0 today).
// - Answer CNI ADD only once the pod's endpoint entries are written (fail closed).
