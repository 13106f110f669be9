"""Compile the staking contracts with vyper into session/registry/contracts/artifacts.json.

    python ci/contracts.py           # rewrite the artifact after editing a .vy source
    python ci/contracts.py --check   # exit 1 if the artifact differs from a fresh compile

The artifact is what the registry, the devnet and the operator commands deploy and read, so the
vyper compiler is only needed to change a contract (tests run the check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import vyper
from vyper.compiler import compile_code

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "session" / "registry" / "contracts"
SOURCES = ("staking", "devtoken")


def build() -> str:
    """The artifact's JSON text compiled from the sources."""
    out: dict[str, object] = {"vyper": vyper.__version__, "contracts": {}}
    for name in SOURCES:
        src = (CONTRACTS / f"{name}.vy").read_text()
        res = compile_code(src, output_formats=["abi", "bytecode"], contract_path=f"{name}.vy")
        out["contracts"][name] = {"abi": res["abi"], "bytecode": res["bytecode"]}  # type: ignore[index]
    return json.dumps(out, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = build()
    target = CONTRACTS / "artifacts.json"
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            sys.stderr.write(f"{target} differs from the compiled sources: run ci/contracts.py\n")
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
