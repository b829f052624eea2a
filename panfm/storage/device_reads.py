"""One device's newest rows for `/metrics?device=NAME`: `device_parts`, the same on SQLite and PostgreSQL.

A one-device scrape (Prometheus' multi-target pattern, sharded with `hashmod`) must not read
the whole fleet's counters to keep one device's. `SampleReader.device_parts` and
`PgSampleReader.device_parts` call this with their own newest-sample, dataplane and inventory
reads (per device on both backends) and a `fetch_one` for the portable SQL below (the
`device_status` and `baselines` rows, found by their primary key). Read-only; each statement
reads its own snapshot, as the whole-fleet reads do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from panfm.models import CounterBaseline, DeviceSample, DeviceStatus, InterfaceCounters

FetchOne = Callable[[str, Sequence[Any]], "Mapping[str, Any] | None"]
Keep = Callable[[str, Collection[str]], Iterable[str]]

STATUS_SQL = ("SELECT device_id, state, last_poll, last_success, last_error, consecutive_failures"
              " FROM device_status WHERE device_id = ?")
BASELINE_SQL = "SELECT device_id, ts, serial, uptime_seconds, counters, rtt_ms FROM baselines WHERE device_id = ?"


def decode_baseline(row: Mapping[str, Any], keep: Keep | None) -> CounterBaseline:
    """A `baselines` row as a model: the counters as exact ints (older rows: strings), the interfaces `keep` picks."""
    raw = json.loads(row["counters"])
    names = raw if keep is None else [n for n in keep(row["device_id"], raw.keys()) if n in raw]
    parsed = {}
    for name in names:
        ib, ob, ip, op, ie, idr, src = raw[name]
        parsed[name] = InterfaceCounters(name, int(ib), int(ob), int(ip), int(op), int(ie), int(idr), source=src)
    return CounterBaseline(row["device_id"], row["ts"], row["serial"], row["uptime_seconds"], parsed, row["rtt_ms"])


def device_parts(
    device_id: str,
    keep: Keep | None,
    *,
    fetch_one: FetchOne,
    latest: Callable[[str], DeviceSample | None],
    dataplane: Callable[[str], dict[str, Any] | None],
    inventory: Callable[[str], dict[str, Any] | None],
) -> dict[str, dict[str, Any]]:
    """The whole-fleet reads' shapes for one device: samples, statuses, dataplanes, inventories, baselines by id.

    A part the device has no row for is an empty mapping (as in the whole-fleet reads).
    """
    def one(value: Any) -> dict[str, Any]:
        return {} if value is None else {device_id: value}

    status = fetch_one(STATUS_SQL, (device_id,))
    baseline = fetch_one(BASELINE_SQL, (device_id,))
    return {
        "samples": one(latest(device_id)),
        "statuses": one(None if status is None else DeviceStatus(
            status["device_id"], status["state"], status["last_poll"], status["last_success"], status["last_error"],
            status["consecutive_failures"])),
        "dataplanes": one(dataplane(device_id)),
        "inventories": one(inventory(device_id)),
        "baselines": one(None if baseline is None else decode_baseline(baseline, keep)),
    }
