"""How the web's PostgreSQL reads reach their rows: a live value must not read a device's whole day."""

from __future__ import annotations

import json
import time

import pytest

from panfm.storage import pg_series
from panfm.storage.pg_reader import LATEST_SQL, PgSampleReader
from panfm.storage.postgres import PgDatabase

pytestmark = pytest.mark.postgres

DEVICES, SLOTS = 20, 2880  # a day of 30-s slots each


def _rows_read(plan: dict) -> int:
    """Rows the plan's scans of sample partitions returned, summed over loops."""
    here = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1) \
        if str(plan.get("Relation Name", "")).startswith("device_samples") else 0
    return here + sum(_rows_read(p) for p in plan.get("Plans", []))


def test_the_newest_sample_reads_one_row_per_day_partition_not_the_devices_whole_day(pg_url):
    db = PgDatabase(pg_url, statement_timeout_ms=0)
    try:
        db.migrate("series", pg_series.PG_MIGRATIONS)
        now = int(time.time()) // 30 * 30
        pg_series.ensure_partitions(db, now - 86400, days_ahead=2)
        with db.transaction() as tx:
            tx.execute("INSERT INTO ts_device (device_id) SELECT 'dev-' || i FROM generate_series(1, ?) i", (DEVICES,))
            tx.execute("INSERT INTO device_samples (dk, slot, off_ms, inbound_mbps) SELECT dk, s, 250, dk"
                       " FROM ts_device CROSS JOIN generate_series(?::bigint, ?::bigint, 30) s",
                       (now - (SLOTS - 1) * 30, now))
        with db.connection() as conn:
            conn.execute("VACUUM (ANALYZE)")
            parts = len(pg_series.partitions(conn)["device_samples"]) + 1  # and the default one
            (plan,) = conn.fetchone("EXPLAIN (ANALYZE, FORMAT JSON) " + LATEST_SQL, ("dev-7",)).values()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        assert _rows_read(plan[0]["Plan"]) <= parts < SLOTS  # not the 2,880 rows of its day
        sample = PgSampleReader(db).latest("dev-7")
        assert sample is not None and sample.ts == pytest.approx(now + 0.25)
        with db.connection() as conn:  # the answer is the device's own newest row
            mine = conn.fetchone("SELECT dk FROM ts_device WHERE device_id = 'dev-7'")["dk"]
        assert sample.inbound_mbps == pytest.approx(mine)
        assert PgSampleReader(db).latest("no-such-device") is None
    finally:
        db.close()



def test_the_fleets_newest_interfaces_in_one_statement_are_each_devices_newest_poll(pg_url):
    """`interfaces_since` (the leader's alert evaluation, every slot): each device's interfaces as its
    newest raw row at or after the bound holds them, what `interfaces_latest` gives for them; an
    interface missing from that poll is not there; a device with no row since is absent."""
    import dataclasses

    from helpers.storage import cycle

    from panfm.storage.pg_samples import PgSampleStore

    db = PgDatabase(pg_url, statement_timeout_ms=0)
    try:
        db.migrate("series", pg_series.PG_MIGRATIONS)
        now = int(time.time()) // 30 * 30
        pg_series.ensure_partitions(db, now - 86400, days_ahead=2)
        writer = PgSampleStore(db, interval_s=30)
        writer.write_cycle(cycle(now - 120 + 5, devices=("fw-a", "fw-b", "fw-c"), ifaces=("ethernet1/1", "ae1")))
        writer.write_cycle(cycle(now - 30 + 5, devices=("fw-a", "fw-b"), ifaces=("ethernet1/1", "ae1")))
        # The newest poll: fw-a's lacks ae1, and the values are new.
        newest = cycle(now + 5, devices=("fw-a", "fw-b"), ifaces=("ethernet1/1", "ae1"))
        newest = dataclasses.replace(newest, interfaces=tuple(
            dataclasses.replace(i, in_bps=7e6, out_bps=None) for i in newest.interfaces
            if (i.device_id, i.name) != ("fw-a", "ae1")))
        writer.write_cycle(newest)
        reader = PgSampleReader(db)
        got = reader.interfaces_since(now - 60)
        assert sorted(got) == ["fw-a", "fw-b"]  # fw-c wrote nothing since
        assert got["fw-b"] == reader.interfaces_latest("fw-b")
        assert [i.name for i in got["fw-a"]] == ["ethernet1/1"]
        assert got["fw-a"] == [i for i in reader.interfaces_latest("fw-a") if i.name == "ethernet1/1"]
        one = got["fw-a"][0]
        assert (one.ts, one.in_bps, one.out_bps, one.in_pps, one.counted) == (now + 5, 7e6, None, 100.0, True)
        assert reader.interfaces_since(now + 30) == {}
        older = reader.interfaces_since(now - 200)
        assert sorted(older) == ["fw-a", "fw-b", "fw-c"] and older["fw-c"][0].ts == now - 115
    finally:
        db.close()
