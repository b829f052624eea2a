"""Where the clock's memory grows: the real clock in this process under tracemalloc (issue 17).

    .venv/bin/python bench/clock_memory.py --devices 200 --faults "blackhole:2%,slow:5%" \
        --interval 10 --minutes 16 --warmup-minutes 6 --every-minutes 5

Starts `python -m panos_sim` and registers its devices in a fresh data folder (pinned), then
runs `clock.main()` in this process (its scheduler, jobs and threads, exactly as `python
clock.py` runs them) with tracemalloc on. A side thread takes a snapshot after the warm-up and
every `--every-minutes` after it, and prints, for each, the process RSS, tracemalloc's traced
total and the allocation sites (file:line, `--frames` deep) that grew most since the warm-up
snapshot. At the end it stops the clock with SIGTERM, as an operator would. tracemalloc
slows the clock (every allocation is recorded): the figures of record for RSS come from
`bench/clock_scale.py` (`make soak`); this script names what grows.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import linecache
import os
import sys
import tempfile
import threading
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reliability.harness import Procs, run_clock_here  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def pymalloc_arenas() -> str:
    """pymalloc's arenas now (its own summary, `sys._debugmallocstats`, read from a pipe on fd 2)."""
    read_fd, write_fd = os.pipe()
    saved = os.dup(2)
    try:
        os.dup2(write_fd, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write_fd)
    with os.fdopen(read_fd, "r", errors="replace") as pipe:
        text = pipe.read()
    keep = ("# arenas allocated current", "# bytes in allocated blocks", "# bytes in available blocks",
            "Total")
    return "; ".join(" ".join(line.split()) for line in text.splitlines() if line.startswith(keep))


def deep_size(root: object, seen: set[int]) -> tuple[int, int]:
    """Bytes and objects reachable from `root` and not yet in `seen` (modules, types and code excluded)."""
    size = count = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, types.FunctionType, types.CodeType,
                                                 types.BuiltinFunctionType, threading.Thread)):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj, 0)
        count += 1
        stack.extend(gc.get_referents(obj))
    return size, count


def census(top: int) -> str:
    """Python objects by type, and what the clock's context and collector hold (attribute by attribute)."""
    objects = gc.get_objects()
    by_type: dict[str, int] = {}
    for obj in objects:
        name = type(obj).__name__
        by_type[name] = by_type.get(name, 0) + 1
    lines = [f"gc-tracked objects {len(objects)}: " + ", ".join(
        f"{k} {v}" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:top])]
    holders = [o for o in objects if type(o).__name__ in ("ClockContext", "Collector")]
    del objects
    for holder in holders:
        seen: set[int] = set()  # per holder: the Collector's own breakdown, though the context holds it too
        sizes = []
        for attr, value in vars(holder).items():
            size, count = deep_size(value, seen)
            if size >= 1_000_000:
                sizes.append((size, f"{attr} {size / 1e6:.1f} MB / {count} objects"))
        lines.append(f"{type(holder).__name__}: " + "; ".join(t for _s, t in sorted(sizes, reverse=True)))
    return "\n".join("    " + line for line in lines)


HEAP_MAX = 64 << 20  # glibc's thread arenas are heaps of this size, aligned on it (64-bit)


def rss_by_mapping() -> dict[str, int]:
    """Resident kB of this process by kind of mapping (/proc/self/smaps).

    glibc's thread arenas are anonymous mappings aligned on 64 MiB; a thread's stack is an
    anonymous mapping of its stack size right above a guard page; the main arena is `[heap]`.
    Every other anonymous mapping is pymalloc's arenas (1 MiB each, merged by the kernel when
    adjacent) or a block malloc mapped on its own (>= the mmap threshold).
    """
    kinds: dict[str, int] = {}
    kind = "other"
    stack = threading.stack_size() or 8 << 20  # glibc's default: the stack rlimit, 8 MiB here
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            name = fields[5] if len(fields) > 5 else ""
            if name.startswith("["):
                kind = name
            elif name:
                kind = "files"
            elif start % HEAP_MAX == 0:
                kind = "thread arenas"
            elif stack - 4096 <= end - start <= stack:
                kind = "thread stacks"
            else:
                kind = "other anonymous"
        elif fields and fields[0] == "Rss:":
            kinds[kind] = kinds.get(kind, 0) + int(fields[1])
    return kinds


