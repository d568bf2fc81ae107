#!/usr/bin/env bash
# Builds the Trellis image without a Docker engine and without a registry: the root filesystem
# of hack/image-rootfs.sh (the same files deploy/Dockerfile puts in its image) packed as one
# gzip layer into an OCI image layout tarball, which also carries a Docker-style manifest.json
# and repositories, so that all of these accept it:
#   ctr -n k8s.io images import FILE          (containerd: reads oci-layout + index.json)
#   kind load image-archive FILE              (runs containerd's import on every node)
#   skopeo copy oci-archive:FILE:TAG ...      (org.opencontainers.image.ref.name = the tag)
#   docker load -i FILE / podman load -i FILE
#
#   hack/image.sh [--name NAME:TAG] [--output FILE] [--build] [--verify]
#
#   --name     image name (default trellis/trellis:dev; a name without registry is docker.io's)
#   --output   the archive (default .build/image/trellis-image.tar)
#   --build    run hack/build-bpf.sh and hack/build-release.sh first (default: only when
#              the binaries or the BPF objects are missing)
#   --verify   check the archive with skopeo (parse, copy, layer digests; apt installs it)
#
# Reproducible: the same binaries and Debian packages give the same bytes (sorted entries,
# owner 0:0 numeric, every mtime and the config's "created" at SOURCE_DATE_EPOCH, which
# defaults to the commit time of HEAD; gzip without name and time).
set -euo pipefail
cd "$(dirname "$0")/.."

name=trellis/trellis:dev
output=.build/image/trellis-image.tar
build=0 verify=0
while [ $# -gt 0 ]; do
  case $1 in
    --name) name=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    --build) build=1; shift ;;
    --verify) verify=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "image: $*" >&2; exit 1; }

