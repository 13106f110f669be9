"""How a one-shot bench tool hands over its figures (``python -m bench.footprint``,
``python -m bench.http_site``): one JSON document printed, and with ``--json PATH`` the same
text written there too."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The ``--json PATH`` option :func:`publish` reads."""
    parser.add_argument("--json", type=Path, help="also write the figures here")


def publish(doc: dict[str, Any], path: Path | None) -> None:
    """Print ``doc`` as indented JSON; also write it to ``path`` when one is given."""
    text = json.dumps(doc, indent=2)
    print(text)
    if path is not None:
        path.write_text(text + "\n")
