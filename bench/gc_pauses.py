"""The clock's garbage-collector pauses: every collection's time, by generation, in a real clock.

    .venv/bin/python bench/gc_pauses.py [--devices 333] [--interval 30] [--minutes 3]
                                        [--default-gc | --freeze-thresholds T0,T1,T2]

Starts `python -m panos_sim` (no faults), registers its devices in a fresh data folder and runs
`clock.main()` in this process (its scheduler, jobs and threads, as `python clock.py` runs
them; SQLite) with a `gc.callbacks` hook that times every collection. Each collection holds the
GIL from start to end: the time every other thread of the clock (the cycle's write, the lease
round) waits. After `--minutes` it prints, per generation, the number of collections, their total
time, the longest, how many took over 5 ms, and the full collections' times with the second of
the run they started in, the eight longest collections (time, second, generation), and those
the thresholds started (`automatic`: not the clock's own `collect_garbage` after each write);
then stops the clock with SIGTERM. `--default-gc` keeps Python's default collector (no
`memory.configure_gc`, no `collect_garbage`): the "before" of docs/benchmarks.md;
`--freeze-thresholds 50000,20,10` the step measured on the way (frozen start, young collections
every 50,000 allocations, none after the write).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reliability.harness import Procs, run_clock_here  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=333)
    ap.add_argument("--interval", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--default-gc", action="store_true", help="Python's default collector (the clock's tuning off)")
    ap.add_argument("--freeze-thresholds", metavar="T0,T1,T2",
                    help="the steps measured on the way: gc.freeze() at the start and these automatic thresholds,"
                         " no collection after the write (700,10,10: the freeze alone; 50000,20,10)")
    a = ap.parse_args()
    pauses: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}
    automatic: list[tuple[float, float, int]] = []  # collections the thresholds started (not `collect_garbage`)
    started: list[float] = [0.0]
    explicit = threading.local()
    t0 = time.monotonic()

    def hook(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            ms, at = (time.perf_counter() - started[0]) * 1000, time.monotonic() - t0
            pauses[info["generation"]].append((ms, at))
            if not getattr(explicit, "on", False):
                automatic.append((ms, at, info["generation"]))

    work = Path(tempfile.mkdtemp(prefix="gc-pauses-"))

    def before() -> None:
        import clock
        import panfm.ops.clock_jobs as clock_jobs

        if a.default_gc or a.freeze_thresholds:
            thresholds = tuple(int(x) for x in a.freeze_thresholds.split(",")) if a.freeze_thresholds else None

            def freeze_only() -> None:
                if thresholds is not None:
                    gc.collect()
                    gc.freeze()
                    gc.set_threshold(*thresholds)

            clock.configure_gc = freeze_only  # type: ignore[attr-defined]
            clock_jobs.collect_garbage = lambda: 0
        else:
            after_write = clock_jobs.collect_garbage

            def marked() -> int:
                explicit.on = True
                try:
                    return after_write()
                finally:
                    explicit.on = False

            clock_jobs.collect_garbage = marked
        gc.callbacks.append(hook)

    def watch(stop: Callable[[], None]) -> None:
        time.sleep(a.minutes * 60)
        out: dict[str, Any] = {"devices": a.devices, "interval": a.interval, "minutes": a.minutes,
                               "default_gc": a.default_gc, "threshold": gc.get_threshold(),
                               "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}
        for gen, seen in pauses.items():
            ms = sorted(p for p, _ in seen)
            out[f"gen{gen}"] = {"n": len(ms), "total_ms": round(sum(ms), 1),
                                "max_ms": round(ms[-1], 1) if ms else None,
                                "over_5ms": sum(1 for p in ms if p > 5)}
        out["full_collections_ms_at_s"] = [(round(p, 1), round(t)) for p, t in pauses[2]]
        out["automatic"] = {"n": len(automatic), "total_ms": round(sum(p for p, _, _ in automatic), 1),
                             "max_ms": round(max((p for p, _, _ in automatic), default=0.0), 1)}
        longest = sorted(((p, t, g) for g, seen in pauses.items() for p, t in seen), reverse=True)[:8]
        out["longest_ms_at_s_gen"] = [(round(p, 1), round(t, 1), g) for p, t, g in longest]
        out["load"] = [round(x, 2) for x in os.getloadavg()]
        out["at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(json.dumps(out), flush=True)
        stop()

    with Procs(work) as procs:
        return run_clock_here(procs, work, a.devices, a.interval, None, watch, before)

if __name__ == "__main__":
    sys.exit(main())