def native() -> str:
    """Where the memory outside Python's objects is: malloc, SQLite, threads, mappings (Linux, glibc)."""
    parts = []
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
        mi = libc.mallinfo2()
        parts.append(f"malloc: in use {mi.uordblks / 1e6:.1f} MB + mmapped {mi.hblkhd / 1e6:.1f} MB, "
                     f"free in arenas {mi.fordblks / 1e6:.1f} MB")
    except (OSError, AttributeError):
        parts.append("malloc: mallinfo2 not available")
    try:
        sqlite = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
        parts.append(f"SQLite: {sqlite.sqlite3_memory_used() / 1e6:.1f} MB "
                     f"(high water {sqlite.sqlite3_memory_highwater(0) / 1e6:.1f} MB)")
    except (OSError, AttributeError):
        parts.append("SQLite: sqlite3_memory_used not available")
    parts.append("RSS by mapping: " + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in
                                                 sorted(rss_by_mapping().items(), key=lambda kv: -kv[1])
                                                 if v >= 1024))
    names: dict[str, int] = {}
    for t in threading.enumerate():
        prefix = t.name.split("_")[0].rstrip("-0123456789")
        names[prefix] = names.get(prefix, 0) + 1
    parts.append(f"threads {threading.active_count()}: " + ", ".join(f"{k} {v}" for k, v in sorted(names.items())))
    parts.append(f"open fds {len(os.listdir('/proc/self/fd'))}")
    parts.append(f"Python: {sys.getallocatedblocks()} blocks allocated; " + pymalloc_arenas())
    parts.append(census(15).strip())
    return "\n".join("    " + p for p in parts)


def report(label: str, base: tracemalloc.Snapshot | None, snap: tracemalloc.Snapshot | None, top: int,
           t0: float) -> None:
    if snap is None:
        print(f"\n=== {label}: minute {(time.monotonic() - t0) / 60:.1f}, RSS {rss_mb():.1f} MB, "
              f"load {Path('/proc/loadavg').read_text().split()[0]}\n{native()}", flush=True)
        return
    traced = sum(s.size for s in snap.statistics("filename")) / 1e6
    print(f"\n=== {label}: minute {(time.monotonic() - t0) / 60:.1f}, RSS {rss_mb():.1f} MB, "
          f"traced {traced:.1f} MB, load {Path('/proc/loadavg').read_text().split()[0]}\n{native()}", flush=True)
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__)]
    if base is None:  # what holds the memory now, by allocation site (the breakdown, not the growth)
        for stat in snap.filter_traces(filters).statistics("traceback")[:top]:
            print(f"{stat.size / 1e3:9.1f} kB {stat.count:7d} blocks")
            for frame in stat.traceback.format(limit=6, most_recent_first=True)[::2]:
                print("      " + frame.strip().replace(str(ROOT) + "/", ""))
        print(flush=True)
        return
    diff = snap.filter_traces(filters).compare_to(base.filter_traces(filters), "traceback")
    for stat in diff[:top]:
        if stat.size_diff <= 0:
            break
        print(f"{stat.size_diff / 1e3:+9.1f} kB {stat.count_diff:+7d} blocks (now {stat.size / 1e3:.1f} kB)")
        for frame in stat.traceback.format(limit=6, most_recent_first=True)[::2]:
            print("      " + frame.strip().replace(str(ROOT) + "/", ""))
    print(flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--faults", default="blackhole:2%,slow:5%")
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=16)
    ap.add_argument("--warmup-minutes", type=float, default=6)
    ap.add_argument("--every-minutes", type=float, default=5)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--native-only", action="store_true",
                    help="no tracemalloc (RSS as in a real run): only the native breakdown, every --every-minutes")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clock-memory-"))
    t0 = time.monotonic()

    def take() -> tracemalloc.Snapshot | None:
        return None if args.native_only else tracemalloc.take_snapshot()

    def watch(stop: Callable[[], None]) -> None:
        time.sleep(args.warmup_minutes * 60)
        base = take()
        report("warm-up snapshot", None, base, args.top, t0)
        end = t0 + args.minutes * 60
        while time.monotonic() + 1 < end:
            time.sleep(min(args.every_minutes * 60, max(0.0, end - time.monotonic())))
            report("growth since warm-up", base, take(), args.top, t0)
        print(f"stopping; the clock's log is {work / 'clock.log'}", flush=True)
        stop()

    def before() -> None:
        if not args.native_only:
            tracemalloc.start(args.frames)

    with Procs(work) as procs:
        return run_clock_here(procs, work, args.devices, args.interval, args.faults or None, watch, before)

if __name__ == "__main__":
    sys.exit(main())
