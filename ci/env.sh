# Sourced by the ci scripts: make sure commands run inside the project's virtual environment.
# Debian's and Raspberry Pi OS's Python refuse `pip install` outside a virtual environment
# (PEP 668), so the scripts create `.venv` beside the checkout with the system's python3 (or
# $PYTHON) unless one is already active, and put it first on PATH.
if [ -z "${VIRTUAL_ENV:-}" ]; then
  _venv="${SESSION_VENV:-$PWD/.venv}"
  if [ ! -x "$_venv/bin/python3" ]; then
    "${PYTHON:-python3}" -m venv "$_venv"
  fi
  export VIRTUAL_ENV="$_venv"
  export PATH="$_venv/bin:$PATH"
  unset _venv
fi
