#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every check and test.
#   1. Rust: cargo fmt --check, cargo clippy -D warnings, cargo test on the pure crates
#      (vectors read from tests/vectors)
#   2. Python style and types: ruff check, ruff format --check, mypy over the package
#   3. mypy.stubtest: session/_core.pyi matches the built extension
#   4. bounded fuzzing of the Rust and Python parsers from the kept corpora (ci/fuzz.sh;
#      FUZZ_SECONDS per target, default 12)
#   5. the README's pipx install with Debian's python3 and PyPI, then a devnet from it
#      (ci/pipx.sh)
#   6. pytest (unit, property, vector, integration tests; benchmarks run once as tests)
# Every step runs even when an earlier one failed; the script fails if any did, and ends with
# each step's time.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
./ci/install.sh

. ci/steps.sh

# The workspace and the standalone fuzz crate share core_ext/target (clippy and test reuse
# build scripts and proc macros); the fuzz build uses its own directory (other flags).
step "cargo fmt --check" bash -c 'cd core_ext && cargo fmt --check && cd fuzz && cargo fmt --check'
step "cargo clippy" bash -c 'cd core_ext && cargo clippy --locked --workspace --all-targets -q -- -D warnings'
step "cargo test (pure crates)" \
  bash -c 'cd core_ext && cargo test --locked --workspace --exclude session-core-py -q'
step "ruff check" python3 -m ruff check --no-cache .
step "ruff format --check" python3 -m ruff format --no-cache --check .
step "mypy (package)" python3 -m mypy
step "stubtest" python3 -m mypy.stubtest session._core --allowlist ci/stubtest-allowlist.txt
step "fuzz (build and bounded runs)" ./ci/fuzz.sh
step "pipx install (the README's, from PyPI)" ./ci/pipx.sh
step "pytest" python3 -m pytest -q "$@"

steps_summary "step times"
