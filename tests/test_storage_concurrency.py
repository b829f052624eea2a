"""throughput_history.db under concurrency: a reader process, online backup, kill -9 mid-commit."""

import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import requires
from helpers.storage import T0, cycle

from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore
from panfm.storage.sqlite import online_backup

DEVICES = tuple(f"fw{i}" for i in range(20))
IFACES = ("ethernet1/1", "ethernet1/2", "ethernet1/3", "ethernet1/4")


def _reader_loop(path: str, ready, stop, out) -> None:
    """Query like the web does (a fresh read-only connection per request) until told to stop."""
    ops, errors = 0, []
    while not stop.is_set():
        try:
            with SampleReader.open(Path(path)) as r:
                r.latest_all()
                r.history("fw1", T0, T0 + 86400)
                r.interfaces_latest("fw2")
            ops += 1
        except Exception as exc:  # reported to the parent, which fails the test
            errors.append(repr(exc))
        ready.set()
    out.put((ops, errors))


def test_it_serves_a_reader_process_while_the_writer_commits(tmp_path):
    db = tmp_path / HISTORY_DB
    ctx = multiprocessing.get_context("spawn")
    ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    limit = 1024 * 1024
    with SampleStore.open(db, wal_limit_bytes=limit) as store:
        store.write_cycle(cycle(T0, devices=DEVICES, ifaces=IFACES))
        proc = ctx.Process(target=_reader_loop, args=(str(db), ready, stop, out))
        proc.start()
        try:
            assert ready.wait(30), "reader process did not start"
            wal_max = 0
            for k in range(1, 160):  # 80 minutes of 30 s cycles: 5-minute and hourly rollups run too
                store.write_cycle(cycle(T0 + 30 * k, devices=DEVICES, ifaces=IFACES), clock_stats={"k": k})
                wal_max = max(wal_max, db.with_name(db.name + "-wal").stat().st_size)
        finally:
            stop.set()
            ops, errors = out.get(timeout=30)
            proc.join(10)
    assert errors == []
    assert ops >= 10
    # A busy reader starves the autocheckpoint; the forced checkpoint past the limit bounds the WAL
    # (these cycles write ~20 MB of WAL frames in all; a checkpoint a reader outlasts retries next cycle).
    assert wal_max < 3 * limit


def test_it_backs_up_a_valid_database_while_the_writer_commits(tmp_path):
    db = tmp_path / HISTORY_DB
    stop = threading.Event()
    written = []
    with SampleStore.open(db) as store:
        store.write_cycle(cycle(T0, devices=DEVICES, ifaces=IFACES))

        def write():
            k = 1
            while not stop.is_set():
                store.write_cycle(cycle(T0 + 30 * k, devices=DEVICES, ifaces=IFACES))
                written.append(k)
                k += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(written) < 20:
                time.sleep(0.01)
            online_backup(db, tmp_path / "b1.db")
            store.backup(tmp_path / "b2.db")
        finally:
            stop.set()
            writer.join()
    for name in ("b1.db", "b2.db"):
        conn = sqlite3.connect(tmp_path / name)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            n = conn.execute("SELECT count(*) FROM device_samples").fetchone()[0]
            # Whole cycles only: every device of each copied cycle is there.
            assert n >= 20 * len(DEVICES) and n % len(DEVICES) == 0
        finally:
            conn.close()
    assert not (tmp_path / "b1.db.tmp").exists()


_KILL_WRITER = """
import sys
from pathlib import Path
sys.path[:0] = [{root!r}, {tests!r}]
from helpers.storage import T0, cycle
from panfm.storage.samples import SampleStore
store = SampleStore.open(Path({db!r}))
k = {start}
while True:
    store.write_cycle(cycle(T0 + 30 * k, devices=tuple(f"fw{{i}}" for i in range(50)), ifaces=("e1", "e2")))
    print(k, flush=True)
    k += 1
"""


@requires(sys.platform != "win32", "SIGKILL (a POSIX system)")
def test_it_survives_kill_9_during_commits_with_every_committed_cycle_intact(tmp_path):
    db = tmp_path / HISTORY_DB
    root = str(Path(__file__).resolve().parent.parent)
    committed = -1
    for round_ in range(3):
        code = _KILL_WRITER.format(root=root, tests=str(Path(root) / "tests"), db=str(db), start=committed + 1)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(15 + 7 * round_):  # kill at a different point each round
                committed = int(proc.stdout.readline())
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            counts = conn.execute("SELECT ts, count(*) FROM device_samples GROUP BY ts").fetchall()
            # Every reported cycle is there, whole; a cycle cut by the kill is all or nothing.
            assert all(n == 50 for _, n in counts)
            assert {round((ts / 1000 - T0) / 30) for ts, _ in counts} >= set(range(committed + 1))
        finally:
            conn.close()
