"""Storage helpers: sample and cycle builders at a fixed time T0, and a one-off query of a database file."""

import sqlite3
from pathlib import Path
from typing import Any

from panfm.models import CycleResult, DeviceSample, DeviceStatus, InterfaceSample
from panfm.storage.samples import HISTORY_DB, SampleReader
from panfm.storage.tier_views import register as register_tier_functions

T0 = 1_700_000_100.0  # 2023-11-14T22:15:00Z, a 5-minute and (not) an hour boundary


def sample(dev: str, ts: float, inbound: float | None = 10.0, **kw) -> DeviceSample:
    fields = {"outbound_mbps": 5.0, "sessions_active": 100, "cpu_dataplane_pct": 20.0, **kw}
    total = None if inbound is None or fields["outbound_mbps"] is None else inbound + fields["outbound_mbps"]
    return DeviceSample(device_id=dev, ts=ts, inbound_mbps=inbound, total_mbps=total, **fields)


def iface(dev: str, name: str, ts: float, in_bps: float | None = 1e6) -> InterfaceSample:
    return InterfaceSample(dev, name, ts, in_bps, 2e6, 100.0, 200.0, 0.0, 0.0, True)


def cycle(ts: float, devices=("fw1",), ifaces=("ethernet1/1",), **kw) -> CycleResult:
    return CycleResult(
        started=ts - 0.5,
        finished=ts + 0.5,
        samples=tuple(sample(d, ts, **kw) for d in devices),
        interfaces=tuple(iface(d, n, ts) for d in devices for n in ifaces),
        baselines=(),
        statuses=tuple(DeviceStatus(d, "up", ts, ts) for d in devices),
    )


def rows(db, sql, params=()):
    conn = sqlite3.connect(db)
    register_tier_functions(conn)  # the old rollup names are views decoding packed rows
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def stored_clock_stats(data_dir: Path) -> dict[str, Any] | None:
    """The clock's stats and heartbeat as a running clock stored them; None before it wrote any."""
    db = data_dir / HISTORY_DB
    if not db.exists():
        return None
    try:
        with SampleReader.open(db) as reader:
            return reader.clock_stats()
    except Exception:  # a clock creating the file right now
        return None
