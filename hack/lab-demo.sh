#!/usr/bin/env bash
# The local lab, end to end: three simulated nodes (network namespaces on an underlay bridge
# of their own), one real trellis-agent per node loading the eBPF datapath and the Geneve
# overlay, six pods wired by the real trellis plugin, the reachability matrix between them,
# then NetworkPolicies micro-segmenting the shop, the matrix again, Services under the policies
# (translated as kube-proxy would), why one connection is denied and the drops it causes, then
# everything removed (also on failure or Ctrl-C).
#
#   hack/lab-demo.sh [--datapath ebpf|bridge] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

datapath=ebpf; build=1
while [ $# -gt 0 ]; do
  case $1 in
    --datapath) datapath=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "lab-demo: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "lab-demo: needs root (network namespaces, bpffs, BPF programs)" >&2; exit 1; }
hack/install-deps.sh
if [ $build = 1 ]; then
  echo "building (release, static) and compiling the BPF datapath..."
  hack/build-release.sh >/dev/null
  hack/build-bpf.sh >/dev/null
fi
bin=$(swift build -c release --show-bin-path)
ctl=$bin/trellisctl
state=$(mktemp -d /tmp/trellis-lab.XXXXXX)
rmdir "$state"   # the lab creates it, and refuses a folder that holds anything
trap '"$ctl" lab down --state "$state" >/dev/null 2>&1 || true' EXIT INT TERM HUP

lab() { "$ctl" lab "$@" --state "$state" --bin-dir "$bin"; }
lab up --nodes 3 --datapath "$datapath" --bpf-dir "$PWD/.build/bpf"
lab apply -f deploy/examples/lab-pods.yaml
echo
lab status
echo
echo "Reachability on each pod's declared ports (ok = connected, -- = blocked), no policy yet:"
lab probe --matrix
echo
echo "Micro-segmenting the shop (deploy/examples/lab-policies.yaml):"
lab apply -f deploy/examples/lab-policies.yaml
echo
echo "Reachability with the policies:"
lab probe --matrix
echo
echo "Services (deploy/examples/lab-services.yaml), reached by their cluster IPs under the same policies:"
lab apply -f deploy/examples/lab-services.yaml
for probe in "shop/web svc:shop/db sql" "shop/db svc:ops/dns 53/UDP" "ops/monitor svc:shop/db sql" "node-2 svc:shop/web http"; do
  # shellcheck disable=SC2086  # each line is SOURCE DESTINATION PORT
  lab probe $probe || true
done
echo
echo "Why may ops/monitor not reach shop/db?"
"$ctl" policy explain --lab --state "$state" --from ops/monitor --to shop/db --port 5432/TCP || true
echo
echo "The drops as they happen (trellisctl monitor), while ops/monitor tries again:"
"$ctl" monitor --lab --state "$state" --reason policy_ingress --count 1 --duration 5 &
monitor=$!
sleep 0.5
lab probe ops/monitor shop/db sql || true
wait "$monitor" || true
echo
echo "Removing the lab..."
