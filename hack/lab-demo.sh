#!/usr/bin/env bash
# The local lab, end to end: three simulated nodes (network namespaces on an underlay bridge
# of their own), one real trellis-agent per node loading the eBPF datapath and the Geneve
# overlay, six pods wired by the real trellis plugin, the reachability matrix between them,
# then everything removed (also on failure or Ctrl-C).
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
echo "Reachability on each pod's declared ports (ok = connected, -- = blocked):"
lab probe --matrix
echo
echo "Network policy arrives with the micro-segmentation work; until then every pair is allowed."
echo "Removing the lab..."
