#!/usr/bin/env bash
# Cross-build the aarch64 (Raspberry Pi 4/5, 64-bit OS) wheel on an x86-64 Debian 12 host and
# test it under qemu-user with the aarch64 wheels of every dependency. Not part of
# ./ci/test.sh: about 35 min of emulation on 2 shared cores, after a release build (7 min from
# scratch); the steps, tests and times of a run are in docs/performance.md, "aarch64".
#
# Everything comes from Debian's archive and PyPI (rustup cannot download targets on the build
# machine): rustc-web/cargo-web (Rust 1.96, bookworm's security-updated toolchain) with the
# matching standard library for arm64 (libstd-rust-web-dev:arm64), the gcc cross linker,
# qemu-user-static, and an arm64 Python 3.11 unpacked from its .deb files. No debootstrap
# chroot: the container has no binfmt_misc, so qemu runs the interpreter with -L <root>, and
# `$WORK/bin/python3` (a shell script: qemu with that root) is the interpreter's
# sys.executable, so the processes a devnet starts run under qemu too. The package's
# dependencies (uvloop, msgpack, httptools, cryptography, aiohttp, Pillow, web3, the
# devnet's eth-tester and py-evm, ...) and the test tools are the aarch64 wheels PyPI serves,
# as pip resolves them for the wheel built here. Needs root (apt-get).
#
# What runs, in the arm64 interpreter, from a copy of tests/ (no source tree on the path):
#   1. the core's vector and property tests (identity, 1:1 encryption, recovery phrase,
#      blinding, swarm math, config encryption, onion layers);
#   2. the pure-Python suites a node and a client depend on: the storage RPC (parsing, every
#      method's handler, hostile input), the node's store with its schema migrations, the
#      node's config, keys, ZeroMQ CURVE links, HTTPS site and swarm view, and the client's
#      state database (migrations) and messages;
#   3. end to end: the integration suite's devnet (a registry running the devnet chain, the
#      file and community servers, 5 nodes, all aarch64 processes) and two of its tests: a
#      message stored at one member and retrieved at each other one, and onion requests
#      through three nodes.
#
#   ./ci/aarch64.sh [WORKDIR]     (default /tmp/session-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh # the project's virtual environment: pip, and maturin for the build
python3 -m pip install -q "maturin>=1.5,<2"
repo="$PWD"
work="$(realpath -m "${1:-/tmp/session-aarch64}")"
mkdir -p "$work/debs" "$work/root" "$work/bin"

dpkg --add-architecture arm64
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user-static

. ci/steps.sh # step NAME CMD...: a test step that fails does not stop the others

# Debian's toolchain (not rustup's): its arm64 std matches its rustc exactly.
build() {
  rm -rf "$work/dist"
  env PATH="/usr/bin:/bin:$PATH" RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo \
    CARGO_TARGET_DIR="$work/target" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    PYO3_CROSS_PYTHON_VERSION=3.11 \
    maturin build --release --target aarch64-unknown-linux-gnu -o "$work/dist"
}
build
wheel=$(ls "$work"/dist/session_network-*aarch64.whl)
echo "built $wheel"

# An arm64 Python 3.11 and the libraries it and the wheels link, unpacked (not installed).
unpack_python() {
  (cd "$work/debs" && apt-get download -qq \
    libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 python3.11-minimal:arm64 \
    libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 zlib1g:arm64 libexpat1:arm64 \
    libssl3:arm64 libffi8:arm64 libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 \
    libuuid1:arm64 libcrypt1:arm64 libtirpc3:arm64 libnsl2:arm64 libreadline8:arm64 \
    libncursesw6:arm64 libtinfo6:arm64 libdb5.3:arm64 libgssapi-krb5-2:arm64 libkrb5-3:arm64 \
    libk5crypto3:arm64 libkrb5support0:arm64 libcom-err2:arm64 libkeyutils1:arm64 media-types)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
}
unpack_python

# The wheel, its dependencies (with the devnet extra) and the test tools, as pip resolves
# them for aarch64 CPython 3.11; unpacked into one directory on PYTHONPATH.
dependencies() {
  rm -rf "$work/wheels" "$work/site"
  python3 -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 --abi abi3 --abi none --platform manylinux2014_aarch64 \
    --platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64 \
    --platform manylinux_2_34_aarch64 --platform linux_aarch64 -d "$work/wheels" \
    "$wheel[devnet]" pytest pytest-asyncio pytest-timeout pytest-benchmark hypothesis \
    prometheus-client
  for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/site"; done
}
dependencies