# --- the reference: NAME[:TAG] -> docker.io/library/NAME:TAG as containerd names it --------
case $name in *@*) die "--name takes NAME:TAG, not a digest" ;; esac
repo=${name%:*} tag=${name##*:}
if [ "$repo" = "$name" ] || [[ $tag == */* ]]; then repo=$name tag=latest; fi
[[ $repo =~ ^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$ ]] || die "bad image name: $repo"
[[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "bad tag: $tag"
first=${repo%%/*}
if [ "$first" != "$repo" ] && { [[ $first == *.* ]] || [[ $first == *:* ]] || [ "$first" = localhost ]; }; then
  full=$repo:$tag
elif [ "$first" = "$repo" ]; then
  full=docker.io/library/$repo:$tag
else
  full=docker.io/$repo:$tag
fi

# --- inputs: the release binaries and the BPF objects ---------------------------------------
bindir=$(swift build -c release --show-bin-path)
bpfdir=.build/bpf
missing=0
for f in "$bindir"/{trellis,trellis-agent,trellisctl} "$bpfdir"/{from_pod,to_pod,from_underlay}.bpf.o; do
  [ -e "$f" ] || missing=1
done
if [ "$build" = 1 ] || [ "$missing" = 1 ]; then
  hack/build-bpf.sh
  hack/build-release.sh
fi

case $(dpkg --print-architecture 2>/dev/null || uname -m) in
  amd64|x86_64) arch=amd64 ;;
  arm64|aarch64) arch=arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=$("$bindir/trellis-agent" --version 2>/dev/null | cut -d' ' -f1 || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
layout=$work/oci
hack/image-rootfs.sh --bin "$bindir" --bpf "$bpfdir" "$rootfs"

# The closure of nft really runs from the rootfs (chroot changes no network state).
if [ "$(id -u)" = 0 ]; then
  chroot "$rootfs" /usr/sbin/nft --version >/dev/null || die "nft does not run inside the image's root filesystem"
  chroot "$rootfs" /bin/sh -c true || die "/bin/sh does not run inside the image's root filesystem"
fi

# --- a deterministic tar: sorted names, fixed time and owner ---------------------------------
det_tar() { # DIR OUT: every entry of DIR, names relative ("usr/bin/x"), sorted bytewise
  local dir=$1 out=$2
  (cd "$dir" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) > "$work/list"
  tar --create --file "$out" --directory "$dir" --no-recursion --verbatim-files-from \
      --files-from "$work/list" --format=gnu --sort=none --numeric-owner --owner=0 --group=0 \
      --mtime="@$epoch"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
blob() { # FILE: moves it into blobs/sha256/DIGEST, prints the digest
  local d; d=$(sha "$1")
  mv "$1" "$layout/blobs/sha256/$d"
  echo "$d"
}

mkdir -p "$layout/blobs/sha256"
det_tar "$rootfs" "$work/layer.tar"
diff_id=$(sha "$work/layer.tar")
gzip -n -6 "$work/layer.tar"
layer_size=$(size "$work/layer.tar.gz")
layer=$(blob "$work/layer.tar.gz")

# JSON written by hand, compact and in a fixed key order: digests cover these exact bytes.
labels="\"org.opencontainers.image.title\":\"trellis\",\"org.opencontainers.image.description\":\"Trellis CNI plugin, node agent and CLI\",\"org.opencontainers.image.version\":\"$version\",\"org.opencontainers.image.revision\":\"$revision\",\"org.opencontainers.image.created\":\"$created\""
printf '%s' "{\"architecture\":\"$arch\",\"os\":\"linux\",\"created\":\"$created\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Entrypoint\":[\"/usr/bin/trellis-agent\"],\"WorkingDir\":\"/\",\"Labels\":{$labels}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$diff_id\"]},\"history\":[{\"created\":\"$created\",\"created_by\":\"hack/image.sh (hack/image-rootfs.sh)\"}]}" > "$work/config.json"
config_size=$(size "$work/config.json")
config=$(blob "$work/config.json")

printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$config\",\"size\":$config_size},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$layer\",\"size\":$layer_size}],\"annotations\":{$labels}}" > "$work/manifest.json"
manifest_size=$(size "$work/manifest.json")
manifest=$(blob "$work/manifest.json")

# index.json: containerd names the image after io.containerd.image.name (a bare ref.name
# would become "import-DATE:TAG"); OCI tools (skopeo, umoci) select by ref.name, the tag.
printf '%s' "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$manifest\",\"size\":$manifest_size,\"annotations\":{\"io.containerd.image.name\":\"$full\",\"org.opencontainers.image.ref.name\":\"$tag\"},\"platform\":{\"architecture\":\"$arch\",\"os\":\"linux\"}}]}" > "$layout/index.json"
printf '%s' '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
# Docker's format, for `docker load` before Docker 25 (containerd prefers the OCI layout).
printf '%s' "[{\"Config\":\"blobs/sha256/$config\",\"RepoTags\":[\"$repo:$tag\"],\"Layers\":[\"blobs/sha256/$layer\"]}]" > "$layout/manifest.json"
printf '%s' "{\"$repo\":{\"$tag\":\"$config\"}}" > "$layout/repositories"
chmod -R u=rwX,go=rX "$layout"

mkdir -p "$(dirname "$output")"
det_tar "$layout" "$work/image.tar"
mv -f "$work/image.tar" "$output"
echo "image: $full -> $output ($(du -h "$output" | cut -f1); manifest sha256:$manifest, layer sha256:$layer, diff_id sha256:$diff_id)"

# --- optional: what an OCI consumer makes of it ----------------------------------------------
if [ "$verify" = 1 ]; then
  if ! command -v skopeo >/dev/null; then
    [ "$(id -u)" = 0 ] || die "--verify needs skopeo (apt-get install skopeo)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null
  fi
  skopeo inspect "oci-archive:$output:$tag" > "$work/inspect.json"
  grep -q "\"sha256:$layer\"" "$work/inspect.json" || die "skopeo inspect does not list layer sha256:$layer"
  skopeo copy -q "oci-archive:$output:$tag" "dir:$work/copy"
  [ "$(sha "$work/copy/$layer")" = "$layer" ] || die "the copied layer does not match its digest"
  [ "$(gzip -dc "$work/copy/$layer" | sha256sum | cut -d' ' -f1)" = "$diff_id" ] || die "the layer's diff_id does not match"
  echo "image: verified with skopeo: parses, copies, layer digest and diff_id match"
fi
