#!/usr/bin/env bash
# The README's main command.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/env.sh
./ci/install.sh
exec python3 -m session.cli.demo "$@"