cat >"$work/bin/python3" <<EOF
#!/bin/sh
# The arm64 Python under qemu-user; -0 makes this script its sys.executable (children too).
exec qemu-aarch64-static -L "$work/root" -0 "\$0" "$work/root/usr/bin/python3.11" "\$@"
EOF
chmod +x "$work/bin/python3"
# The tests and the pytest configuration, without the source tree: `session` is the wheel's.
rm -rf "$work/tree" && mkdir -p "$work/tree"
cp -r "$repo/tests" "$repo/pyproject.toml" "$work/tree/"

run() {
  # $work/tree on the path: some test modules import helpers as `tests.…`
  (cd "$work/tree" && PYTHONPATH="$work/site:$work/tree" "$work/bin/python3" -P "$@")
}
run -c "import platform; from session import _core; print(platform.machine(), _core.build_info)"
# The timeout: a test's own bound (pytest-timeout) at 15x, as the emulated CPU is that slow.
pytest_aarch64() {
  run -m pytest -q -o timeout=1800 -m "not integration" "$@"
}
t=tests
step "core vectors and properties" pytest_aarch64 \
  $t/test_identity.py $t/test_protocol.py $t/test_mnemonic.py $t/test_blinding.py \
  $t/test_swarm.py $t/test_config_crypto.py $t/test_onion.py
step "storage RPC, node and client suites" pytest_aarch64 \
  $t/test_rpc.py $t/test_rpc_handler.py $t/test_rpc_bad_input.py $t/storage/test_store.py \
  $t/node/test_config.py $t/node/test_keys.py $t/node/test_links.py $t/node/test_http_site.py \
  $t/node/test_swarm_view.py $t/client/test_state.py $t/client/test_messages.py
# The registry's connection timeouts (10 s for a TLS handshake or a request's headers) are
# raised: while eight emulated processes start on two cores, the devnet's staking requests to
# the registry's chain endpoint took longer than that (the registry hung up: "TLS/SSL
# connection has been closed (EOF)").
e2e() {
  SESSION_REGISTRY_CONNECTIONS__TLS_HANDSHAKE_TIMEOUT=300 \
    SESSION_REGISTRY_CONNECTIONS__HEADER_TIMEOUT=300 \
    SESSION_REGISTRY_CONNECTIONS__BODY_TIMEOUT=300 \
    SESSION_TEST_READY_TIMEOUT=1200 run -m pytest -q -o timeout=3600 \
    "$t/integration/test_devnet.py::test_store_at_one_member_retrieve_at_another" \
    "$t/integration/test_devnet.py::test_onion_three_hops_to_node"
}
step "devnet end to end (registry, 2 servers, 5 nodes)" e2e
# 4. Every other unit suite (CLI, TUI, communities, files, groups, names, HTTP/1.1, services,
# registry, the rest of the node and client). Deselected, because this harness is not an
# install: the printed systemd units name the console scripts pip would have made (the
# wheels are unpacked onto PYTHONPATH, so there are none); the contract check runs
# ci/contracts.py with vyper (not copied, not an aarch64 dependency); and the start-up-imports
# check sees zipfile, which the emulated interpreter's `site` loads through this host's own
# dist-packages .pth files (qemu -L falls back to host paths), before any of our code.
step "every other unit suite" pytest_aarch64 \
  $t/cli $t/client $t/community $t/fileserver $t/groups $t/names $t/http1 $t/service \
  $t/registry $t/storage $t/node $t/tui $t/test_attachments.py $t/test_attachments_stream.py \
  $t/test_attachments_stream_scheme.py $t/test_avatar.py $t/test_blinded_dm.py $t/test_text.py \
  $t/test_xed25519.py $t/test_devnet_control.py \
  --deselect $t/fileserver/test_fs_cli.py::test_systemd_unit_runs_the_command \
  --deselect $t/service/test_systemd.py::test_printed_unit_runs_this_install \
  --deselect $t/registry/test_staking_contract.py::test_artifact_is_the_compiled_source \
  --deselect $t/node/test_startup_imports.py

steps_summary "step times (aarch64 under qemu-user)"
