"""Throughput the way an engineer reads it: "through the box" and the uplinks' In/Out.

With every physical port counted, a packet enters one port and leaves another: the device's
inbound and outbound sums are nearly equal and in + out counts each packet twice. So:

- `through_mbps` = ingress summed over the counted ports (each packet once) = `inbound_mbps`;
- `uplink_in_mbps` / `uplink_out_mbps` = the rates of the interfaces the admin marks as uplinks
  (WAN) on the Devices page, summed; null without a mark, or when a marked interface has no
  rate in that sample (a partial sum would look like a traffic drop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from panfm.models import DeviceSample
from throughput_storage import PgSampleReader, SampleReader


def through(sample: DeviceSample) -> float | None:
    """Ingress summed over the counted ports: each packet once."""
    return sample.inbound_mbps


def live(reader: SampleReader | PgSampleReader | None, device_id: str, uplinks: Sequence[str],
         sample: DeviceSample) -> dict[str, Any]:
    """The uplinks' In/Out of this very sample (their newest rows must carry its time: its whole second)."""
    out: dict[str, Any] = {"uplink_in_mbps": None, "uplink_out_mbps": None}
    if not uplinks or reader is None:
        return out
    rows = {s.name: s for s in reader.interfaces_latest(device_id)}
    second = math.floor(sample.ts)  # interface rows keep their poll's whole second (schema 9)
    picked = [rows.get(name) for name in uplinks]
    if any(r is None or math.floor(r.ts) != second or r.in_bps is None or r.out_bps is None for r in picked):
        return out
    out["uplink_in_mbps"] = sum(r.in_bps or 0.0 for r in picked if r) / 1e6
    out["uplink_out_mbps"] = sum(r.out_bps or 0.0 for r in picked if r) / 1e6
    return out


def add_history(
    reader: SampleReader | PgSampleReader,
    device_id: str,
    uplinks: Sequence[str],
    start: float,
    end: float,
    max_points: int,
    points: list[dict[str, Any]],
) -> None:
    """Add `through_mbps` (and its `_max`) to every chart point, and the uplinks' sums when marked.

    Each uplink's history is read over the same window and point budget; a point whose time is
    missing from any uplink's series gets null, never a partial sum. Times are matched by their
    whole second: a raw device point keeps its poll's milliseconds, an interface point only the
    second (schema 9); a rollup point is a bucket start either way.
    """
    for p in points:
        p["through_mbps"] = p.get("inbound_mbps")
        if "inbound_mbps_max" in p:
            p["through_mbps_max"] = p["inbound_mbps_max"]
    if not uplinks:
        return
    series = []
    for name in uplinks:
        hist = reader.interface_history(device_id, name, start, end, max_points=max_points,
                                        metrics=("in_bps", "out_bps"))
        series.append({math.floor(p["t"] or 0.0): p for p in hist.points})  # every point has a time
    for p in points:
        ins: list[float] = []
        outs: list[float] = []
        t = math.floor(p["t"])
        for s in series:
            row = s.get(t) or {}
            i, o = row.get("in_bps"), row.get("out_bps")
            if i is not None and o is not None:
                ins.append(float(i))
                outs.append(float(o))
        ok = len(ins) == len(series)
        p["uplink_in_mbps"] = sum(ins) / 1e6 if ok else None
        p["uplink_out_mbps"] = sum(outs) / 1e6 if ok else None
