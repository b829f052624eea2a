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

