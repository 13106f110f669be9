#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every test.
#   1. cargo test on the pure Rust crates (vectors read from tests/vectors)
#   2. mypy.stubtest: session/_core.pyi matches the built extension
#   3. pytest (unit, property, vector, integration tests; benchmarks run once as tests)
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
./ci/install.sh
echo "== cargo test (pure crates)"
(cd core_ext && cargo test --locked --workspace --exclude session-core-py -q)
echo "== stubtest"
python3 -m mypy.stubtest session._core --allowlist ci/stubtest-allowlist.txt
echo "== pytest"
python3 -m pytest -q "$@"
