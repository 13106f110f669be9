"""A node's footprint on a small machine: idle RSS, start-up time, and what each import costs.

    python -m bench.footprint [--idle 5] [--json out.json]

1. A registry (``session-node registry``) and one node (``python -P -m session.node``, as the
   devnet and the systemd unit start it) on 127.0.0.1, in a temporary directory. Start-up is
   the time from starting the node's process to its ``READY=1`` on ``$NOTIFY_SOCKET`` (the
   systemd notification: registered, node list fetched, both sites listening). After
   ``--idle`` seconds of idling, its memory is read from ``/proc/<pid>/status`` and
   ``smaps_rollup``.
2. The same-run baseline: a bare interpreter's RSS (``python -c pass``), the floor any Python
   process pays.
3. Imports: the RSS each of the node's dependencies adds to a fresh interpreter that already
   imported the ones listed before it (:data:`MODULES`), and ``python -X importtime`` of the
   node's modules, summed per top-level package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import add_json_option, publish

#: The node's imports, in an order that puts shared dependencies first: each is reported with
#: the RSS it adds on top of all those before it (its marginal cost in the node).
MODULES = (
    "asyncio",
    "ssl",
    "sqlite3",
    "uvloop",
    "msgpack",
    "session._core",
    "httptools",
    "session.http1.server",
    "session.http1.client",
    "session.node.daemon",
)

_RSS_PROBE = (
    "import sys, importlib\n"
    "for m in sys.argv[1:]: importlib.import_module(m)\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])\n"
)


def _kb(status: str, field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) if m else 0


def rss_after_import(*modules: str) -> int:
    """KiB of RSS of a fresh interpreter after importing ``modules`` (none: the bare floor)."""
    out = subprocess.run(
        [sys.executable, "-P", "-c", _RSS_PROBE, *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(out.stdout.strip())


def import_times(module: str = "session.node.daemon") -> dict[str, float]:
    """Milliseconds of ``python -X importtime -c 'import module'``, per top-level package
    (self times summed, so nothing is counted twice)."""
    out = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    per: dict[str, float] = {}
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip().split(".")[0]
        per[name] = per.get(name, 0.0) + int(parts[0]) / 1000
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def _wait_ready(sock: socket.socket, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the node did not notify READY=1")
        sock.settimeout(left)
        msg = sock.recv(65536).decode()
        if "READY=1" in msg:
            return msg


def node_footprint(idle: float = 5.0) -> dict[str, Any]:
    """Start a registry and a node; the node's start-up seconds and idle memory (KiB)."""
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        d = Path(tmp)
        registry = subprocess.Popen(
            [
                *(sys.executable, "-P", "-m", "session.cli.node", "registry", "--port", "0"),
                *("--data-dir", str(d / "registry"), "--log-level", "warning"),
                "--devnet-chain",  # a registry lists a staking contract's nodes
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(d / "notify"))
        node: subprocess.Popen[bytes] | None = None
        try:
            assert registry.stdout is not None
            url = json.loads(registry.stdout.readline())["url"]
            env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_NODE_")}
            env["NOTIFY_SOCKET"] = str(d / "notify")
            sets = {
                "data_dir": str(d / "node"),
                "network.listen_host": "127.0.0.1",
                "network.https_port": "0",
                "network.zmq_port": "0",
                "admin.port": "0",
                "registry.url": url,
                "logging.level": "warning",
            }
            args = [sys.executable, "-P", "-m", "session.node"]
            for k, v in sets.items():
                args += ["--set", f"{k}={v}"]
            # a first start creates the key and the TLS certificate (one-time work): not timed
            first = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
            _wait_ready(notify, 120)
            first.terminate()
            first.wait(60)
            t0 = time.monotonic()
            node = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
            _wait_ready(notify, 120)
            start_s = time.monotonic() - t0
            time.sleep(idle)  # the measurement: memory after idling, not a wait for a condition
            status = Path(f"/proc/{node.pid}/status").read_text()
            rollup = Path(f"/proc/{node.pid}/smaps_rollup").read_text()
            return {
                "start_s": round(start_s, 3),
                "rss_kb": _kb(status, "VmRSS"),
                "hwm_kb": _kb(status, "VmHWM"),
                "anon_kb": _kb(status, "RssAnon"),
                "file_kb": _kb(status, "RssFile"),
                "private_kb": _kb(rollup, "Private_Clean") + _kb(rollup, "Private_Dirty"),
                "shared_kb": _kb(rollup, "Shared_Clean") + _kb(rollup, "Shared_Dirty"),
            }
        finally:
            for p in (node, registry):
                if p is not None and p.poll() is None:
                    p.terminate()
                    p.wait(60)
            notify.close()


def measure(idle: float = 5.0) -> dict[str, Any]:
    """Every figure of the module docstring, as one JSON-ready dict."""
    floor = rss_after_import()
    imports: dict[str, int] = {}
    before = floor
    for i, m in enumerate(MODULES):
        after = rss_after_import(*MODULES[: i + 1])
        imports[m] = after - before
        before = after
    return {
        "python": sys.version.split()[0],
        "machine": os.uname().machine,
        "bare_interpreter_rss_kb": floor,
        "node": node_footprint(idle),
        "import_rss_kb": imports,
        "import_ms_by_package": dict(list(import_times().items())[:15]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    p.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    add_json_option(p)
    args = p.parse_args(argv)
    publish(measure(args.idle), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
