"""Keep the C allocator's idle memory small: big blocks mapped on their own, free pages returned (glibc only).

A fast cycle and the inventories beside it allocate and free tens of MB of native memory (TLS
buffers, answer bodies, SQLite pages, objects too big for Python's own allocator). glibc keeps
what was freed inside its arenas for reuse, and at 1,000 firewalls that idle reserve was about
60 MB of the clock's RSS (bench/clock_memory.py). `malloc_trim(0)` returns the whole free pages
of every arena to the system; it costs a few ms once a cycle. And `configure_allocator()` (at the
clock's start) fixes glibc's mmap threshold at 128 KiB: by default a freed mapped block raises it
(up to 32 MiB), after which every answer body and decoded log (0.1-1 MB each, thousands per
window) is carved out of the arenas and leaves holes there that neither reuse nor `malloc_trim`
closes: 100 MB of free arena memory at 1,000 firewalls. Elsewhere (musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import platform

log = logging.getLogger("panfm.clock")


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (malloc_trim and mallopt as declared there), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()
M_MMAP_THRESHOLD = -3  # mallopt parameter numbers (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024


def configure_allocator() -> bool:
    """Fix glibc's mmap threshold (blocks of 128 KiB or more get mappings of their own); False elsewhere."""
    return _LIBC is not None and bool(_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is not available."""
    if _LIBC is None:
        return False
    try:
        _LIBC.malloc_trim(0)
    except Exception:  # never worth a cycle
        log.debug("malloc_trim failed", exc_info=True)
        return False
    return True


# Python's cyclic garbage collector, tuned for the clock (`configure_gc`, once at its start).
GC_THRESHOLD = (50_000, 20, 10)  # young collection every 50,000 net allocations (default 700)


def configure_gc() -> None:
    """Freeze what the start built and collect the young generation 70x less often.

    At the default thresholds a 333-firewall clock spent ~1.3 s of every minute in the
    collector, all of it holding the GIL, in bursts where the cycle allocates: every answer's
    XML tree (thousands of elements, alive while it is read) was walked by young collections and
    promoted, and full collections of the ~120,000 tracked objects took 50-150 ms each, ~6 a
    minute, at the slot's start, where the write and the lease round wait for the GIL
    (docs/benchmarks.md, "The clock's garbage collector").
    `gc.freeze()` moves the start's objects (modules, settings, the jobs' context) out of every
    collection; a young collection every 50,000 allocations finds most temporaries already freed
    by their reference counts (trees hold no cycles), so it walks far fewer objects in all:
    ~0.1 s a minute, in ~3 pauses. Cyclic garbage is still collected, later.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
