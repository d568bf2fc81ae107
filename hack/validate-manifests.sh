#!/usr/bin/env bash
# Validates the deployment files offline, for CI; no cluster, no network after the first run.
#
#   hack/validate-manifests.sh
#
# 1. deploy/*.yaml against the Kubernetes 1.32 API schemas, strict (an unknown or misspelt
#    field fails), with kubernetes-validate from PyPI, pinned, in a virtualenv under .build/
#    (created on the first run: the only step that needs the network).
# 2. The same files through kubectl's own decoder, if kubectl is installed. `kubectl apply
#    --dry-run=client` and `kubectl create --dry-run=client` are not usable offline: even with
#    --validate=false they ask the API server for its resource list ("couldn't get current
#    server API group list"). `kubectl label --local --dry-run=client` reads every document
#    without a server, so that is what runs here; KUBECONFIG points at an empty file, so no
#    cluster is ever contacted.
# 3. Consistency the schemas cannot see: every container uses the image the deploy scripts
#    substitute, the init containers' scripts parse (sh -n) and pass shellcheck, and the
#    ConfigMap's agent.yaml passes `trellis-agent --check-config` when a built agent knows
#    all its keys.
# 4. shellcheck on the deployment scripts (must be clean) and, for information, on the other
#    hack/*.sh scripts (warnings reported, not fatal).
set -euo pipefail
cd "$(dirname "$0")/.."

k8s_version=1.32.0
validate_pin=kubernetes-validate==1.37.0   # the newest release; its schemas go back to 1.32
venv=.build/validate-venv
own_scripts=(hack/image.sh hack/image-rootfs.sh hack/kind-e2e.sh hack/validate-manifests.sh)
failed=0
fail() { echo "validate-manifests: FAIL: $*" >&2; failed=1; }

