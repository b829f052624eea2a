"""Where the clock's CPU goes: the real jobs in-process under yappi (CPU clock, every thread).

    .venv/bin/python bench/profile_clock.py --devices 100 --cycles 10 --top 40

Starts `python -m panos_sim`, registers its devices in a fresh data folder, builds the clock's
context (`clock.build_context`: collector, stores, alert hook) and runs `collect_once` CYCLES
times and the whole fleet's inventory (`collect_slow_once`) twice, with yappi profiling every
thread (cProfile sees only the main thread, and the polls run in the collector's pool). Prints
the CPU per poll and per inventory as yappi counts them and the top functions by own CPU
time (`tsub`) and by inclusive time (`ttot`). Figures from a profiler are inflated; the
figures of record come from `bench/bench_cpu.py` (make bench-cpu).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yappi  # noqa: E402

import clock  # noqa: E402
import panfm.ops as ops  # noqa: E402
from reliability.harness import Procs, clock_context, whole_windows  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="profile-clock-"))
    data = work / "data"
    with Procs(work) as procs:
        ctx = clock_context(procs, args.devices, data)
        clock.collect_once(ctx)  # warm-up: key generation, TLS sessions, first baselines
        ops.collect_slow_once(ctx)
        yappi.set_clock_type("cpu")
        yappi.start(builtins=True, profile_threads=True)
        t_cpu = time.process_time()
        for _ in range(args.cycles):
            started = time.monotonic()
            clock.collect_once(ctx)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
        poll_cpu = time.process_time() - t_cpu
        t_cpu = time.process_time()
        inventories = 0
        for _ in range(2):
            whole_windows(ctx.collector)  # each run counts 300 s of logs, as the clock's runs 300 s apart do
            inventories += ops.collect_slow_once(ctx)
        inv_cpu = time.process_time() - t_cpu
        yappi.stop()
        ctx.collector.close()
        ctx.store.close()
    polls = args.cycles * args.devices
    print(f"under yappi: {1000 * poll_cpu / polls:.2f} ms CPU per poll ({polls} polls), "
          f"{1000 * inv_cpu / max(1, inventories):.2f} ms per inventory ({inventories})")
    stats = yappi.get_func_stats()
    for key in ("tsub", "ttot"):
        print(f"\n--- top {args.top} by {key} (seconds, all threads) ---")
        stats.sort(key, "desc")
        for f in list(stats)[: args.top]:
            where = f"{f.module.replace(str(ROOT) + '/', '')}:{f.lineno}"
            print(f"{f.tsub:8.3f} {f.ttot:8.3f} {f.ncall:9d}  {where} {f.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
