"""The history JSON API: a device's chart series over a range, and the same as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, jsonify

from panfm.timefmt import iso_ms as iso
from panfm.web import uplinks
from panfm.web.api import MAX_POINTS, known_device_id, known_device_uplinks, time_window
from panfm.web.context import ctx

bp = Blueprint("history", __name__)


# What the charts draw (docs/api.md): storage answers the average and the maximum of each, and
# only of these, which keeps a 30-day answer and its encoding small.
HISTORY_METRICS = (
    "inbound_mbps",
    "outbound_mbps",
    "sessions_active",
    "cpu_dataplane_pct",
    "cpu_management_pct",
    "memory_pct",
    "packet_buffer_pct",
    "sessions_utilization_pct",
)
# The CSV's columns: the contract's fields.
HISTORY_FIELDS = (
    "inbound_mbps",
    "inbound_mbps_max",
    "outbound_mbps",
    "outbound_mbps_max",
    "sessions_active",
    "sessions_active_max",
    "cpu_dataplane_pct",
    "cpu_dataplane_pct_max",
    "cpu_management_pct",
    "memory_pct",
    "packet_buffer_pct",
    "sessions_utilization_pct",
)


def _history_points(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chart points as storage made them (fresh dicts), times in ISO-8601; a gap's None stays None."""
    for p in points:
        p["t"] = iso(p["t"])
    return points


@bp.get("/api/throughput/history")
def throughput_history() -> Any:
    device_id, marked = known_device_uplinks()
    c = ctx()
    start, end, _ = time_window(c.clock())
    with c.reader() as reader:
        if reader is None:
            return jsonify({"device_id": device_id, "tier": "raw", "bucket_s": None, "points": []})
        hist = reader.history(device_id, start, end, max_points=MAX_POINTS, metrics=HISTORY_METRICS)
        uplinks.add_history(reader, device_id, marked, start, end, MAX_POINTS, hist.points)
    return jsonify(
        {"device_id": device_id, "tier": hist.tier, "bucket_s": hist.bucket_s, "points": _history_points(hist.points)}
    )


EXPORT_COLUMNS = ("t", *HISTORY_FIELDS)


@bp.get("/api/throughput/history/export")
def throughput_export() -> Any:
    device_id = known_device_id()
    c = ctx()
    start, end, label = time_window(c.clock())
    with c.reader() as reader:
        points = reader.history(device_id, start, end, MAX_POINTS, HISTORY_METRICS).points if reader else []
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for p in _history_points(points):
        # An empty cell is a gap; never write 0 for a value that was not measured.
        writer.writerow(["" if p.get(k) is None else p[k] for k in EXPORT_COLUMNS])
    name = f"panfm-{device_id[:36]}-{label}.csv"
    return Response(
        buf.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
