"""Past readings of one device from its own model: what a monitor polling every STEP would have read.

`history(dev, t1, t2, step)` walks the poll times t1 + k * step (k >= 1) up to t2 and returns, for
each window [t - step, t], the counter increase of every interface (as `truth()` counts it) and the
gauges at t as the XML API would have served them then: active sessions and their rates, the
busiest dataplane's 1-minute mean over its data cores, management CPU, memory used / total and
packet buffer. A window that starts before the device's current boot is left out: its counters
were not counting then. `make demo` backfills a week of history from this (GET /_sim/history).
"""

from __future__ import annotations

import math
from typing import Any

from panos_sim.device import Device
from panos_sim.traffic import LOAD_MAX

MAX_POINTS = 50_000  # one answer's bound: a week at 15 s


def minute_level(dev: Device, t: float) -> float:
    """Return the mean load of the last whole minute before t (resource-monitor minute, newest entry)."""
    b = t - t % 60.0
    a = b - 60.0
    mean = dev.share_at(b) * (dev.load.integral(b) - dev.load.integral(a)) / 60.0 / LOAD_MAX
    return max(mean, 1e-4)


def dataplane_pct(dev: Device, t: float) -> float:
    """Return the busiest dataplane's mean over its data cores (core 0 reads 0 and is left out)."""
    level = minute_level(dev, t)
    best = 0.0
    for dp in range(dev.platform.dataplanes):
        factor = 90.0 * dev.cpu_weight * (1.0 - 0.08 * dp)
        vals = [int(min(max(2.0 + dev.core_offsets[c] + factor * level, 1.0), 100.0))
                for c in range(1, dev.platform.cores)]
        best = max(best, sum(vals) / max(len(vals), 1))
    return best


def memory_pct(dev: Device) -> float:
    """Return memory used / total of the `MiB Mem` line, as `show system resources` prints it."""
    total = dev.platform.mp_mem_mib
    return round(total * dev.mem_used, 1) / total * 100.0


def history(dev: Device, t1: float, t2: float, step: float) -> dict[str, Any]:
    """Return the poll-by-poll readings of DEV over (t1, t2] at STEP seconds.

    Shape: {"device", "step", "interfaces": [names], "points": [{"t", "bytes": {name: [in, out]},
    "packets": {name: [in, out]}, "sessions": {...}, "dataplane_pct", "management_pct", "memory_pct",
    "packet_buffer_pct"}]}; bytes and packets are the counters' increase over [t - step, t].
    """
    if step <= 0 or not (math.isfinite(t1) and math.isfinite(t2)) or t2 < t1:
        raise ValueError("want finite from <= to and step > 0")
    count = int((t2 - t1) // step)
    if count > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points per answer")
    start = max(t1, dev.boot)
    first = t1 + math.ceil((start - t1) / step) * step  # the first window start within this boot
    points: list[dict[str, Any]] = []
    prev = dev.counters(first)
    t = first + step
    while t <= t2 + 1e-9:
        cur = dev.counters(t)
        ses = dev.sessions(t)
        points.append({
            "t": t,
            "bytes": {n: [cur[n]["ibytes"] - prev[n]["ibytes"], cur[n]["obytes"] - prev[n]["obytes"]] for n in cur},
            "packets": {n: [cur[n]["ipackets"] - prev[n]["ipackets"], cur[n]["opackets"] - prev[n]["opackets"]]
                        for n in cur},
            "sessions": {"active": ses["active"], "max": dev.platform.num_max, "cps": ses["cps"],
                         "kbps": ses["kbps"], "pps": ses["pps"]},
            "dataplane_pct": dataplane_pct(dev, t),
            "management_pct": dev.mp_cpu(t),
            "memory_pct": memory_pct(dev),
            "packet_buffer_pct": float(int(1 + 30 * minute_level(dev, t))),
            "packet_descriptor_pct": float(int(1 + 20 * minute_level(dev, t))),
        })
        prev = cur
        t += step
    physical = [p.name for p in dev.platform.physical()]
    return {"device": dev.name, "step": step, "boot": dev.boot, "physical": physical,
            "interfaces": sorted(prev), "points": points}
