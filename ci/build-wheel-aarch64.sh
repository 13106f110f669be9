#!/usr/bin/env bash
# Recipe: build the abi3 wheel for Raspberry Pi class machines (aarch64, manylinux2014).
#
# It cannot run on our build machines (their toolchain carries only the x86_64 standard
# library and cannot download targets); run it on a release machine with network access:
#
#   rustup target add aarch64-unknown-linux-gnu
#   pip install "maturin>=1.5" ziglang
#   ./ci/build-wheel-aarch64.sh            # wheel lands in dist/
#
# Alternatives: PyO3/maturin-action with `target: aarch64` and `manylinux: auto`, or a native
# ARM runner (`maturin build --release`). An operator on a Pi can also build from the sdist
# with a local Rust toolchain: `pip install session-network-*.tar.gz`.
# Never add `-C target-cpu=native`: the crates pick CPU features at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
exec maturin build --release --locked --target aarch64-unknown-linux-gnu --zig \
    --compatibility manylinux2014 --out dist "$@"
