# Typed stubs of the private native module session._core (checked by mypy.stubtest in CI).
from typing import Any

__version__: str
build_info: dict[str, Any]
