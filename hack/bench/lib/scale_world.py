"""What the scale benchmarks share: a synthetic cluster (100 nodes, 5,000 pods, 1,000 network
policies of five kinds, as Kubernetes objects), and reading the agent's pinned trellis_config
with bpf(2) to see when it has written a change (its policy generation moves)."""
import ctypes
import json
import os

NODES, PODS, POLICIES, NAMESPACES = 100, 5000, 1000, 50


# --- Reading a pinned map with bpf(2), no tools needed -------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]


def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr).ljust(128, b"\0"), 128)
    r = _libc.syscall(_SYS_BPF, cmd, buf, 128)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def pinned_map(path):
    name = ctypes.create_string_buffer(path.encode())
    attr = ctypes.c_uint64(ctypes.addressof(name)).value.to_bytes(8, "little") + (0).to_bytes(8, "little")
    return _bpf(7, attr)  # BPF_OBJ_GET


def lookup(fd, key: bytes, value_size: int) -> bytes:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value_size)
    attr = (fd.to_bytes(4, "little") + b"\0" * 4 + ctypes.addressof(k).to_bytes(8, "little")
            + ctypes.addressof(v).to_bytes(8, "little") + (0).to_bytes(8, "little"))
    _bpf(1, attr)  # BPF_MAP_LOOKUP_ELEM
    return v.raw


# struct trellis_config (bpf/lib/common.h; its size and offsets are asserted in
# Sources/CTrellisBPF/layout.c): node_ipv4, underlay_ifindex, vni, flags, router_ipv4, policy_gen,
# ... The lookup buffer must hold the whole value: the kernel writes all of it.
TRELLIS_CONFIG_SIZE = 52
TRELLIS_CONFIG_POLICY_GEN = 20


def policy_generation(fd):
    value = lookup(fd, (0).to_bytes(4, "little"), TRELLIS_CONFIG_SIZE)
    return int.from_bytes(value[TRELLIS_CONFIG_POLICY_GEN:TRELLIS_CONFIG_POLICY_GEN + 4], "little")


# --- The synthetic cluster ---------------------------------------------------------------

def world(rng):
    """Nodes, namespaces, pods (per node) and policies, as Kubernetes objects."""
    nodes = [{"apiVersion": "v1", "kind": "Node",
              "metadata": {"name": f"far-{i:03d}", "resourceVersion": "1"},
              "spec": {"podCIDR": f"10.245.{i}.0/24", "podCIDRs": [f"10.245.{i}.0/24"]},
              "status": {"addresses": [{"type": "InternalIP", "address": f"192.168.201.{i}"}]}}
             for i in range(3, NODES + 1)]
    teams = [f"team-{t}" for t in range(10)]
    namespaces = [{"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": f"ns-{n}", "resourceVersion": "1",
                                "labels": {"team": teams[n % 10], "env": ["prod", "staging"][n % 2]}}}
                  for n in range(NAMESPACES)]
    apps = [f"app-{a}" for a in range(20)]
    pods_by_node = {}
    # The two lab nodes hold 50 real pods each (the lab wires them), the far nodes the rest.
    hosts = ["node-1", "node-2"] + [n["metadata"]["name"] for n in nodes]
    for i in range(PODS):
        host = hosts[i % len(hosts)]
        slot = i // len(hosts) + 100
        ns = f"ns-{i % NAMESPACES}"
        app = apps[rng.randrange(len(apps))]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"p{i}", "namespace": ns, "resourceVersion": "1",
                            "labels": {"app": app, "tier": rng.choice(["web", "api", "db"]), "version": f"v{i % 3}"}},
               "spec": {"nodeName": host, "containers": [{"name": "c", "ports": [
                   {"name": "http", "containerPort": 8080 + (i % 2), "protocol": "TCP"},
                   {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]}]}}
        if host.startswith("far-"):
            subnet = f"10.245.{int(host[4:])}"
            pod["status"] = {"phase": "Running", "podIP": f"{subnet}.{slot}", "podIPs": [{"ip": f"{subnet}.{slot}"}]}
        pods_by_node.setdefault(host, []).append(pod)
    policies = []
    for i in range(POLICIES):
        ns = f"ns-{i % NAMESPACES}"
        kind = i % 5
        select = {"matchLabels": {"app": apps[i % len(apps)]}}
        if kind == 0:    # from the same namespace's front tiers on a named port
            spec = {"podSelector": select, "ingress": [{"from": [{"podSelector": {"matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]}]}}], "ports": [{"port": "http"}]}]}
        elif kind == 1:  # from a team's namespaces
            spec = {"podSelector": select, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": teams[i % 10]}},
                                                                  "podSelector": {"matchLabels": {"tier": "api"}}}],
                                                        "ports": [{"port": 8080, "endPort": 8081}]}]}
        elif kind == 2:  # egress to databases and DNS-style UDP
            spec = {"podSelector": select, "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": {"matchLabels": {"tier": "db"}}, "namespaceSelector": {}}],
                                "ports": [{"port": 9090}]},
                               {"ports": [{"protocol": "UDP", "port": 53}]}]}
        elif kind == 3:  # from an address block but a hole
            spec = {"podSelector": select, "ingress": [{"from": [{"ipBlock": {
                "cidr": f"10.245.{3 + i % 90}.0/24", "except": [f"10.245.{3 + i % 90}.128/25"]}}]}]}
        else:            # metrics from anywhere in prod
            spec = {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}],
                                                    "ports": [{"port": "metrics"}]}]}
        policies.append({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                         "metadata": {"name": f"np-{i}", "namespace": ns, "resourceVersion": "1"}, "spec": spec})
    return nodes, namespaces, pods_by_node, policies


def write_json(path, items):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
    os.rename(tmp, path)   # the agents watch the folder: one atomic change


