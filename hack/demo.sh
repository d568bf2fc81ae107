#!/usr/bin/env bash
# The plugin on its own, end to end: one simulated node (a network namespace), three pods wired
# by the real `trellis` binary in `bridge` mode and three in `ebpf` mode, the reachability
# matrix between them, CHECK, then DEL of everything. Nothing is left behind, on any exit path.
#
#   hack/demo.sh [--no-build]
#
# The multi-node lab with the agent and the Geneve overlay (`trellisctl lab`) supersedes this
# once the datapath lands.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
[ "${1:-}" = "--no-build" ] && build=0
[ "$(id -u)" = 0 ] || { echo "demo: needs root (it creates network namespaces)" >&2; exit 1; }
hack/install-deps.sh
if [ $build = 1 ]; then hack/build-release.sh --product trellis >/dev/null; fi
trellis=$(swift build -c release --show-bin-path)/trellis
[ -x "$trellis" ] || { echo "demo: $trellis is missing (run without --no-build)" >&2; exit 1; }

tag=trldemo-$$
node=$tag-node
tmp=$(mktemp -d /tmp/$tag.XXXXXX)
pods=()

cleanup() {
  set +e
  for p in "${pods[@]}"; do ip netns delete "$p" 2>/dev/null; done
  ip netns delete "$node" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM HUP

cni() {  # cni COMMAND CONFIG POD
  CNI_COMMAND=$1 CNI_CONTAINERID=$3 CNI_NETNS=/var/run/netns/$3 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
    ip netns exec "$node" "$trellis" < "$2"
}

ip netns add "$node"
ip -n "$node" link set lo up

declare -A address
for mode in bridge ebpf; do
  net=$([ $mode = bridge ] && echo 10.201 || echo 10.202)
  v6=$([ $mode = bridge ] && echo fd00:201 || echo fd00:202)
  cat > "$tmp/$mode.conf" <<CONF
{"cniVersion":"1.1.0","name":"demo-$mode","type":"trellis","mode":"$mode","mtu":1450,
 "ipam":{"ranges":[{"subnet":"$net.0.0/24"},{"subnet":"$v6::/64"}],"dataDir":"$tmp/ipam"}}
CONF
  for i in 1 2 3; do
    pod=$tag-$mode-$i
    ip netns add "$pod"; pods+=("$pod")
    cni ADD "$tmp/$mode.conf" "$pod" > "$tmp/$pod.json"
    address[$pod]=$(python3 -c 'import json,sys; print(" ".join(i["address"].split("/")[0] for i in json.load(open(sys.argv[1]))["ips"]))' "$tmp/$pod.json")
    printf '%-7s pod %d: %s\n' "$mode" "$i" "${address[$pod]}"
  done
done

echo
echo "Reachability (ping, IPv4 / IPv6) between pods of the same mode, and to the gateway:"
for mode in bridge ebpf; do
  gw4=$([ $mode = bridge ] && echo 10.201.0.1 || echo 10.202.0.1)
  gw6=$([ $mode = bridge ] && echo fd00:201::1 || echo fd00:202::1)
  printf '\n  %-8s' "$mode"; for j in 1 2 3; do printf '%-10s' "pod$j"; done; printf '%-10s\n' gateway
  for i in 1 2 3; do
    src=$tag-$mode-$i
    printf '  pod%-5s' "$i"
    for j in 1 2 3 gw; do
      if [ "$j" = "$i" ]; then printf '%-10s' self; continue; fi
      if [ "$j" = gw ]; then dsts="$gw4 $gw6"; else dsts=${address[$tag-$mode-$j]}; fi
      cell=""
      for d in $dsts; do
        if ip netns exec "$src" ping -c 1 -W 1 "$d" >/dev/null 2>&1; then cell+="ok "; else cell+="-- "; fi
      done
      printf '%-10s' "${cell% }"
    done
    echo
  done
done

echo
for mode in bridge ebpf; do
  for i in 1 2 3; do
    pod=$tag-$mode-$i
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["prevResult"]=json.load(open(sys.argv[2])); print(json.dumps(c))' \
      "$tmp/$mode.conf" "$tmp/$pod.json" > "$tmp/$pod.check"
    cni CHECK "$tmp/$pod.check" "$pod"
    cni DEL "$tmp/$mode.conf" "$pod"
  done
done
echo "CHECK passed and DEL done for all 6 pods; node links left: $(ip -n "$node" -br link | awk '$1 ~ /^trl/' | wc -l) pod veths"
