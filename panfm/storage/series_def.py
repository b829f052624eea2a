"""The metrics, rollup tiers and groupings of the sample database (names only; no SQL, no imports).

Shared by the layout (`compact.py`), its migration and `schema.py`, which re-exports them.
"""

from __future__ import annotations

# Device metrics, in DeviceSample field order; every one gets avg/max in the rollups (compact.py).
DEVICE_METRICS: tuple[str, ...] = (
    "inbound_mbps",
    "outbound_mbps",
    "total_mbps",
    "inbound_pps",
    "outbound_pps",
    "sessions_active",
    "sessions_tcp",
    "sessions_udp",
    "sessions_icmp",
    "sessions_max",
    "sessions_utilization_pct",
    "sessions_cps",
    "sessions_kbps",
    "sessions_pps",
    "cpu_dataplane_pct",
    "cpu_management_pct",
    "memory_pct",
    "packet_buffer_pct",
    "packet_descriptor_pct",
)
# Integer gauges: stored as INTEGER in raw rows (DeviceSample types them int).
INT_METRICS = frozenset(
    {"sessions_active", "sessions_tcp", "sessions_udp", "sessions_icmp", "sessions_max"}
    | {"sessions_cps", "sessions_kbps", "sessions_pps"}
)
IFACE_METRICS: tuple[str, ...] = ("in_bps", "out_bps", "in_pps", "out_pps", "errors_per_s", "drops_per_s")

# Rollup tiers: name -> (device table, interface table, bucket seconds).
TIERS: dict[str, tuple[str, str, int]] = {
    "5m": ("device_5m", "iface_5m", 300),
    "1h": ("device_1h", "iface_1h", 3600),
}

# Materialised groupings of a tier: tier -> (device table, interface table, group seconds).
# A 30-day chart groups 5-minute rows into 30-minute points: on the fly that sorts and
# aggregates 8,640 wide rows per device (~30 ms of SQLite CPU per request). These tables hold
# exactly that grouping (weighted average of the averages, maximum of the maxima), updated as
# 5-minute buckets close, so the chart reads 1,440 rows. They are not a tier of their own:
# history still answers tier "5m" with bucket_s 1800, the same numbers as before.
GROUPINGS: dict[str, tuple[str, str, int]] = {
    "5m": ("device_5m_g30m", "iface_5m_g30m", 1800),
}

