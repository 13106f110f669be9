"""``session-fileserver``: every subcommand, and ``run`` as a real process that serves an upload
and exits cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from session.fileserver.cli import main
from session.fileserver.config import FileServerConfig, load_config
from session.fileserver.store import file_id
from session.service.config import as_dict


def test_example_config_is_the_defaults(tmp_path: Path) -> None:
    text = CliRunner().invoke(main, ["example-config"]).output
    path = tmp_path / "fs.toml"
    path.write_text(text)
    assert as_dict(load_config(path, env={})) == as_dict(FileServerConfig())
    assert tomllib.loads(text)["storage"]["default_ttl"] == 14 * 86_400


def test_systemd_unit_runs_the_command() -> None:
    out = CliRunner().invoke(main, ["systemd-unit"]).output
    command = Path(sys.executable).parent / "session-fileserver"  # this install's, absolute
    assert f"ExecStart={command} run --config" in out


def test_keygen_show_id_check_config(tmp_path: Path) -> None:
    r = CliRunner()
    d = str(tmp_path / "fs")
    got = r.invoke(main, ["check-config", "--data-dir", d])
    assert got.exit_code == 0 and "configuration ok" in got.output
    got = r.invoke(main, ["keygen", "--data-dir", d])
    assert got.exit_code == 0 and "ed25519:" in got.output
    assert r.invoke(main, ["keygen", "--data-dir", d]).exit_code == 1  # no silent replacement
    keys = json.loads(r.invoke(main, ["show-id", "--json", "--data-dir", d]).output)
    assert len(keys["pubkey_ed25519"]) == 64 and len(keys["pubkey_x25519"]) == 64
    got = r.invoke(
        main,
        ["check-config", "--data-dir", d],
        env={"SESSION_FILESERVER_STORAGE__DEFAULT_TTL": str(400 * 86_400)},
    )
    assert got.exit_code == 1 and "storage.default_ttl must be" in got.output


@pytest.mark.integration
async def test_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    cfg = tmp_path / "fs.toml"
    cfg.write_text("[storage]\ndefault_ttl = 3600\n[network]\nport = 0\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "session.fileserver", "run", "--config", str(cfg), "--data-dir",
         str(tmp_path / "data"), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SESSION_FILESERVER_STORAGE__MAX_TTL": "7200"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["ready"] and ready["url"].startswith("https://127.0.0.1:")
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with http.post(ready["url"] + "/file", data=b"blob") as r:
                assert r.status == 200 and (await r.json())["id"] == file_id(b"blob")
            async with http.get(f"{ready['url']}/file/{file_id(b'blob')}/info") as r:
                info = await r.json()
        assert info["expires"] - info["uploaded"] == pytest.approx(3600, abs=1)
        assert (tmp_path / "data" / "store" / "files" / file_id(b"blob")).read_bytes() == b"blob"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
