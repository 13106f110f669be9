#!/usr/bin/env bash
# Cross-build the aarch64 (Raspberry Pi 4/5, 64-bit OS) wheel on an x86-64 Debian 12 host and run
# the native core's vector and property tests with it under qemu-user. Not part of ./ci/test.sh
# (about 10 min on 2 cores: a release build from scratch, then emulation).
#
# Everything comes from Debian's archive (rustup cannot download targets on the build machine):
# rustc-web/cargo-web (Rust 1.96, bookworm's security-updated toolchain) with the matching
# standard library for arm64 (libstd-rust-web-dev:arm64), the gcc cross linker, qemu-user-static,
# and an arm64 Python 3.11 unpacked from its .deb files (no debootstrap: the container has no
# binfmt_misc for a chroot, so qemu runs the interpreter with -L <root>). The test dependencies
# (pytest, hypothesis, PyNaCl, protobuf) are aarch64 wheels from PyPI. Needs root (apt-get).
#
#   ./ci/aarch64.sh [WORKDIR]     (default /tmp/session-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="${1:-/tmp/session-aarch64}"
mkdir -p "$work/debs" "$work/root" "$work/site" "$work/pkg"

dpkg --add-architecture arm64
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user-static

# Debian's toolchain (not rustup's): its arm64 std matches its rustc exactly.
env PATH="/usr/bin:/bin:$PATH" RUSTC=/usr/bin/rustc CARGO=/usr/bin/cargo \
  CARGO_TARGET_DIR="$work/target" \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  PYO3_CROSS_PYTHON_VERSION=3.11 \
  maturin build --release --target aarch64-unknown-linux-gnu -o "$work/dist"
wheel=$(ls "$work"/dist/session_network-*aarch64.whl)
echo "built $wheel"

# An arm64 Python 3.11 and the libraries it links, unpacked (not installed) into $work/root.
(cd "$work/debs" && apt-get download -qq \
  libc6:arm64 libgcc-s1:arm64 python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
  libpython3.11-stdlib:arm64 zlib1g:arm64 libexpat1:arm64 libssl3:arm64 libffi8:arm64 \
  libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 libuuid1:arm64 libcrypt1:arm64 \
  libtirpc3:arm64 libnsl2:arm64 libreadline8:arm64 libncursesw6:arm64 libtinfo6:arm64 \
  libdb5.3:arm64 libgssapi-krb5-2:arm64 libkrb5-3:arm64 libk5crypto3:arm64 \
  libkrb5support0:arm64 libcom-err2:arm64 libkeyutils1:arm64 media-types)
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done

python3 -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
  --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 -d "$work/wheels" \
  pytest hypothesis pynacl "protobuf>=7.35"
for w in "$work"/wheels/*.whl; do python3 -m zipfile -e "$w" "$work/site"; done
python3 -m zipfile -e "$wheel" "$work/pkg"

run() {
  PYTHONPATH="$work/pkg:$work/site:$repo/tests" \
    qemu-aarch64-static -L "$work/root" "$work/root/usr/bin/python3.11" "$@"
}
run -c "from session import _core; print(_core.build_info)"
cd tests
# -o addopts=: the project's pytest options name plugins (benchmark, timeout) not installed here
run -m pytest -q -p no:cacheprovider -o addopts= test_identity.py test_protocol.py test_mnemonic.py \
  test_blinding.py test_swarm.py test_config_crypto.py
