#!/usr/bin/env bash
# Builds the release binaries so that they run on any node: the Swift standard library and
# Foundation linked statically, and libnl-3, libnl-route-3, libbpf, libelf, zlib and zstd linked
# from their static archives. The binaries then need only libc, libm, libstdc++ and libgcc_s.
#
# Why the pkg-config detour: SwiftPM puts the libdir that pkg-config reports ahead of every
# -L given on the command line, and in /usr/lib/<triple> the shared objects win over the .a
# files. So we hand SwiftPM .pc files whose libdir is a folder holding only the static archives.
set -euo pipefail
cd "$(dirname "$0")/.."

multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
syslib=/usr/lib/$multiarch
static=$PWD/.build-static/lib
pcdir=$PWD/.build-static/pkgconfig
mkdir -p "$static" "$pcdir"

for lib in nl-3 nl-route-3 bpf elf z zstd; do
  [ -f "$syslib/lib$lib.a" ] || { echo "build-release: $syslib/lib$lib.a is missing (install the -dev package)" >&2; exit 1; }
  ln -sf "$syslib/lib$lib.a" "$static/lib$lib.a"
done
for pc in libnl-3.0 libnl-route-3.0 libbpf; do
  src=$(pkg-config --variable=pcfiledir "$pc")/$pc.pc
  sed -e "s|^libdir=.*|libdir=$static|" "$src" > "$pcdir/$pc.pc"
done

PKG_CONFIG_PATH=$pcdir swift build -c release --static-swift-stdlib \
  -Xlinker -L"$static" "$@"

bin=$(swift build -c release --show-bin-path)
for exe in trellis trellis-agent trellisctl; do
  [ -x "$bin/$exe" ] || continue
  if ldd "$bin/$exe" | grep -qE 'libnl|libbpf|libelf|libz\.|libzstd|libswift|libFoundation'; then
    echo "build-release: $exe still links a shared library it should carry statically:" >&2
    ldd "$bin/$exe" >&2
    exit 1
  fi
done
echo "release binaries in $bin"
