#!/usr/bin/env bash
# End to end on a real Kubernetes cluster, for machines with Docker and kind: a kind cluster
# without its default CNI (1 control plane + 2 workers), Trellis installed from
# deploy/trellis.yaml, then a connectivity matrix and NetworkPolicy scenarios in the manner of
# upstream's netpol e2e (namespaces x, y, z with pods a, b, c spread over the three nodes, each
# serving TCP and UDP on ports 80 and 81 with agnhost, probed with `agnhost connect`).
#
#   hack/kind-e2e.sh [--name NAME] [--image NAME:TAG] [--docker-build] [--dual-stack]
#                    [--keep] [--node-image IMAGE] [--agnhost IMAGE] [--skip-kernel-check]
#
#   --name          kind cluster name (default trellis-e2e); must not exist yet
#   --image         the Trellis image name used in the cluster (default trellis/trellis:dev)
#   --docker-build  build with `docker build -f deploy/Dockerfile` and `kind load docker-image`
#                   (needs only Docker). Default: hack/image.sh, then `kind load image-archive`
#                   (needs this repository's build setup: Debian 12 with Swift 6 on the PATH)
#   --dual-stack    IPv4 + IPv6 pod and service subnets; the matrix is probed in both families
#   --keep          leave the cluster running at the end (default: deleted, also on failure
#                   and Ctrl-C)
#   --node-image    kindest/node image (default: kind's own)
#   --agnhost       test server image (default registry.k8s.io/e2e-test-images/agnhost:2.53)
#   --skip-kernel-check   run even if the host kernel looks too old
#
# Kind nodes are containers sharing this host's kernel, so the host kernel must be one Trellis
# supports (6.3+, see docs/install.md). On failure the cluster's state (nodes, pods, agent logs,
# `trellisctl status` of every agent) is written to .build/kind-e2e/NAME/ and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

name=trellis-e2e
image=trellis/trellis:dev
docker_build=0 dual=0 keep=0 kernel_check=1
node_image=""
agnhost=registry.k8s.io/e2e-test-images/agnhost:2.53
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --docker-build) docker_build=1; shift ;;
    --dual-stack) dual=1; shift ;;
    --keep) keep=1; shift ;;
    --node-image) node_image=$2; shift 2 ;;
    --agnhost) agnhost=$2; shift 2 ;;
    --skip-kernel-check) kernel_check=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "kind-e2e: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "kind-e2e: $*"; }
die() { echo "kind-e2e: $*" >&2; exit 1; }
k() { kubectl --context "kind-$name" "$@"; }

# --- preflight ---------------------------------------------------------------------------------
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info fails)"
if [ "$kernel_check" = 1 ]; then
  IFS=. read -r kmaj kmin _ <<<"$(uname -r)"
  kmin=${kmin%%[!0-9]*}
  if [ "$kmaj" -lt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -lt 3 ]; }; then
    die "host kernel $(uname -r): Trellis needs 6.3+ (kind nodes share it); --skip-kernel-check to try anyway"
  fi
fi
if kind get clusters 2>/dev/null | grep -qx "$name"; then
  die "a kind cluster named $name exists already; delete it (kind delete cluster --name $name) or use --name"
fi

out=.build/kind-e2e/$name
rm -rf "$out"
mkdir -p "$out"
created=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$created" = 1 ]; then
    if [ "$keep" = 1 ]; then
      say "cluster kept: kubectl --context kind-$name ...; kind delete cluster --name $name"
    else
      say "deleting the cluster $name"
      kind delete cluster --name "$name" >/dev/null 2>&1 || true
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the cluster -------------------------------------------------------------------------------
if [ "$dual" = 1 ]; then
  family=dual
  pod_subnet=10.244.0.0/16,fd00:10:244::/56
  svc_subnet=10.96.0.0/16,fd00:10:96::/112
  families=(4 6)
else
  family=ipv4
  pod_subnet=10.244.0.0/16
  svc_subnet=10.96.0.0/16
  families=(4)
