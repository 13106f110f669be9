#!/usr/bin/env bash
# The README's pipx install, as an operator runs it: pipx (from PyPI, in a virtual environment
# of its own made with the system's Python, which refuses `pip install` under PEP 668) installs
# this checkout with the devnet extra, `pipx install '<checkout>[devnet]'`, every dependency
# from PyPI; PIPX_HOME and PIPX_BIN_DIR in a temporary directory, nothing of the project's
# .venv on PATH or PYTHONPATH. Then, from a directory that is not the checkout:
#   - `session-node version` reports the core's build info (the extension pip built);
#   - `session --help` works;
#   - `session-node devnet --nodes 3` starts (its JSON ready line: registry, chain contract,
#     3 nodes; a bounded wait on that line, not a sleep) and stops on SIGINT with exit code 0.
# The Rust build reuses the cache of ./ci/install.sh's build (CARGO_TARGET_DIR, which maturin
# honours inside pip's isolated build), so it relinks rather than recompiles.
#
#   ./ci/pipx.sh            (PYTHON_BASE: the base interpreter, default /usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
base="${PYTHON_BASE:-/usr/bin/python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# nothing of the project's own environment (its .venv, PYTHONPATH): the install stands alone
path="$(tr ':' '\n' <<<"$PATH" | grep -vxF "${VIRTUAL_ENV:-/nonexistent}/bin" | paste -sd:)"
env_clean=(env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH="$tmp/bin:$path"
  PIPX_HOME="$tmp/pipx" PIPX_BIN_DIR="$tmp/bin" PIPX_MAN_DIR="$tmp/man"
  CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/core_ext/target}")

"$base" -m venv "$tmp/pipx-venv"
"$tmp/pipx-venv/bin/python" -m pip install --quiet pipx
"${env_clean[@]}" "$tmp/pipx-venv/bin/pipx" install --python "$base" "$repo[devnet]"
echo "[${SECONDS} s] installed"

mkdir "$tmp/elsewhere"
cd "$tmp/elsewhere"
version="$("${env_clean[@]}" session-node version)"
echo "$version"
grep -q '"target_arch"' <<<"$version" || { echo "no core build info" >&2; exit 1; }
"${env_clean[@]}" session --help >/dev/null

# The devnet, run by the pipx install from this directory; the ready line, then SIGINT.
"${env_clean[@]}" "$base" - "$tmp/bin/session-node" "$tmp/net" <<'EOF'
import json, selectors, signal, subprocess, sys, time

exe, net = sys.argv[1], sys.argv[2]
proc = subprocess.Popen(
    [exe, "devnet", "--nodes", "3", "--data-dir", net],
    stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
)
try:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    line = proc.stdout.readline() if sel.select(timeout=300) else ""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
if not line:
    sys.exit(f"devnet did not become ready:\n{err}")
doc = json.loads(line)
assert doc["ready"] is True and len(doc["nodes"]) == 3, doc
assert doc["chain"]["contract"].startswith("0x"), doc
assert proc.returncode == 0, (proc.returncode, err)
print(f"devnet of 3 nodes ready in {doc.get('seconds')} s, stopped with exit code 0")
EOF
echo "[${SECONDS} s] pipx install: ok"
