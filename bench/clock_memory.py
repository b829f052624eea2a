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
import linecache
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reliability.harness import Procs, Sim, panfm_env, register  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(label: str, base: tracemalloc.Snapshot | None, snap: tracemalloc.Snapshot, top: int, t0: float) -> None:
    traced = sum(s.size for s in snap.statistics("filename")) / 1e6
    print(f"\n=== {label}: minute {(time.monotonic() - t0) / 60:.1f}, RSS {rss_mb():.1f} MB, "
          f"traced {traced:.1f} MB, load {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
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
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clock-memory-"))
    data = work / "data"
    with Procs(work) as procs:
        sim = Sim.start(procs, args.devices, seed=1, faults=args.faults or None)
        register(data, sim.inventory)
        env = panfm_env(data, args.interval)
        env["PANFM_LOG_FILE"] = str(work / "clock.log")
        os.environ.update({k: v for k, v in env.items() if k.startswith("PANFM_")})
        import clock

        tracemalloc.start(args.frames)
        t0 = time.monotonic()

        def watch() -> None:
            time.sleep(args.warmup_minutes * 60)
            base = tracemalloc.take_snapshot()
            report("warm-up snapshot", None, base, args.top, t0)
            end = t0 + args.minutes * 60
            while time.monotonic() + 1 < end:
                time.sleep(min(args.every_minutes * 60, max(0.0, end - time.monotonic())))
                report("growth since warm-up", base, tracemalloc.take_snapshot(), args.top, t0)
            print(f"stopping; the clock's log is {work / 'clock.log'}", flush=True)
            procs.close()  # the simulator: the clock's exit leaves without unwinding this frame
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, daemon=True).start()
        return clock.main([])


if __name__ == "__main__":
    sys.exit(main())
