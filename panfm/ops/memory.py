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

import collections
import ctypes
import gc
import itertools
import logging
import platform
import threading
import time

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


# Python's cyclic garbage collector, run by the clock where nothing waits for it (`configure_gc`,
# `collect_garbage`). Automatic collections only as a safety net: a young collection every
# 200,000 net allocations (default 700), which the cycles' own collections keep from coming.
GC_THRESHOLD = (200_000, 50, 50)
FULL_EVERY_CYCLES = 10  # every tenth cycle's collection is a full one (all but the frozen start)
_cycles = itertools.count(1)


def configure_gc() -> None:
    """At the clock's start: freeze what the start built, leave collections to `collect_garbage`.

    Every collection holds the GIL from start to end, and the cycle's write and the lease round
    wait for it after each database round trip. At the default thresholds a 333-firewall clock
    spent ~1-1.3 s of every minute collecting, in bursts where the cycle allocates: full
    collections of the ~120,000 tracked objects took 40-150 ms, ~6 a minute, at the slot's start.
    With young collections every 50,000 allocations they were rarer but came at the same place,
    20-63 ms each: the cycle trips any threshold while its samples are alive. `gc.freeze()` takes
    the start's objects (modules, settings, the jobs' context) out of every collection;
    `collect_garbage` collects after each cycle's write (docs/benchmarks.md, "The write's
    server side, the GIL and the collector"; `bench/gc_pauses.py`).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    if _note_automatic not in gc.callbacks:
        gc.callbacks.append(_note_automatic)


# The safety net's collections: counted, and the long ones (a pause the cycle did not choose)
# kept with their generation, thread and time, to be logged at DEBUG ("[CLOCK GC]") by
# `log_automatic_collections` after the cycle: never from the callback itself, which runs inside
# whatever allocated (a log line written there could re-enter a stream's write). Collections by
# `collect_garbage` are not counted: `_explicit` is set around them.
AUTOMATIC_LOG_MS = 10.0
automatic_collections = 0
_long: collections.deque[tuple[int, str, float]] = collections.deque(maxlen=100)
_explicit = False
_started = 0.0


def _note_automatic(phase: str, info: dict[str, int]) -> None:
    global automatic_collections, _started
    if _explicit:
        return
    if phase == "start":
        _started = time.perf_counter()
        return
    automatic_collections += 1
    ms = (time.perf_counter() - _started) * 1000.0
    if ms >= AUTOMATIC_LOG_MS:
        _long.append((info.get("generation", -1), threading.current_thread().name, ms))


def log_automatic_collections() -> int:
    """Log the long automatic collections noted since the last call ("[CLOCK GC]", DEBUG); return how many."""
    n = 0
    while _long:
        generation, thread, ms = _long.popleft()
        log.debug("[CLOCK GC] automatic collection of generation %d in %s: %.1f ms", generation, thread, ms)
        n += 1
    return n


def collect_garbage() -> int:
    """After a fast cycle's write, the quiet point of the slot: the young generations, every tenth time all.

    Returns the generation collected. Trees and samples hold no cycles (their reference counts
    free them); this finds what does (exceptions and their frames, a closed client's parts).
    """
    global _explicit
    generation = 2 if next(_cycles) % FULL_EVERY_CYCLES == 0 else 1
    _explicit = True
    try:
        gc.collect(generation)
    finally:
        _explicit = False
    return generation
