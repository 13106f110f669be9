"""``python -m bench.load SCENARIO [options]`` (see :mod:`bench.load.cli`)."""

import sys

from bench.load.cli import main

sys.exit(main())
