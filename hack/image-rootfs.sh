#!/usr/bin/env bash
# Assembles the root filesystem of the Trellis image into a folder. One script for both ways
# of building the image, so they hold the same files: hack/image.sh (no Docker engine, no
# registry) packs the folder as an OCI archive, deploy/Dockerfile copies it into `FROM scratch`.
#
#   hack/image-rootfs.sh [--bin DIR] [--bpf DIR] OUT
#
#   --bin DIR   the static release binaries (default: swift build -c release --show-bin-path)
#   --bpf DIR   the datapath's objects, one per bpf/*.bpf.c (default: .build/bpf)
#   TRELLIS_IMAGE_STRIP=0   do not strip the executables (only matters for unstripped --bin ones)
#
# Contents (merged-/usr layout like Debian's):
#   /usr/bin/trellis, trellis-agent, trellisctl   static executables, stripped
#   /usr/lib/trellis/bpf/*.bpf.o                  the datapath (the agent's bpfObjectDir)
#   /usr/sbin/nft + its shared libraries and the dynamic loader, taken from this machine's
#     Debian nftables package (ldd closure): the agent runs `nft -f -`
#   /usr/bin/busybox (Debian busybox-static) + sh, mount, cp, mv, grep, ...: the init
#     containers' steps and a shell for `kubectl exec`
#   /etc/passwd, group, nsswitch.conf, ssl/certs/ca-certificates.crt; /tmp, /run, /var/run
#   /usr/share/doc/PKG/copyright of every Debian package a file came from
# Nothing else: no package manager, no libc beyond what nft needs (about 7 MB besides the
# binaries, against about 80 MB for debian:bookworm-slim + nftables).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="" bpf=.build/bpf out=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --bpf) bpf=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "image-rootfs: unknown option $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "usage: hack/image-rootfs.sh [--bin DIR] [--bpf DIR] OUT" >&2; exit 2; }
[ -n "$bin" ] || bin=$(swift build -c release --show-bin-path)

die() { echo "image-rootfs: $*" >&2; exit 1; }

# The Debian packages whose files go in: installed here when missing (as hack/install-deps.sh).
need=()
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
[ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked' || need+=(busybox-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need root to install ${need[*]}"
  echo "image-rootfs: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

for exe in trellis trellis-agent trellisctl; do
  [ -x "$bin/$exe" ] || die "$bin/$exe is missing (hack/build-release.sh builds it)"
  file -L "$bin/$exe" | grep -q 'statically linked' || die "$bin/$exe is not a static executable"
done
# Every program of the datapath (bpf/*.bpf.c): the agent loads them all or refuses to start.
objects=()
for src in "$(dirname "$0")"/../bpf/*.bpf.c; do objects+=("$(basename "${src%.c}").o"); done
for o in "${objects[@]}"; do
  [ -f "$bpf/$o" ] || die "$bpf/$o is missing (hack/build-bpf.sh builds it)"
done

case $out in /|/usr|/usr/*|/etc|/etc/*|/bin|/lib) die "refusing to assemble into $out" ;; esac
rm -rf "$out"
mkdir -p "$out"
root=$(cd "$out" && pwd)

# Skeleton: merged /usr as on Debian 12, so the paths ldd reports (/lib/..., /lib64/...) resolve.
install -d -m 0755 "$root"/{usr/bin,usr/sbin,usr/lib,etc,run,var/lib,proc,sys,dev,usr/share/doc}
install -d -m 1777 "$root/tmp"
install -d -m 0700 "$root/root"
ln -s usr/bin "$root/bin"
ln -s usr/sbin "$root/sbin"
ln -s usr/lib "$root/lib"
if [ -d /lib64 ]; then install -d -m 0755 "$root/usr/lib64"; ln -s usr/lib64 "$root/lib64"; fi
ln -s ../run "$root/var/run"

# Trellis itself, without the symbol table. hack/build-release.sh already strips them (their
# debug information stays beside them as EXE.debug, same build ID, for a crash's addresses);
# strip again for binaries from anywhere else (--bin). Nothing else of the build goes in.
for exe in trellis trellis-agent trellisctl; do
  install -m 0755 "$bin/$exe" "$root/usr/bin/$exe"
  if [ "${TRELLIS_IMAGE_STRIP:-1}" = 1 ]; then strip "$root/usr/bin/$exe"; fi
done
install -d -m 0755 "$root/usr/lib/trellis/bpf"
for o in "${objects[@]}"; do
  install -m 0644 "$bpf/$o" "$root/usr/lib/trellis/bpf/$o"
done

# Debian files, with the copyright file of the package each comes from.
packages=()
copy_host_file() { # PATH as the program names it (may be a symlink, may say /lib for /usr/lib)
  local named=$1 real inside
  real=$(readlink -f "$named")
  [ -f "$real" ] || die "$named: not a file"
  inside=$(usr_path "$real")
  if [ ! -e "$root$inside" ]; then
    install -D -m "$(stat -c %a "$real")" "$real" "$root$inside"
  fi
  local as
  as=$(usr_path "$named")
  if [ "$as" != "$inside" ] && [ ! -e "$root$as" ] && [ ! -L "$root$as" ]; then
    mkdir -p "$(dirname "$root$as")"
    ln -s "$inside" "$root$as"
  fi
  local pkg
  pkg=$(dpkg-query -S "$real" 2>/dev/null || dpkg-query -S "$named" 2>/dev/null || true)
  pkg=${pkg%%:*}
  [ -n "$pkg" ] && packages+=("$pkg")
  return 0
}
usr_path() { # /lib/x -> /usr/lib/x etc. (the rootfs has merged /usr)
  case $1 in
    /lib/*|/lib64/*|/bin/*|/sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

nft=$(command -v nft || echo /usr/sbin/nft)
copy_host_file "$nft"
[ "$(usr_path "$(readlink -f "$nft")")" = /usr/sbin/nft ] || ln -sf "$(usr_path "$(readlink -f "$nft")")" "$root/usr/sbin/nft"
# The shared-library closure: ldd resolves it recursively, the loader included.
while read -r lib; do
  copy_host_file "$lib"
done < <(ldd "$nft" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)

install -m 0755 /bin/busybox "$root/usr/bin/busybox"
packages+=("$(dpkg-query -S /bin/busybox | cut -d: -f1)")
applets=(sh ash cat chmod cp cut date echo env false find grep head id kill ln ls mkdir mount
         mv printf ps readlink rm sed sleep stat sync tail test tr true umount uname wc wget "[")
for a in "${applets[@]}"; do ln -s busybox "$root/usr/bin/$a"; done

install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
packages+=(ca-certificates)
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
chmod 0644 "$root"/etc/{passwd,group,nsswitch.conf}

for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  src=/usr/share/doc/$pkg/copyright
  [ -f "$src" ] && install -D -m 0644 "$src" "$root/usr/share/doc/$pkg/copyright"
done

echo "image-rootfs: $(du -sh "$root" | cut -f1) in $out ($(find "$root" -mindepth 1 | wc -l) entries; Debian packages: $(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' '))"