manifests=()
for f in deploy/*.yaml; do [ -e "$f" ] && manifests+=("$f"); done
[ ${#manifests[@]} -gt 0 ] || { echo "validate-manifests: no deploy/*.yaml" >&2; exit 1; }

apt_install() { # PACKAGE...: only as root, as hack/install-deps.sh does
  [ "$(id -u)" = 0 ] || return 1
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- 1. API schemas ---------------------------------------------------------------------------
installed=$("$venv/bin/pip" show kubernetes-validate 2>/dev/null || true)
if ! grep -qx "Version: ${validate_pin#*==}" <<<"$installed"; then
  python=$(command -v /usr/bin/python3 || command -v python3) || { echo "validate-manifests: python3 is missing" >&2; exit 1; }
  if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv || { echo "validate-manifests: python3-venv is missing" >&2; exit 1; }
  fi
  echo "validate-manifests: installing $validate_pin into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$validate_pin"
fi
for f in "${manifests[@]}"; do
  if "$venv/bin/kubernetes-validate" --kubernetes-version "$k8s_version" --strict --quiet "$f"; then
    echo "validate-manifests: $f: valid against the Kubernetes $k8s_version schemas (strict)"
  else
    fail "$f does not validate against Kubernetes $k8s_version (strict)"
  fi
done

# --- 2. kubectl's decoder, offline ------------------------------------------------------------
if command -v kubectl >/dev/null; then
  empty=$(mktemp); trap 'rm -f "$empty"' EXIT
  for f in "${manifests[@]}"; do
    if out=$(KUBECONFIG=$empty kubectl label --local --dry-run=client -o name -f "$f" trellis.dev/validated=true 2>&1); then
      echo "validate-manifests: $f: kubectl reads $(echo "$out" | wc -l) objects ($(echo "$out" | tr '\n' ' '))"
    else
      fail "kubectl cannot read $f: $out"
    fi
  done
else
  echo "validate-manifests: kubectl not installed: skipping its offline decode (schemas were checked above)"
fi

# --- 3. what the schemas cannot see -----------------------------------------------------------
have_shellcheck=0
command -v shellcheck >/dev/null || apt_install shellcheck || true
command -v shellcheck >/dev/null && have_shellcheck=1
agent=""
# Whatever build is there (no `swift build` here: in a fresh clone it would resolve packages).
for d in .build/debug .build/release .build/*/debug .build/*/release; do
  if [ -x "$d/trellis-agent" ]; then agent=$d/trellis-agent; break; fi
done
checks=$(mktemp -d); trap 'rm -rf "$checks" "${empty:-}"' EXIT
TRELLIS_CHECKS=$checks "$venv/bin/python" - "${manifests[@]}" <<'PY' || failed=1
import os, sys, yaml
out = os.environ["TRELLIS_CHECKS"]
bad = 0
for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind == "ConfigMap" and "agent.yaml" in doc.get("data", {}):
            open(os.path.join(out, f"{name}.agent.yaml"), "w").write(doc["data"]["agent.yaml"])
        spec = doc.get("spec", {}).get("template", {}).get("spec")
        if not spec:
            continue
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            if c.get("image") != "trellis/trellis:dev":
                print(f"validate-manifests: FAIL: {path}: {kind}/{name} container {c['name']} uses image "
                      f"{c.get('image')!r}, not the placeholder trellis/trellis:dev that hack/kind-e2e.sh substitutes")
                bad = 1
            cmd = c.get("command", [])
            if len(cmd) >= 3 and cmd[0] in ("/bin/sh", "sh") and cmd[1].startswith("-"):
                open(os.path.join(out, f"{name}.{c['name']}.sh"), "w").write(cmd[2])
sys.exit(bad)
PY
for s in "$checks"/*.sh; do
  [ -e "$s" ] || continue
  label=$(basename "$s" .sh)
  sh -n "$s" || fail "the script of $label does not parse"
  if [ "$have_shellcheck" = 1 ]; then
    shellcheck -s sh -e SC2148 "$s" || fail "the script of $label has shellcheck findings"
  fi
  echo "validate-manifests: script of $label: parses$([ "$have_shellcheck" = 1 ] && echo ", shellcheck clean")"
done
for cfg in "$checks"/*.agent.yaml; do
  [ -e "$cfg" ] || continue
  label=$(basename "$cfg" .agent.yaml)
  if [ -z "$agent" ]; then
    echo "validate-manifests: ConfigMap $label: no built trellis-agent, config not checked"
    continue
  fi
  missing_keys=()
  defaults=$("$agent" --print-default-config)
  while read -r key; do
    grep -q "^#* *$key:" <<<"$defaults" || missing_keys+=("$key")
  done < <(sed -n 's/^\([A-Za-z]*\):.*/\1/p' "$cfg")
  if [ ${#missing_keys[@]} -gt 0 ]; then
    echo "validate-manifests: ConfigMap $label: $agent does not know ${missing_keys[*]} yet: config not checked"
  elif "$agent" --check-config --config "$cfg" --node-name validate >/dev/null; then
    echo "validate-manifests: ConfigMap $label: agent.yaml accepted by trellis-agent --check-config"
  else
    fail "ConfigMap $label: trellis-agent --check-config rejects agent.yaml"
  fi
done

# --- 4. shellcheck on the scripts -------------------------------------------------------------
if [ "$have_shellcheck" = 1 ]; then
  for s in "${own_scripts[@]}"; do
    [ -e "$s" ] || continue
    if shellcheck -x "$s"; then echo "validate-manifests: $s: shellcheck clean"; else fail "$s has shellcheck findings"; fi
  done
  for s in hack/*.sh; do
    case " ${own_scripts[*]} " in *" $s "*) continue ;; esac
    n=$(shellcheck -f gcc "$s" 2>/dev/null | wc -l || true)
    [ "$n" = 0 ] || echo "validate-manifests: note: $s has $n shellcheck findings (not fatal; shellcheck $s)"
  done
else
  echo "validate-manifests: shellcheck not installed (apt-get install shellcheck): scripts not checked"
fi

if [ "$failed" = 0 ]; then echo "validate-manifests: OK"; else echo "validate-manifests: FAILED" >&2; exit 1; fi
