#!/usr/bin/env bash
# The test command: dependencies, build, every test suite. Root-only suites (network
# namespaces, veths, bridges) run when this runs as root and are reported as skipped otherwise.
#
#   hack/test.sh                  everything
#   hack/test.sh --filter REGEX   only the matching tests (any `swift test` arguments)
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-bpf.sh            # the datapath's BPF objects, into .build/bpf (tests and the lab load them)
swift build --build-tests
# The release build is what gets installed on nodes: prove it links statically.
hack/build-release.sh --product trellis
# The cluster install, against the Kubernetes API schemas (offline).
hack/validate-manifests.sh
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
else
  # Two runs, by test target (Package.swift). TrellisAgentTests (the agent suites and those on
  # the API server stand-in) time answers, reconnects and backoffs in seconds, on Swift's
  # cooperative threads (two on a two-core machine); the root suites of TrellisRootTests
  # (plugin, datapath, lab) block such threads for seconds at a time while their namespaces,
  # agents and probes run. Together they would measure each other. TrellisPureTests (no root,
  # no C library) runs with the root suites: it only computes. The lab's Kubernetes-mode suite
  # is a root suite whose agents and pod runners watch the stand-in with the same timed
  # relists and backoffs: it runs with the timed ones.
  timing='TrellisAgentTests|LabKubernetesTests'
  swift test --skip-build --filter "$timing"
  swift test --skip-build --skip "$timing"
fi
