#!/usr/bin/env bash
# Install the package (building the Rust core in release mode), the test tools and the load
# tool's dependencies (the `bench` extra).
# Idempotent: re-running only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
python3 -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
# devnet: the local EVM chain of `session-node devnet`, the demo and the integration tests
python3 -m pip install --quiet -e '.[test,bench,devnet]'
