"""A non-editable install works where operators run it: the wheel (built once per run with
maturin, as ``pip install .`` and ``pipx install .`` build it) installed into a fresh virtual
environment, used with ``PYTHONPATH`` unset from a directory holding a ``session/`` source tree
without the built extension (a checkout): ``session-node version`` reports the core's build and
``session-node devnet`` starts its children from the installed package, not from that tree.

Bounded: the build reuses the Rust build cache of the editable install (``core_ext/target``,
or ``$CARGO_TARGET_DIR``), so it relinks rather than recompiles; the fresh environment gets the
project's dependencies from the running environment (a ``.pth`` line, not a download), and the
wheel itself with ``--no-deps``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import site
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The first test builds the wheel (about 1-2 min with a warm Rust cache): a longer timeout.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]


def _env_without_pythonpath() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment holding the wheel built from this checkout; its ``bin/``."""
    maturin = shutil.which("maturin")
    if maturin is None or not (ROOT / "core_ext").is_dir():
        pytest.skip("maturin or the Rust sources are not here")
    base = tmp_path_factory.mktemp("install")
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "core_ext" / "target"))
    subprocess.run(
        [maturin, "build", "--release", "--quiet", "-o", str(base / "dist")],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=900,
        capture_output=True,
    )
    (wheel,) = (base / "dist").glob("session_network-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    # the dependencies: the running environment's site-packages, after the fresh one's own
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "_running_env_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
        env=_env_without_pythonpath(),
    )
    yield venv / "bin"


@pytest.fixture
def checkout_like(tmp_path: Path) -> Path:
    """A directory with a ``session/`` package that fails on import (a source tree without the
    built extension, as a checkout next to a non-editable install)."""
    decoy = tmp_path / "checkout" / "session"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text(
        'raise ImportError("the session/ of the current directory was imported")\n'
    )
    return decoy.parent


def test_installed_package_reports_the_core_build(installed: Path, checkout_like: Path) -> None:
    out = subprocess.run(
        [installed / "session-node", "version"],
        cwd=checkout_like,
        env=_env_without_pythonpath(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("session-node 0.") and '"target_arch"' in out.stdout
    where = subprocess.run(
        [installed / "python", "-P", "-c", "import session; print(session.__file__)"],
        cwd=checkout_like,
        env=_env_without_pythonpath(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert where.startswith(str(installed.parent)), where  # the wheel, not the checkout


def test_devnet_from_a_checkout_runs_the_installed_package(
    installed: Path, checkout_like: Path, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [installed / "session-node", "devnet", "--nodes", "1", "--data-dir", tmp_path / "net"],
        cwd=checkout_like,
        env=_env_without_pythonpath(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready line, or EOF if the devnet failed
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert line, err
    doc = json.loads(line)
    assert doc["ready"] is True and len(doc["nodes"]) == 1
    assert doc["chain"]["contract"].startswith("0x")  # the contract artifact is in the wheel
    assert proc.returncode == 0, err
