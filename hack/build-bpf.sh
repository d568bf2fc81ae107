#!/usr/bin/env bash
# Compiles the eBPF datapath: every bpf/*.bpf.c into .build/bpf/NAME.bpf.o, and the test
# harnesses bpf/tests/*.bpf.c into .build/bpf/tests/. Uses the clang on PATH (the Swift
# toolchain's), -target bpf. Rebuilds an object only when its source, a bpf/lib header or this
# script is newer; writes through a temporary file, so an object is never half-written.
#
#   hack/build-bpf.sh            build what changed
#   hack/build-bpf.sh --force    rebuild everything
#   BPF_OUT=DIR hack/build-bpf.sh   put the objects elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."

force=0
[ "${1:-}" = "--force" ] && force=1
out=${BPF_OUT:-.build/bpf}
clang=${CLANG:-clang}
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "$(uname -m)-linux-gnu")
cflags=(-target bpf -mcpu=v3 -O2 -g -Wall -Werror
        -I bpf -I "/usr/include/$multiarch")

# Newest input every object depends on: the shared headers and this script.
deps=(bpf/lib/*.h "$0")

needs_build() { # obj src...
  local obj=$1; shift
  [ "$force" = 1 ] && return 0
  [ -f "$obj" ] || return 0
  local f
  for f in "$@" "${deps[@]}"; do [ "$f" -nt "$obj" ] && return 0; done
  return 1
}

built=0
build() { # src obj extra-deps...
  local src=$1 obj=$2; shift 2
  needs_build "$obj" "$src" "$@" || return 0
  mkdir -p "$(dirname "$obj")"
  "$clang" "${cflags[@]}" -c "$src" -o "$obj.tmp.$$"
  mv -f "$obj.tmp.$$" "$obj"
  echo "build-bpf: $obj"
  built=$((built + 1))
}

for src in bpf/*.bpf.c; do
  build "$src" "$out/$(basename "${src%.c}").o"
done
for src in bpf/tests/*.bpf.c; do
  [ -e "$src" ] || continue
  # Harnesses include the program files.
  build "$src" "$out/tests/$(basename "${src%.c}").o" bpf/*.bpf.c
done
[ "$built" = 0 ] && echo "build-bpf: up to date ($out)"
exit 0