fi
cat > "$out/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  # No kindnet: Trellis is the CNI. The controller manager still allocates each node's pod
  # CIDRs from podSubnet (--allocate-node-cidrs), which is where Trellis takes them from.
  disableDefaultCNI: true
  ipFamily: $family
  podSubnet: "$pod_subnet"
  serviceSubnet: "$svc_subnet"
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
say "creating kind cluster $name ($family)"
created=1
kind create cluster --name "$name" --config "$out/kind.yaml" ${node_image:+--image "$node_image"} --wait 0s

# --- the image ---------------------------------------------------------------------------------
if [ "$docker_build" = 1 ]; then
  say "building $image with docker build"
  docker build -f deploy/Dockerfile -t "$image" .
  kind load docker-image "$image" --name "$name"
else
  archive=.build/image/kind-e2e.tar
  hack/image.sh --name "$image" --output "$archive"
  kind load image-archive "$archive" --name "$name"
fi

# --- install -------------------------------------------------------------------------------------
say "applying deploy/trellis.yaml with image $image"
sed "s|trellis/trellis:dev|$image|g" deploy/trellis.yaml > "$out/trellis.yaml"
k apply -f "$out/trellis.yaml"

collect() { # everything needed to understand a failure, into $out
  say "collecting the cluster's state into $out"
  {
    k get nodes -o wide
    k get pods -A -o wide
    k get networkpolicies -A
  } > "$out/get.txt" 2>&1 || true
  k describe nodes > "$out/describe-nodes.txt" 2>&1 || true
  k describe pods -A > "$out/describe-pods.txt" 2>&1 || true
  local pod
  for pod in $(k -n kube-system get pods -l app.kubernetes.io/name=trellis -o name 2>/dev/null); do
    pod=${pod#pod/}
    k -n kube-system logs "$pod" -c agent > "$out/$pod.agent.log" 2>&1 || true
    k -n kube-system logs "$pod" -c agent --previous > "$out/$pod.agent.previous.log" 2>&1 || true
    k -n kube-system logs "$pod" -c install-cni > "$out/$pod.install-cni.log" 2>&1 || true
    k -n kube-system logs "$pod" -c mount-bpf-fs > "$out/$pod.mount-bpf-fs.log" 2>&1 || true
    k -n kube-system exec "$pod" -c agent -- trellisctl status --socket /run/trellis/agent.sock \
      > "$out/$pod.trellisctl-status.txt" 2>&1 || true
    # The agent's container has the node's network (hostNetwork) and the image's nft.
    k -n kube-system exec "$pod" -c agent -- nft list table inet trellis > "$out/$pod.nft.txt" 2>&1 || true
    k -n kube-system exec "$pod" -c agent -- wget -qO- http://127.0.0.1:9876/metrics > "$out/$pod.metrics.txt" 2>&1 || true
  done
  local node
  for node in $(kind get nodes --name "$name" 2>/dev/null); do
    {
      echo "## /etc/cni/net.d"; docker exec "$node" sh -c 'ls -la /etc/cni/net.d; cat /etc/cni/net.d/10-trellis.conflist'
      echo "## /opt/cni/bin/trellis"; docker exec "$node" ls -la /opt/cni/bin/trellis
      echo "## bpffs"; docker exec "$node" sh -c 'grep bpf /proc/mounts; ls /sys/fs/bpf/trellis'
      echo "## tc eth0"; docker exec "$node" tc filter show dev eth0 ingress
    } > "$out/$node.node.txt" 2>&1 || true
  done
  kind export logs "$out/kind-logs" --name "$name" >/dev/null 2>&1 || true
}
failed() { collect; die "$*"; }

say "waiting for the DaemonSet rollout and every node to become Ready"
k -n kube-system rollout status ds/trellis-agent --timeout=300s || failed "the trellis-agent DaemonSet did not roll out"
k wait --for=condition=Ready nodes --all --timeout=300s || failed "not every node became Ready"
nodes=()
while read -r n; do nodes+=("$n"); done < <(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
[ ${#nodes[@]} = 3 ] || failed "expected 3 nodes, found ${#nodes[@]}"
for n in "${nodes[@]}"; do
  cond=$(k get node "$n" -o jsonpath='{.status.conditions[?(@.type=="NetworkUnavailable")].status}/{.status.conditions[?(@.type=="NetworkUnavailable")].reason}')
  [ "$cond" = "False/TrellisIsUp" ] || failed "node $n: NetworkUnavailable is '$cond', expected False/TrellisIsUp"
done
say "nodes ready, NetworkUnavailable=False (TrellisIsUp) on ${nodes[*]}"
k -n kube-system rollout status deploy/coredns --timeout=180s || failed "CoreDNS did not become ready"

# --- test pods: x, y, z / a, b, c; a on node 0, b on node 1, c on node 2 ------------------------
namespaces=(x y z)
podnames=(a b c)
pods=()
ports=(80/tcp 80/udp 81/tcp 81/udp)
{
  for ns in "${namespaces[@]}"; do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {ns: %s}}\n---\n' "$ns" "$ns"
    for i in 0 1 2; do
      p=${podnames[$i]}
      cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $p, namespace: $ns, labels: {pod: $p}}
spec:
  nodeSelector: {kubernetes.io/hostname: ${nodes[$i]}}
  tolerations: [{operator: Exists}]
  terminationGracePeriodSeconds: 1
  containers:
EOF
      for pp in "${ports[@]}"; do
        port=${pp%/*} proto=${pp#*/}
        cat <<EOF
    - name: cont-$port-$proto
      image: $agnhost
      imagePullPolicy: IfNotPresent
      command: [/agnhost, serve-hostname, --$proto, --http=false, --port, "$port"]
      ports: [{name: serve-$port-$proto, containerPort: $port, protocol: ${proto^^}}]
EOF
      done
      echo ---
    done
  done
} > "$out/pods.yaml"
k apply -f "$out/pods.yaml"
for ns in "${namespaces[@]}"; do
  k -n "$ns" wait --for=condition=Ready pod --all --timeout=300s || failed "test pods in $ns did not become ready"
  for p in "${podnames[@]}"; do pods+=("$ns/$p"); done
done
declare -A ip4 ip6
for pod in "${pods[@]}"; do
  ns=${pod%/*} p=${pod#*/}
  ips=$(k -n "$ns" get pod "$p" -o jsonpath='{range .status.podIPs[*]}{.ip}{" "}{end}')
  for ip in $ips; do
    if [[ $ip == *:* ]]; then ip6[$pod]=$ip; else ip4[$pod]=$ip; fi
  done
  [ -n "${ip4[$pod]:-}" ] || failed "pod $pod has no IPv4 address"
  [ "$dual" = 0 ] || [ -n "${ip6[$pod]:-}" ] || failed "pod $pod has no IPv6 address"
done

# --- probing -----------------------------------------------------------------------------------
declare -A observed
probe_matrix() { # FAMILY: fills observed["src dst port/proto"] with 1 (connected) or 0
  local family=$1 src dst target pp tmp
  tmp=$(mktemp -d)
  for src in "${pods[@]}"; do
    local script="" ip
    for dst in "${pods[@]}"; do
      if [ "$family" = 6 ]; then ip="[${ip6[$dst]}]"; else ip=${ip4[$dst]}; fi
      for pp in "${ports[@]}"; do
        target="$ip:${pp%/*}"
        script+="(/agnhost connect $target --timeout=2s --protocol=${pp#*/} >/dev/null 2>&1 && echo '$dst $pp 1' || echo '$dst $pp 0') & "
      done
    done
    script+="wait"
    k -n "${src%/*}" exec "${src#*/}" -c cont-80-tcp -- /bin/sh -c "$script" > "$tmp/${src/\//_}" 2>&1 &
  done
  wait
  observed=()
  for src in "${pods[@]}"; do
    while read -r dst pp ok; do
      [[ $ok == [01] ]] && observed["$src $dst $pp"]=$ok
    done < "$tmp/${src/\//_}"
  done
  rm -rf "$tmp"
}

# Expectations: FUNCTION SRC DST PORT/PROTO -> 0 (blocked) or 1 (allowed). A pod reaching
# itself never leaves its namespace, so it is always allowed (upstream's AllowLoopback).
expected() { local fn=$1 src=$2 dst=$3 pp=$4; if [ "$src" = "$dst" ]; then echo 1; else "$fn" "$src" "$dst" "$pp"; fi; }
expect_all()         { echo 1; }
expect_deny_x()      { [[ $2 == x/* ]] && echo 0 || echo 1; }
expect_from_y()      { if [[ $2 == x/* ]]; then [[ $1 == y/* ]] && echo 1 || echo 0; else echo 1; fi; }
expect_yb_to_xa()    { if [[ $2 == x/a ]]; then [[ $1 == y/b ]] && echo 1 || echo 0; else echo 1; fi; }
expect_not_yb_to_xa(){ if [[ $2 == x/a ]]; then [[ $1 == y/b ]] && echo 0 || echo 1; else echo 1; fi; }
expect_x_egress_dns(){ [[ $1 == x/* ]] && echo 0 || echo 1; }
expect_x_81_tcp()    { if [[ $2 == x/* ]]; then [[ $3 == 81/tcp ]] && echo 1 || echo 0; else echo 1; fi; }

print_matrix() { # TITLE FN FAMILY: the observed matrix; '!' after a cell that differs
  local title=$1 fn=$2 family=$3 src dst pp cell mark
  echo
  echo "$title (IPv$family) -- each cell: 80/tcp 80/udp 81/tcp 81/udp; '.' connected, 'X' blocked, '!' not as expected"
  printf '%-5s' ""
  for dst in "${pods[@]}"; do printf ' %-5s' "$dst"; done
  echo
  for src in "${pods[@]}"; do
    printf '%-5s' "$src"
    for dst in "${pods[@]}"; do
      cell="" mark=" "
      for pp in "${ports[@]}"; do
        if [ "${observed["$src $dst $pp"]:-0}" = 1 ]; then cell+="."; else cell+="X"; fi
        [ "${observed["$src $dst $pp"]:-0}" = "$(expected "$fn" "$src" "$dst" "$pp")" ] || mark="!"
      done
      printf ' %s%s' "$cell" "$mark"
    done
    echo
  done
}

mismatches() { # FN: the differences between observed and expected, one per line
  local fn=$1 src dst pp want got
  for src in "${pods[@]}"; do for dst in "${pods[@]}"; do for pp in "${ports[@]}"; do
    want=$(expected "$fn" "$src" "$dst" "$pp"); got=${observed["$src $dst $pp"]:-0}
    [ "$want" = "$got" ] || echo "  $src -> $dst $pp: expected $([ "$want" = 1 ] && echo connected || echo blocked), got $([ "$got" = 1 ] && echo connected || echo blocked)"
  done; done; done
}

check() { # TITLE FN: probe every family until it matches (policies take a moment), print it
  local title=$1 fn=$2 family attempt delta
  for family in "${families[@]}"; do
    for attempt in 1 2 3 4 5 6; do
      probe_matrix "$family"
      delta=$(mismatches "$fn")
      [ -z "$delta" ] && break
      sleep 3
    done
    print_matrix "$title" "$fn" "$family" | tee -a "$out/matrices.txt"
    if [ -n "$delta" ]; then
      echo "$delta" | tee -a "$out/matrices.txt"
      failed "$title (IPv$family): the matrix differs from the expected one after $attempt attempts"
    fi
  done
  say "PASS $title"
}

policy() { k apply -f - >/dev/null; }
clear_policies() { for ns in "${namespaces[@]}"; do k -n "$ns" delete networkpolicy --all --wait=true >/dev/null; done; }

# --- scenarios ---------------------------------------------------------------------------------
check "no policies: every pod reaches every pod" expect_all

# --- Services: kube-proxy translates, Trellis carries the result across nodes ----------------
# A ClusterIP in front of x/a (node 0), from every pod (the backend on the same node and on the
# two others) and from every node's own stack, which reaches pods on other nodes through the
# agent's overlay device; and every node to x/a's pod IP directly.
k -n x expose pod a --name svc-a --port 8080 --target-port 80 --protocol TCP >/dev/null || failed "kubectl expose pod x/a"
svc_ip=$(k -n x get svc svc-a -o jsonpath='{.spec.clusterIP}')
svc_ok=1
for attempt in 1 2 3 4 5; do
  svc_ok=1
  for src in "${pods[@]}"; do
    k -n "${src%/*}" exec "${src#*/}" -c cont-80-tcp -- /agnhost connect "$svc_ip:8080" --timeout=3s --protocol=tcp \
      >/dev/null 2>&1 || { svc_ok=0; echo "  $src -> svc-a $svc_ip:8080 failed (attempt $attempt)"; }
  done
  for node in "${nodes[@]}"; do
    for target in "$svc_ip:8080" "${ip4[x/a]}:80"; do
      docker exec "$node" timeout 3 bash -c "exec 3<>/dev/tcp/${target%:*}/${target##*:}" 2>/dev/null \
        || { svc_ok=0; echo "  node $node -> $target failed (attempt $attempt)"; }
    done
  done
  [ "$svc_ok" = 1 ] && break
  sleep 3   # kube-proxy programs a new Service within a few seconds
done
[ "$svc_ok" = 1 ] || failed "a ClusterIP or a pod on another node is not reachable (see above)"
say "PASS every pod and every node reaches x/a through its ClusterIP; every node reaches its pod IP"
k -n x delete svc svc-a >/dev/null

policy <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
EOF
check "default deny ingress in x" expect_deny_x
clear_policies

policy <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
EOF
check "x admits only namespace y (namespaceSelector)" expect_from_y
clear_policies

policy <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-yb-to-xa, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
  ingress:
    - from:
        # One peer with both selectors: pods b in namespace y, and nothing else.
        - namespaceSelector: {matchLabels: {ns: y}}
          podSelector: {matchLabels: {pod: b}}
EOF
check "x/a admits only y/b (podSelector and namespaceSelector in one peer)" expect_yb_to_xa
clear_policies

{
  cat <<EOF
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ipblock-except-yb, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
  ingress:
    - from:
        - ipBlock: {cidr: 0.0.0.0/0, except: ["${ip4[y/b]}/32"]}
EOF
  [ "$dual" = 0 ] || echo "        - ipBlock: {cidr: \"::/0\", except: [\"${ip6[y/b]}/128\"]}"
} | policy
check "x/a admits everything but y/b's address (ipBlock with except)" expect_not_yb_to_xa
clear_policies

policy <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-dns-only, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      ports:
        - {protocol: UDP, port: 53}
        - {protocol: TCP, port: 53}
EOF
check "x may only send DNS to kube-system (egress deny + allow UDP/TCP 53)" expect_x_egress_dns
# DNS itself must still work from x: the query goes to the kube-dns Service, then CoreDNS.
dns_ok=0
for attempt in 1 2 3 4 5; do
  if k -n x exec a -c cont-80-tcp -- nslookup kubernetes.default.svc.cluster.local > "$out/dns.txt" 2>&1; then dns_ok=1; break; fi
  sleep 3
done
[ "$dns_ok" = 1 ] || failed "DNS from x/a does not resolve under the egress policy that allows it ($out/dns.txt)"
say "PASS DNS from x/a resolves under the egress policy"
clear_policies

policy <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-named-port, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - {protocol: TCP, port: serve-81-tcp}
EOF
check "x admits only its named port serve-81-tcp" expect_x_81_tcp

clear_policies
check "policies deleted: every pod reaches every pod again" expect_all

say "all scenarios passed (matrices in $out/matrices.txt)"
