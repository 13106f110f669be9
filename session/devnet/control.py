"""Running a devnet in the foreground (``session-node devnet``, ``python -m session.devnet``):
:func:`main` starts it, writes ``DIR/nodes.json``, prints one JSON line saying where everything
is, serves the loopback control site, and stops everything on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from session.devnet.net import Devnet, DevnetError
from session.registry.extra import devnet_chain_missing


def _control_server(net: Devnet, host: str, port: int) -> ThreadingHTTPServer:
    """The loopback control site (``GET /nodes``, ``POST /add``, ``POST /remove/<i>``)."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/nodes":
                self._send(200, net.node_list())
            else:
                self._send(404, {"error": "unknown path"})

        def do_POST(self) -> None:
            try:
                status, doc = self._post()
            except DevnetError as e:
                status, doc = 500, {"error": str(e)}
            self._send(status, doc)

        def _post(self) -> tuple[int, Any]:
            if self.path == "/add":
                n = net.add_node()
                return 200, {"name": n.name, "url": n.url, "pubkey_ed25519": n.pubkey_ed25519}
            if not self.path.startswith("/remove/"):
                return 404, {"error": "unknown path"}
            tail = self.path.removeprefix("/remove/")
            if not (tail.isascii() and tail.isdigit()):
                return 400, {"error": "POST /remove/<i> takes a node's index (0, 1, ...)"}
            idx = int(tail)
            if idx >= len(net.nodes) or not net.nodes[idx].running:
                return 404, {"error": f"no running node {idx}"}
            net.remove_node(idx)
            return 200, {"removed": net.nodes[idx].name}

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _ready_line(net: Devnet, control_port: int, seconds: float) -> dict[str, Any]:
    """The one JSON line ``main`` prints once the devnet is up: where everything is."""
    return {
        "ready": True,
        "dir": str(net.dir),
        "nodes_json": str(net.dir / "nodes.json"),
        "registry": net.registry_url,
        # the devnet chain (rpc, chain_id, contract, token, ...): for `session-node stake status`
        "chain": net.chain,
        "control": f"http://127.0.0.1:{control_port}",
        "nodes": [
            {"name": n.name, "url": n.url, "admin": n.admin_url, "pubkey_ed25519": n.pubkey_ed25519}
            for n in net.nodes
        ],
        "file_server": net.file_server.entry.to_json() if net.file_server else None,
        "community_server": net.community.entry.to_json() if net.community else None,
        "seconds": seconds,
    }


def _report_exits(net: Devnet) -> None:
    """Say on stderr which node processes exited on their own (not killed by the devnet)."""
    for n in net.nodes:
        if (
            n.proc is not None
            and n.proc.poll() not in (None, 0)
            and n.proc.returncode != -signal.SIGKILL
        ):
            log = n.data_dir / "process.log"
            print(f"{n.name} exited with {n.proc.returncode}; see {log}", file=sys.stderr)
            n.proc = None


def main(
    nodes: int = 5,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    control_port: int = 0,
    seed: str = "devnet",
    log_level: str = "warning",
    uvloop: bool = True,
    base_port: int | None = None,
    ready_timeout: float = 90.0,
    out: Any = None,
    proxy_allow: Sequence[str] = (),
) -> int:
    """Run a devnet in the foreground until SIGINT/SIGTERM; returns the exit code."""
    out = out or sys.stdout
    missing = devnet_chain_missing()
    if missing is not None:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    d = Path(data_dir) if data_dir is not None else Path.cwd() / "devnet"
    net = Devnet(
        d,
        nodes,
        host=host,
        seed=seed,
        log_level=log_level,
        uvloop=uvloop,
        base_port=base_port,
        ready_timeout=ready_timeout,
        proxy_allow=proxy_allow,
    )
    stop = threading.Event()
    prev = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        t0 = time.monotonic()
        try:
            net.start()
        except DevnetError as e:
            print(f"devnet failed to start: {e}", file=sys.stderr)
            return 1
        ctl = _control_server(net, "127.0.0.1", control_port)
        seconds = round(time.monotonic() - t0, 2)
        print(json.dumps(_ready_line(net, ctl.server_address[1], seconds)), file=out, flush=True)
        while not stop.wait(1.0):
            _report_exits(net)
        ctl.shutdown()
        return 0
    finally:
        net.stop()
        for s, h in prev.items():
            signal.signal(s, h)
