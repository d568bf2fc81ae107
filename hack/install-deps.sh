#!/usr/bin/env bash
# Installs the Debian packages that building, testing, the lab and the benchmarks need.
# Idempotent: installs only what is missing, and runs apt-get update only then.
set -euo pipefail
packages=(
  pkg-config libnl-3-dev libnl-route-3-dev libbpf-dev libelf-dev zlib1g-dev libzstd-dev  # build
  iproute2 iputils-ping netcat-openbsd iptables nftables tcpdump                          # tests, lab
  containernetworking-plugins                                                             # reference plugins, chaining
  time iperf3 ethtool                                                                     # benchmarks, tests
  python3 openssl                                                                         # Kube tests: API stand-in, test CAs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "install-deps: swift (6.x) is not on PATH" >&2; exit 1; }
