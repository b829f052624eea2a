"""The open period of each packed tier kept unpacked (schema 8, panfm/storage/tier_head.py)."""

import dataclasses
import sqlite3

import pytest
from helpers.storage import T0, cycle, rows

import panfm.storage.queries as q
import panfm.storage.tiers as tiers
from panfm.storage.samples import HISTORY_DB, SampleStore
from panfm.storage.schema import connect_reader


def _write(db, cycles, **fleet):
    with SampleStore.open(db) as store:
        for k in range(cycles):
            store.write_cycle(cycle(T0 + 30 * k, inbound=float(k % 17), **fleet))
    return T0 + 30 * (cycles - 1)


def test_the_open_period_stays_unpacked_and_is_packed_once_it_closes(tmp_path):
    db = tmp_path / HISTORY_DB
    last = _write(db, 150)  # 75 minutes from 22:15: the 22:00 hour closes, 23:00 is open
    closed = int(last - 0.5) // 300 * 300  # buckets before this are rolled up
    open_p = (closed - 300) // 3600
    head = rows(db, "SELECT id FROM dev_5m_head")
    packed = rows(db, "SELECT id, b FROM dev_5m")
    assert head and {(h >> tiers.HS) & tiers.PMASK for (h,) in head} == {open_p}
    assert packed and all(rid & tiers.PMASK < open_p for rid, _ in packed)
    assert sum(tiers.bucket_count(b) for _, b in packed) == (open_p * 3600 - int(T0)) // 300  # 22:15-23:00: 9
    # The old-name view reads both, every closed bucket once, in 5-minute steps.
    buckets = [b for (b,) in rows(db, "SELECT bucket FROM device_5m ORDER BY 1")]
    assert buckets == list(range(int(T0), closed, 300))
    assert rows(db, "SELECT count(*) FROM iface_5m") == [(len(buckets),)]


# 91: the 22:30 group's last bucket not yet closed (the group not written); 92: just written
@pytest.mark.parametrize("cycles", [91, 92])
def test_history_reads_the_head_and_the_groups_not_yet_written_like_grouping_on_the_fly(tmp_path, cycles):
    db = tmp_path / HISTORY_DB
    last = _write(db, cycles)
    with sqlite3.connect(db) as w:  # no raw rows: history reads the 5-minute tier
        w.execute("DELETE FROM dev_raw")
        w.execute("DELETE FROM if_raw")
    conn = connect_reader(db)
    try:
        for series in (q.device_series("fw1"), q.iface_series("fw1", "ethernet1/1")):
            got = q.history(conn, series, T0, last + 1, max_points=4)
            want = q.history(conn, dataclasses.replace(series, group_tables={}), T0, last + 1, max_points=4)
            assert (got.tier, want.tier) == ("5m", "5m") and got.bucket_s == want.bucket_s >= 1800
            assert [p["t"] for p in got.points] == [p["t"] for p in want.points] and got.points
            for g, w in zip(got.points, want.points, strict=True):
                assert g.keys() == w.keys()
                for k, v in w.items():  # the groups store averages rounded to the stored unit
                    assert g[k] == (None if v is None else pytest.approx(v, abs=1e-3)), (g["t"], k)
    finally:
        conn.close()


def test_packing_rolling_up_and_grouping_in_batches_of_series_stores_the_same_rows(tmp_path, monkeypatch):
    import panfm.storage.tier_head as tier_head

    whole, batched = tmp_path / "whole", tmp_path / "batched"
    whole.mkdir()
    batched.mkdir()
    fleet = {"devices": ("fw1", "fw2", "fw3"), "ifaces": ("ethernet1/1", "ethernet1/2")}
    _write(whole / HISTORY_DB, 150, **fleet)
    # Batches of two series (the clock: 512) for the hour's pack, and of two aggregate rows for
    # each rollup and two series for the 30-minute groups.
    monkeypatch.setattr(tier_head, "PACK_CHUNK", 2)
    _write(batched / HISTORY_DB, 150, **fleet)
    stored = {}
    for table in ("dev_5m", "if_5m", "dev_5m_head", "if_5m_head", "dev_1h", "if_1h", "dev_1h_head", "if_1h_head",
                  "dev_5m_g30m", "if_5m_g30m", "dev_5m_g30m_head", "if_5m_g30m_head"):
        got = rows(batched / HISTORY_DB, f"SELECT id, b, cnt FROM {table} ORDER BY id")
        assert got == rows(whole / HISTORY_DB, f"SELECT id, b, cnt FROM {table} ORDER BY id"), table
        stored[table] = len(got)
    # 75 minutes: every tier and grouping holds rows (the hour tier and the groups only in their open period).
    filled = ("dev_5m", "if_5m", "dev_1h_head", "if_1h_head", "dev_5m_g30m_head", "if_5m_g30m_head")
    assert all(stored[t] for t in filled), stored
    assert rows(batched / HISTORY_DB, "SELECT count(DISTINCT id >> 24) FROM if_5m") == [(6,)]  # three batches
