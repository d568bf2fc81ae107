#!/usr/bin/env bash
# The test command: dependencies, build, every test suite. Root-only suites (network
# namespaces, veths, bridges) run when this runs as root and are reported as skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/install-deps.sh
hack/build-bpf.sh            # the datapath's BPF objects, into .build/bpf (tests and the lab load them)
swift build --build-tests
# The release build is what gets installed on nodes: prove it links statically.
hack/build-release.sh --product trellis
swift test --skip-build "$@"
