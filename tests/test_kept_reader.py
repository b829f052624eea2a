"""The web's kept read-only connection to throughput_history.db (`kept_samples.KeptReaders`)."""

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from helpers.storage import T0, cycle

from panfm.storage.kept_samples import KeptReaders
from panfm.storage.samples import HISTORY_DB, SampleStore, StorageUnavailable


def _db(folder: Path, *, cycles: int, inbound: float = 10.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / HISTORY_DB
    with SampleStore.open(db) as store:
        for k in range(cycles):
            store.write_cycle(cycle(T0 + 30 * k, inbound=inbound))
    return db


def _conn_of(reader) -> sqlite3.Connection:
    return reader._conn


def test_a_thread_borrows_the_same_connection_each_time_and_other_threads_their_own(tmp_path):
    kept = KeptReaders(_db(tmp_path, cycles=3))
    with kept.reader() as r1:
        first = _conn_of(r1)
        assert r1.latest("fw1").ts == T0 + 60
    with kept.reader() as r2:
        assert _conn_of(r2) is first
        first.execute("SELECT 1")  # not closed by leaving the first `with`
    other = []
    t = threading.Thread(target=lambda: other.append(_conn_of(kept.reader())))
    t.start()
    t.join()
    assert other and other[0] is not first


def test_it_sees_the_clocks_new_rows_through_the_kept_connection(tmp_path):
    db = _db(tmp_path, cycles=2)
    kept = KeptReaders(db)
    with kept.reader() as r:
        assert r.latest("fw1").ts == T0 + 30
    with SampleStore.open(db) as store:
        store.write_cycle(cycle(T0 + 60, inbound=77.0))
    with kept.reader() as r:
        newest = r.latest("fw1")
    assert (newest.ts, newest.inbound_mbps) == (T0 + 60, 77.0)


def test_a_replaced_file_is_opened_anew_and_a_deleted_one_is_unavailable(tmp_path):
    db = _db(tmp_path / "live", cycles=2, inbound=10.0)
    kept = KeptReaders(db)
    with kept.reader() as r:
        old = _conn_of(r)
        assert r.latest("fw1").inbound_mbps == 10.0
    # A restore puts another file in its place (another inode): its rows, not the old file's.
    other = _db(tmp_path / "restored", cycles=4, inbound=55.0)
    shutil.copy(other, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with kept.reader() as r:
        assert _conn_of(r) is not old
        assert (r.latest("fw1").ts, r.latest("fw1").inbound_mbps) == (T0 + 90, 55.0)
    with pytest.raises(sqlite3.ProgrammingError):
        old.execute("SELECT 1")  # the old file's connection was closed, not leaked
    db.unlink()
    with pytest.raises(StorageUnavailable, match="not found"):
        kept.reader()


def test_a_failed_query_drops_the_connection(tmp_path):
    kept = KeptReaders(_db(tmp_path, cycles=1))
    with pytest.raises(sqlite3.OperationalError), kept.reader() as r:
        broken = _conn_of(r)
        broken.execute("SELECT * FROM no_such_table")
    with kept.reader() as r:
        assert _conn_of(r) is not broken
        assert r.latest("fw1") is not None


def test_an_idle_kept_connection_does_not_hold_back_the_clocks_checkpoint(tmp_path):
    db = _db(tmp_path, cycles=1)
    kept = KeptReaders(db)
    with SampleStore.open(db) as store:
        for k in range(1, 40):
            store.write_cycle(cycle(T0 + 30 * k))
            with kept.reader() as r:
                r.history("fw1", T0, T0 + 30 * k + 1)
        assert Path(f"{db}-wal").stat().st_size > 0
        store.checkpoint()  # TRUNCATE: fails to truncate while a reader holds a snapshot
        assert Path(f"{db}-wal").stat().st_size == 0


# ---- every SQLite file's reads in the web: Backend(keep_reads=True) -------------------------

from panfm.storage.backend import Backend  # noqa: E402
from panfm.storage.config_schema import MIGRATIONS as CONFIG_MIGRATIONS  # noqa: E402
from panfm.storage.config_store import CONFIG_DB  # noqa: E402


def _config_db(folder: Path, value: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    handle = Backend(folder).handle(CONFIG_DB, CONFIG_MIGRATIONS)
    with handle.write() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS probe (v TEXT)")
        conn.execute("DELETE FROM probe")
        conn.execute("INSERT INTO probe VALUES (?)", (value,))


def _read(backend: Backend) -> tuple[sqlite3.Connection, str]:
    with backend.handle(CONFIG_DB, CONFIG_MIGRATIONS).read() as conn:
        return conn, conn.execute("SELECT v FROM probe").fetchone()[0]


def test_the_webs_backend_keeps_one_read_connection_per_thread_and_sees_new_writes(tmp_path):
    _config_db(tmp_path, "first")
    web = Backend(tmp_path, keep_reads=True)
    c1, v1 = _read(web)
    _config_db(tmp_path, "second")  # another connection writes (the web's own writes, the CLI)
    c2, v2 = _read(web)
    assert (v1, v2) == ("first", "second") and c1 is c2  # one handle per call, one connection per thread
    other = []
    t = threading.Thread(target=lambda: other.append(_read(web)[0]))
    t.start()
    t.join()
    assert other[0] is not c1
    # Any other process (the clock, the CLI) opens and closes one per read, as before.
    plain = Backend(tmp_path)
    p1, _ = _read(plain)
    with pytest.raises(sqlite3.ProgrammingError):
        p1.execute("SELECT 1")


def test_the_webs_kept_read_connection_follows_a_replaced_file_and_is_dropped_after_an_error(tmp_path):
    _config_db(tmp_path / "live", "old")
    _config_db(tmp_path / "restored", "restored")
    web = Backend(tmp_path / "live", keep_reads=True)
    old, _ = _read(web)
    shutil.copy(tmp_path / "restored" / CONFIG_DB, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", tmp_path / "live" / CONFIG_DB)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / 'live' / CONFIG_DB}{suffix}").unlink(missing_ok=True)
    new, value = _read(web)
    assert value == "restored" and new is not old
    with pytest.raises(sqlite3.OperationalError), web.handle(CONFIG_DB, CONFIG_MIGRATIONS).read() as conn:
        conn.execute("SELECT * FROM no_such_table")
    again, value = _read(web)
    assert again is not new and value == "restored"
