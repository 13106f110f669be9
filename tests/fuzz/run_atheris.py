#!/usr/bin/env python3
"""Run one harness of ``harnesses.py`` under atheris (libFuzzer for Python).

    python3 tests/fuzz/run_atheris.py NAME [libFuzzer options] [CORPUS_DIR...]

``ci/fuzz.sh`` calls it with a time limit and the kept corpus. The ``session`` package is
instrumented for coverage as the harnesses import it.
"""

from __future__ import annotations

import os
import sys

import atheris  # type: ignore[import-untyped]  # ships no type information

with atheris.instrument_imports(include=["session"]):
    import harnesses


#: libFuzzer re-runs this script without the harness name (``-merge=1``, ``-fork``): the name
#: travels in the environment.
_ENV = "SESSION_FUZZ_HARNESS"


def main() -> None:
    """Pick the harness named by the first argument; pass the rest to libFuzzer."""
    args = sys.argv[1:]
    if args and args[0] in harnesses.HARNESSES:
        os.environ[_ENV] = args.pop(0)
    name = os.environ.get(_ENV, "")
    if name not in harnesses.HARNESSES:
        sys.exit(f"usage: run_atheris.py {{{','.join(harnesses.HARNESSES)}}} [libFuzzer args]")
    atheris.Setup([sys.argv[0], *args], harnesses.HARNESSES[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
