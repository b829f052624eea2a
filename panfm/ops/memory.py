"""Give the C allocator's free memory back to the system after each fast cycle (glibc only).

A fast cycle and the inventories beside it allocate and free tens of MB of native memory (TLS
buffers, answer bodies, SQLite pages, objects too big for Python's own allocator). glibc keeps
what was freed inside its arenas for reuse, and at 1,000 firewalls that idle reserve was about
60 MB of the clock's RSS (bench/clock_memory.py). `malloc_trim(0)` returns the whole free pages
of every arena to the system; it costs a few ms once a cycle. Elsewhere (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import logging
import platform
from collections.abc import Callable

log = logging.getLogger("panfm.clock")


def _trimmer() -> Callable[[], None] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


_TRIM = _trimmer()


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is not available."""
    if _TRIM is None:
        return False
    try:
        _TRIM()
    except Exception:  # never worth a cycle
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True
