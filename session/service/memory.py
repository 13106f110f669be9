"""Keeping freed request-sized buffers in the process instead of handing them back to the OS.

A 10 MB file through an onion path makes every process on it allocate and free several
10 MB buffers per request (the received body, the peeled layer, the framed answer). glibc's
malloc serves such sizes with fresh ``mmap`` pages or trims them off the heap when freed, so
each one is page-faulted in and zeroed again on the next request: measured here, two 10 MB
copies cost 11 ms of CPU that way against 2.5 ms with the memory reused, and the 10 MB
transfer's CPU over all processes fell by 18 % (upload) and 29 % (download) with the setting
below (docs/performance.md).

:func:`keep_large_buffers` sets glibc's ``M_MMAP_THRESHOLD`` to 32 MiB (blocks below it come
from the heap) and ``M_TRIM_THRESHOLD`` to 64 MiB (the heap's free top is returned to the OS
only beyond that), so a service keeps up to about 64 MiB of freed heap for its next large
request. An operator who sets glibc's own ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` keeps them; on a C library without ``mallopt`` it does nothing.
"""

from __future__ import annotations

import os

#: ``mallopt`` parameters (glibc ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (an onion request of the largest file included).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free heap kept before trimming.
TRIM_THRESHOLD = 64 * 1024 * 1024
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_large_buffers() -> bool:
    """Tune glibc's malloc as the module docstring says (once, at a service's start); whether
    it was applied."""
    if any(name in os.environ for name in _ENV):
        return False
    # imported here: ctypes adds 0.6 MB of RSS to every node, which calls this only when
    # limits.keep_large_buffers is on (off by default; docs/performance.md, "A node's footprint")
    import ctypes  # noqa: PLC0415 - measured, see above

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has it as a no-op; macOS lacks it)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


__all__ = ["keep_large_buffers"]
