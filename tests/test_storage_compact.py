"""The compact sample layout (schema 6): values at their stated precision, and the migration of old files."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.storage import T0, rows
from helpers.storage_legacy import fill_old, old_file

from panfm.models import CycleResult, DeviceSample, DeviceStatus, InterfaceSample
from panfm.storage.compact import SCALE, round_half_away
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.schema import (
    DEVICE_METRICS,
    IFACE_METRICS,
    MIGRATIONS,
    SCHEMA_VERSION,
    StorageUnavailable,
    connect_reader,
    connect_writer,
    migrate,
)

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ("fw-a", "fw-b")
IFACES = ("ethernet1/1", "ethernet1/2")
STEPS = 400  # 30 s apart: 3 h 20 min, two closed hours


def _device(dev: str, k: int) -> DeviceSample:
    """Awkward values: more decimals than are stored, a metric missing in some polls, gaps."""
    ts = T0 + 30 * k + 0.123
    inbound = None if k % 50 == 7 else 100.0 + (k * 7.31 % 50) + 0.00049
    outbound = None if inbound is None else 40.0 + k % 13 / 3
    return DeviceSample(
        dev, ts, inbound, outbound, None if inbound is None else inbound + outbound, 1234.567 + k, 987.654,
        1000 + k, 800 + k, 150, 3, 262142, (1000 + k) / 262142 * 100, 17, 9000, 12000,
        33.333 + k % 7, None if k % 5 == 0 else 12.5, 55.555, 0.004, 1.235,
        rtt_ms=12.3456 + k % 3, approx=None if k == 0 else k % 9 == 0,
    )


def _iface(dev: str, name: str, k: int) -> InterfaceSample:
    ts = T0 + 30 * k + 0.456
    return InterfaceSample(dev, name, ts, 1e8 + k * 1234.5678, 6e7 + 0.5, 15000.25 + k, 11000.75,
                           0.0334 if k % 4 else 0.0, 0.0005 * (k % 3), True, approx=k % 11 == 0)


def _cycles():
    for k in range(STEPS):
        yield CycleResult(
            started=T0 + 30 * k - 0.5, finished=T0 + 30 * k + 1,
            samples=tuple(_device(d, k) for d in DEVICES),
            interfaces=tuple(_iface(d, n, k) for d in DEVICES for n in IFACES),
            baselines=(), statuses=tuple(DeviceStatus(d, "up", T0 + 30 * k, T0 + 30 * k) for d in DEVICES),
        )


def _old_rows():
    dev_rows, if_rows = [], []
    for c in _cycles():
        for s in c.samples:
            dev_rows.append((s.device_id, round(s.ts * 1000), *(getattr(s, m) for m in DEVICE_METRICS), s.rtt_ms,
                             None if s.approx is None else int(s.approx)))
        for i in c.interfaces:
            if_rows.append((i.device_id, i.name, round(i.ts * 1000), *(getattr(i, m) for m in IFACE_METRICS),
                            int(i.counted), None if i.approx is None else int(i.approx)))
    return dev_rows, if_rows


END_S = int(T0 + 30 * (STEPS - 1) - 0.5)  # the last cycle's start: what it closed is rolled up


def _write_old(db: Path) -> None:
    old_file(db, 5)
    dev_rows, if_rows = _old_rows()
    fill_old(db, dev_rows, if_rows, int(T0) - 3600, END_S)


def _write_new(db: Path) -> None:
    with SampleStore.open(db) as store:
        for c in _cycles():
            store.write_cycle(c)


def _close(a, b, metric):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1.0 / SCALE.get(metric, 1) + 1e-9)


def _expect_same_history(old_db: Path, new_db: Path) -> None:
    ranges = [(T0, T0 + 3600, 2000), (T0 - 600, T0 + 30 * STEPS, 100), (T0 - 86400, T0 + 7 * 86400, 500)]
    with SampleReader.open(old_db) as a, SampleReader.open(new_db) as b:
        for dev in DEVICES:
            for start, end, points in ranges:
                got = a.history(dev, start, end, points, metrics=DEVICE_METRICS)
                want = b.history(dev, start, end, points, metrics=DEVICE_METRICS)
                assert (got.tier, got.bucket_s, len(got.points)) == (want.tier, want.bucket_s, len(want.points))
                for g, w in zip(got.points, want.points, strict=True):
                    assert g.keys() == w.keys()
                    for k in w:
                        assert _close(g[k], w[k], k.removesuffix("_max")), (start, end, g["t"], k, g[k], w[k])
                for name in IFACES:
                    gi = a.interface_history(dev, name, start, end, points)
                    wi = b.interface_history(dev, name, start, end, points)
                    assert [p["t"] for p in gi.points] == [p["t"] for p in wi.points]
                    for g, w in zip(gi.points, wi.points, strict=True):
                        assert all(_close(g[k], w[k], k.removesuffix("_max")) for k in w if k != "t"), g["t"]
            assert a.latest(dev) == b.latest(dev)
            assert a.interfaces_latest(dev) == b.interfaces_latest(dev)


def test_it_stores_every_value_in_whole_stated_units_and_reads_it_back(tmp_path):
    db = tmp_path / HISTORY_DB
    _write_new(db)
    k = STEPS - 1
    want, want_if = _device("fw-a", k), _iface("fw-a", "ethernet1/2", k)
    with SampleReader.open(db) as r:
        got = r.latest("fw-a")
        got_if = next(i for i in r.interfaces_latest("fw-a") if i.name == "ethernet1/2")
    for m in DEVICE_METRICS:
        v = getattr(want, m)
        assert getattr(got, m) == pytest.approx(round(v * SCALE[m]) / SCALE[m], abs=2e-3), m
    assert got.inbound_mbps == round(want.inbound_mbps, 3) and got.cpu_dataplane_pct == round(want.cpu_dataplane_pct, 2)
    assert got.total_mbps == pytest.approx(got.inbound_mbps + got.outbound_mbps)  # derived, not stored
    assert got.rtt_ms == round(want.rtt_ms, 3) and got.approx == want.approx and got.ts == want.ts
    assert got_if.ts == math.floor(want_if.ts) != want_if.ts  # an interface row: its whole second (schema 9)
    for m in IFACE_METRICS:
        assert getattr(got_if, m) == round_half_away(getattr(want_if, m) * SCALE[m]) / SCALE[m], m
    assert got_if.out_bps == 60000001  # 60,000,000.5: a half rounds away from zero, as SQLite's round()
    assert got_if.errors_per_s == 0.033 and got_if.counted and got_if.approx == want_if.approx
    # Integer keys and integers: no device id text and no REAL in a sample row; a rollup row is
    # an integer key and its packed buckets (schema 7).
    for table in ("dev_raw", "if_raw"):
        kinds = rows(db, f"SELECT * FROM {table} LIMIT 1")[0]
        assert all(v is None or isinstance(v, int) for v in kinds), table
    for table in ("dev_5m", "if_5m", "dev_1h", "if_1h", "dev_5m_g30m", "if_5m_g30m"):
        ((key, b, cnt),) = rows(db, f"SELECT id, b, cnt FROM {table} LIMIT 1")
        assert isinstance(key, int) and isinstance(b, bytes) and (cnt is None or isinstance(cnt, bytes)), table


def test_it_migrates_a_version_5_file_to_the_same_history_as_the_compact_writer(tmp_path):
    old_db, new_db = tmp_path / "old" / HISTORY_DB, tmp_path / "new" / HISTORY_DB
    old_db.parent.mkdir()
    new_db.parent.mkdir()
    _write_old(old_db)
    before = rows(old_db, "SELECT count(*), sum(n) FROM device_5m")
    with pytest.raises(StorageUnavailable, match="not migrated"):
        connect_reader(old_db)
    SampleStore.open(old_db).close()
    _write_new(new_db)
    assert rows(old_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows(old_db, "SELECT count(*), sum(n) FROM device_5m") == before
    assert rows(old_db, "SELECT * FROM known_interfaces ORDER BY 1, 2") == [(d, n) for d in DEVICES for n in IFACES]
    for table in ("device_samples", "interface_samples", "iface_1h"):
        assert rows(old_db, f"SELECT count(*) FROM {table}") == rows(new_db, f"SELECT count(*) FROM {table}")
    _expect_same_history(old_db, new_db)
    # The migrated file goes on like any other: the next cycles roll up.
    with SampleStore.open(old_db) as store:
        store.write_cycle(next(iter(_cycles())))
    assert rows(old_db, "SELECT count(*) FROM dev_raw") == rows(new_db, "SELECT count(*) FROM dev_raw")


_CONVERT = """
import sys, time, sqlite3
sys.path.insert(0, sys.argv[2])
from panfm.storage import {module}
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
def say(line):
    print(line, flush=True)
    time.sleep(0.02)
{module}.convert(conn, chunk=int(sys.argv[3]), progress=say, log_every_s=0)
print("finished", flush=True)
"""


def _kill_inside(script: str, db: Path, chunk: int, prefix: str) -> list[str]:
    """Run a conversion in a child process and SIGKILL it at its first progress line starting with `prefix`."""
    seen = []
    with subprocess.Popen([sys.executable, "-c", script, str(db), str(ROOT), str(chunk)],
                          stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.strip())
            if line.startswith(prefix) and "of" in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, seen
    assert "finished" not in seen
    return seen


def _run(script: str, db: Path, chunk: int) -> list[str]:
    """Run a conversion to its end in a child process; its output lines."""
    return subprocess.run([sys.executable, "-c", script, str(db), str(ROOT), str(chunk)], capture_output=True,
                          text=True, cwd=ROOT, check=True, timeout=120).stdout.splitlines()


MIGRATE = _CONVERT.format(module="compact_migrate")


def test_a_migration_killed_in_the_middle_resumes_and_finishes_correctly(tmp_path):
    old_db, new_db = tmp_path / "old" / HISTORY_DB, tmp_path / "new" / HISTORY_DB
    old_db.parent.mkdir()
    new_db.parent.mkdir()
    _write_old(old_db)
    _write_new(new_db)
    _kill_inside(MIGRATE, old_db, 97, "compact: interface_samples:")  # inside the second table
    assert rows(old_db, "PRAGMA user_version") == [(5,)]
    with pytest.raises(StorageUnavailable, match="not migrated"):  # the web waits for the whole conversion
        connect_reader(old_db)
    ((table, done),) = rows(old_db, "SELECT tbl, rows FROM compact_progress WHERE tbl = 'interface_samples'")
    assert 0 < done < 2 * len(DEVICES) * len(IFACES) * STEPS
    assert rows(old_db, "SELECT count(*) FROM sqlite_master WHERE name = 'device_samples' AND type = 'table'") == [(0,)]
    done_lines = _run(MIGRATE, old_db, 97)
    assert done_lines[0].startswith("compact: interface_samples: resuming after") and done_lines[-1] == "finished"
    assert rows(old_db, "PRAGMA user_version") == [(6,)]
    SampleStore.open(old_db).close()  # migration 7 (packed tiers) as the clock runs it next
    assert rows(old_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    for table in ("device_samples", "interface_samples", "device_5m", "iface_5m", "device_1h", "iface_1h"):
        assert rows(old_db, f"SELECT count(*) FROM {table}") == rows(new_db, f"SELECT count(*) FROM {table}"), table
    _expect_same_history(old_db, new_db)


PACK = _CONVERT.format(module="pack_migrate")


def _version_6(db: Path) -> None:
    """A version-5 file of the same cycles, converted to the compact layout (schema 6) only."""
    _write_old(db)
    _run(MIGRATE, db, 5000)
    assert rows(db, "PRAGMA user_version") == [(6,)]


def test_a_packing_killed_in_the_middle_resumes_and_finishes_correctly(tmp_path):
    old_db, new_db = tmp_path / "old" / HISTORY_DB, tmp_path / "new" / HISTORY_DB
    old_db.parent.mkdir()
    new_db.parent.mkdir()
    _version_6(old_db)
    views = ("device_5m", "iface_5m", "device_1h", "iface_1h", "device_5m_g30m", "iface_5m_g30m")
    before = {v: rows(old_db, f"SELECT * FROM {v} ORDER BY 1, 2, 3") for v in views}
    _write_new(new_db)
    _kill_inside(PACK, old_db, 7, "pack: if_5m:")  # inside the second table
    assert rows(old_db, "PRAGMA user_version") == [(6,)]
    with pytest.raises(StorageUnavailable, match="not migrated"):  # the web waits for the whole conversion
        connect_reader(old_db)
    ((done,),) = rows(old_db, "SELECT rows FROM pack_progress WHERE tbl = 'if_5m'")
    assert 0 < done < rows(old_db, "SELECT count(*) FROM if_5m")[0][0]
    assert rows(old_db, "SELECT count(*) FROM sqlite_master WHERE name = 'dev_5m' AND type = 'table'") == [(0,)]
    done_lines = _run(PACK, old_db, 7)
    assert done_lines[0].startswith("pack: if_5m: resuming after") and done_lines[-1] == "finished"
    assert rows(old_db, "PRAGMA user_version") == [(7,)]
    connect_writer(old_db).close()  # the later migrations (8: the tiers' head tables)
    assert rows(old_db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    for v in views:  # every bucket, value and count as the old rows had them (the old names read the same)
        assert rows(old_db, f"SELECT * FROM {v} ORDER BY 1, 2, 3") == before[v], v
    _expect_same_history(old_db, new_db)


RAW_SECONDS = _CONVERT.format(module="raw_migrate")


def test_interface_times_converted_to_seconds_by_a_conversion_killed_midway_read_as_the_new_writer_writes_them(
        tmp_path):
    old_db, new_db = tmp_path / "old" / HISTORY_DB, tmp_path / "new" / HISTORY_DB
    old_db.parent.mkdir()
    new_db.parent.mkdir()
    _write_old(old_db)
    conn = sqlite3.connect(old_db, isolation_level=None)  # as far as schema 8: raw times in milliseconds
    try:
        migrate(conn, MIGRATIONS[:8])
    finally:
        conn.close()
    assert rows(old_db, "PRAGMA user_version") == [(8,)]
    before = {t: rows(old_db, f"SELECT * FROM {t} ORDER BY 1, 2") for t in ("dev_raw", "if_raw")}
    assert before["if_raw"][0][1] % 1000 == 456  # milliseconds in the file
    _write_new(new_db)
    _kill_inside(RAW_SECONDS, old_db, 97, "raw seconds: if_raw:")  # after a chunk or more
    assert rows(old_db, "PRAGMA user_version") == [(8,)]
    with pytest.raises(StorageUnavailable, match="not migrated"):  # the web waits for the whole conversion
        connect_reader(old_db)
    ((done,),) = rows(old_db, "SELECT rows FROM raw_s_progress WHERE tbl = 'if_raw'")
    assert 0 < done < len(before["if_raw"])
    assert rows(old_db, "SELECT count(*) FROM if_raw_s") == [(done,)]  # the chunks copied, in the new table
    done_lines = _run(RAW_SECONDS, old_db, 97)
    assert done_lines[0].startswith("raw seconds: if_raw: resuming after") and done_lines[-1] == "finished"
    assert rows(old_db, "PRAGMA user_version") == [(9,)]
    assert rows(old_db, "SELECT * FROM dev_raw ORDER BY 1, 2") == before["dev_raw"]  # device rows: exact, untouched
    want = [(r[0], r[1] // 1000, *r[2:]) for r in before["if_raw"]]  # every row, same key, its second
    assert rows(old_db, "SELECT * FROM if_raw ORDER BY 1, 2") == want
    for view in ("device_samples", "interface_samples"):  # the old names read as the new writer's file reads
        sql = f"SELECT * FROM {view} ORDER BY 1, 2, 3"
        assert rows(old_db, sql) == rows(new_db, sql), view
    _expect_same_history(old_db, new_db)
    # The old names still write and delete (the triggers were made again with the views).
    with SampleStore.open(old_db) as store:
        store.write_cycle(next(iter(_cycles())))
    assert rows(old_db, "SELECT count(*) FROM if_raw") == rows(new_db, "SELECT count(*) FROM if_raw")
    n = rows(old_db, "SELECT count(*) FROM if_raw")[0][0]
    with connect_writer(old_db) as conn:
        conn.execute("DELETE FROM interface_samples WHERE device_id = 'fw-a' AND interface = 'ethernet1/1' AND ts = ?",
                     (int(T0) * 1000,))
        conn.execute("INSERT INTO interface_samples (device_id, interface, ts, in_bps) VALUES ('fw-a', 'lo', ?, 5)",
                     (int(T0) * 1000 + 999,))
    assert rows(old_db, "SELECT count(*) FROM if_raw") == [(n,)]  # one gone, one added
    assert rows(old_db, "SELECT ts, in_bps FROM interface_samples WHERE interface = 'lo'") == [(int(T0) * 1000, 5.0)]
