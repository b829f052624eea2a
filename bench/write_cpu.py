"""Clock CPU of write_cycle: the cycles that close a 5-minute bucket (rollups, groups) and the others.

    .venv/bin/python bench/write_cpu.py --devices 1000
    .venv/bin/python bench/write_cpu.py --devices 1000 --cycles 110 --peak   # memory peaks (the hour's pack)

Writes 42 cycles (`--cycles`) of N devices x 4 interfaces at 30 s into a fresh file in a temporary folder
and prints the process CPU (p50) of the cycles that close a bucket and of the others. Run it
from two checkouts to compare layouts (it imports the checkout it is run from).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the checkout it is run from

from panfm.models import CycleResult, DeviceSample, DeviceStatus, InterfaceSample
from panfm.storage.samples import SampleStore

T0 = 1_700_000_100.0 - 15


def cycle(k: int, devices: int) -> CycleResult:
    ts = T0 + 30 * k
    samples = tuple(
        DeviceSample(f"d{i}", ts + 0.1, 100.0 + i % 7 + k % 5, 50.0, 150.0 + i % 7 + k % 5, 1000.0, 900.0,
                     5000 + k, 4000, 900, 9, 262142, 2.0, 30, 9000, 12000, 33.3, 12.5, 55.5, 0.4, 1.2)
        for i in range(devices))
    ifaces = tuple(InterfaceSample(f"d{i}", f"ethernet1/{j}", ts + 0.2, 1e8 + k * 1000 + j, 6e7, 15000.0, 11000.0,
                                   0.0, 0.0, True) for i in range(devices) for j in range(1, 5))
    return CycleResult(started=ts - 0.5, finished=ts + 1, samples=samples, interfaces=ifaces, baselines=(),
                       statuses=tuple(DeviceStatus(f"d{i}", "up", ts, ts) for i in range(devices)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=42, help="85 or more include an hour's close (the head packed)")
    ap.add_argument("--peak", action="store_true", help="also each write's peak of traced Python memory")
    a = ap.parse_args()
    peaks: list[tuple[float, float]] = []  # (peak MB, cycle start)
    if a.peak:
        tracemalloc.start()
    cycles = [cycle(k, a.devices) for k in range(a.cycles)]
    closing, other, hourly = [], [], []
    with tempfile.TemporaryDirectory() as tmp, SampleStore.open(Path(tmp) / "h.db") as store:
        for k, c in enumerate(cycles):
            if a.peak:
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
            c0 = time.process_time()
            store.write_cycle(c)
            spent = time.process_time() - c0
            if a.peak:
                peaks.append(((tracemalloc.get_traced_memory()[1] - base) / 1e6, c.started))
            closes = k > 0 and int(c.started // 300) != int((c.started - 30) // 300)
            hour = k > 0 and int(c.started // 3600) != int((c.started - 30) // 3600)
            (hourly if hour else closing if closes else other).append(spent)
    print(f"{a.devices} devices x 4 interfaces: cycles closing a 5-minute bucket: CPU p50 "
          f"{1000 * statistics.median(closing):.0f} ms ({len(closing)}), other cycles: p50 "
          f"{1000 * statistics.median(other):.0f} ms; load {Path('/proc/loadavg').read_text().split()[0]}")
    if hourly:
        shown = ", ".join(f"{1000 * x:.0f}" for x in hourly)
        print(f"cycles closing an hour (the head's closed period packed): {shown} ms")
    if peaks:
        top = sorted(peaks, reverse=True)[:3]
        shown = ", ".join(f"{mb:.1f} MB at :{int(ts % 3600 // 60):02d}:{int(ts % 60):02d}" for mb, ts in top)
        print(f"peak traced Python memory of a write above what it started with: {shown}; "
              f"median {statistics.median(mb for mb, _ in peaks):.1f} MB")


if __name__ == "__main__":
    main()
