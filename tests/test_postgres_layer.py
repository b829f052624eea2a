"""The PostgreSQL connection layer (panfm/storage/postgres.py) and the start check of `database_url`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import pg_env

import config
import throughput_storage
from panfm.storage.postgres import PgDatabase, PgIntegrityError, PgUnavailable, check_database, qmark

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ["CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
              "ALTER TABLE things ADD COLUMN note TEXT"]


def test_question_marks_become_psycopg_placeholders_outside_quotes_only():
    assert qmark("SELECT * FROM t WHERE a = ? AND b LIKE '%?%' AND c = ?") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE '%%?%%' AND c = %s")
    assert qmark("SELECT 5 % 2") == "SELECT 5 %% 2"


def test_migrations_run_once_and_stores_speak_question_marks(pg_url):
    db = PgDatabase(pg_url)
    try:
        assert db.migrate("things", MIGRATIONS) == 2
        assert db.migrate("things", MIGRATIONS) == 0
        assert db.migrate("things", [*MIGRATIONS, "CREATE INDEX things_note ON things (note)"]) == 1
        with db.transaction() as tx:
            tx.execute("INSERT INTO things (id, name, note) VALUES (?, ?, ?)", (1, "a?%", "n"))
        with db.connection() as conn:
            assert conn.fetchall("SELECT id, name, note FROM things WHERE name LIKE 'a%'") == [
                {"id": 1, "name": "a?%", "note": "n"}]
            assert conn.fetchone("SELECT version FROM panfm_schema WHERE component = ?", ("things",)) == {
                "version": 3}
    finally:
        db.close()


def test_a_failed_transaction_commits_nothing_and_raises_the_front_doors_errors(pg_url):
    db = PgDatabase(pg_url)
    try:
        db.migrate("things", MIGRATIONS)
        with pytest.raises(throughput_storage.IntegrityError) as caught, db.transaction() as tx:
            tx.execute("INSERT INTO things (id, name) VALUES (?, ?)", (1, "a"))
            tx.execute("INSERT INTO things (id, name) VALUES (?, ?)", (2, "a"))
        assert isinstance(caught.value, PgIntegrityError)
        with pytest.raises(throughput_storage.DatabaseError), db.connection() as conn:
            conn.execute("SELECT no_such_column FROM things")
        with db.connection() as conn:
            assert conn.fetchall("SELECT id FROM things") == []
    finally:
        db.close()


def test_two_processes_starting_together_migrate_once(pg_url):
    dbs = [PgDatabase(pg_url) for _ in range(4)]
    ran: list[int] = []
    barrier = threading.Barrier(len(dbs))

    def start(db: PgDatabase) -> None:
        barrier.wait()
        ran.append(db.migrate("things", MIGRATIONS))

    threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert sorted(ran) == [0, 0, 0, 2]
    finally:
        for db in dbs:
            db.close()


def test_the_pool_reconnects_by_itself_after_a_server_restart(pg_server, pg_url):
    db = PgDatabase(pg_url, pool_timeout_s=3)
    try:
        with db.connection() as conn:
            assert conn.fetchone("SELECT 1 AS one") == {"one": 1}
        pg_server.stop("fast")
        try:
            with pytest.raises(PgUnavailable), db.connection() as conn:
                conn.execute("SELECT 1")
        finally:
            pg_server.start()  # even when the check above fails: the worker's other tests need the server
        answers = []
        for _ in range(5):  # the first use after the restart may still meet a dropped connection
            try:
                with db.connection() as conn:
                    answers.append(conn.fetchone("SELECT 1 AS one"))
                break
            except PgUnavailable:
                continue
        assert answers == [{"one": 1}]
    finally:
        db.close()


def _pid(conn):
    return conn.fetchone("SELECT pg_backend_pid() AS p")["p"]


def test_a_request_scope_takes_one_connection_for_all_its_reads_and_writes(pg_url):
    db = PgDatabase(pg_url)
    try:
        db.migrate("things", MIGRATIONS)
        db.pool.pop_stats()
        with db.request_scope():
            pass
        assert db.pool.pop_stats().get("requests_num", 0) == 0  # a request that reads nothing takes none
        with db.request_scope():
            with db.connection() as conn:
                first = _pid(conn)
            with db.transaction() as tx:
                tx.execute("INSERT INTO things (id, name) VALUES (?, ?)", (1, "a"))
                assert _pid(tx) == first
                with db.connection() as other:  # inside the scope's transaction: another connection,
                    assert _pid(other) != first  # which sees only what is committed, as before
                    assert other.fetchone("SELECT count(*) AS n FROM things")["n"] == 0
            with pytest.raises(PgIntegrityError), db.transaction() as tx:  # rolled back; the connection lives on
                tx.execute("INSERT INTO things (id, name) VALUES (?, ?)", (2, "a"))
            with db.request_scope(), db.connection() as conn:  # a nested scope changes nothing
                assert _pid(conn) == first
                assert conn.fetchall("SELECT id FROM things") == [{"id": 1}]
        assert db.pool.pop_stats()["requests_num"] == 2  # the scope's, and the one inside its transaction
        with db.connection() as conn:  # after the scope: the pool again, and the connection went back
            conn.execute("SELECT 1")
        assert db.pool.pop_stats()["requests_num"] == 1
    finally:
        db.close()


@pytest.fixture
def pg_web(tmp_path, pg_url):
    """A logged-in Flask test client of the web on PostgreSQL (its stores closed after the test)."""
    from helpers.alerts import INITIAL, web_client

    config.ensure_data_dir(tmp_path / "data")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"), "PANFM_ADMIN_PASSWORD": INITIAL,
                                         **pg_env(pg_url)})
    client = web_client(settings)
    try:
        yield client
    finally:
        client.application.extensions["panfm"].stores.close()


def test_a_web_request_on_postgresql_takes_one_pooled_connection(pg_web):
    client = pg_web
    pool = client.application.extensions["panfm"].stores.backend.db.pool
    client.get("/api/devices")
    pool.pop_stats()
    for path in ("/api/devices", "/api/settings", "/api/alerts/rules"):
        assert client.get(path).status_code == 200
        assert pool.pop_stats()["requests_num"] == 1, path  # the session, the user and the answer's reads


def test_an_exhausted_pool_is_a_clear_unavailable_error_and_the_next_use_works(pg_url):
    # trust authentication ignores the password: it is there to be kept out of the message
    url = pg_url.replace("panfm_test@", "panfm_test:hunter22pw@")
    db = PgDatabase(url, max_size=2, pool_timeout_s=0.5)
    try:
        with db.connection() as a, db.connection() as b:  # every connection of the pool lent
            assert _pid(a) != _pid(b)
            with pytest.raises(PgUnavailable) as caught, db.connection():
                pass
            assert "PoolTimeout" in str(caught.value) and "hunter22pw" not in str(caught.value)
        with db.connection() as conn:  # given back: the pool lends again
            assert conn.fetchone("SELECT 1 AS one") == {"one": 1}
    finally:
        db.close()


def test_a_web_request_finding_the_pool_exhausted_answers_503_and_the_next_one_200(pg_web):
    client = pg_web
    pool = client.application.extensions["panfm"].stores.backend.db.pool
    assert client.get("/api/devices").status_code == 200
    pool.timeout = 0.5  # the wait for a free connection (15 s in production)
    held = [pool.getconn() for _ in range(pool.max_size)]  # e.g. slow requests holding every one
    try:
        r = client.get("/api/devices")
        assert r.status_code == 503 and r.get_json()["error"] == "database_unavailable"
    finally:
        for conn in held:
            pool.putconn(conn)
    assert client.get("/api/devices").status_code == 200  # the same process, answering again


def test_start_check_names_the_setting_and_the_cause_never_the_password(pg_server, pg_url):
    assert check_database(pg_url) >= 130000
    cases = {
        "postgresql://someone:s3cretpass@127.0.0.1:1/panfm": "cannot connect",
        "postgresql://someone:s3cretpass@127.0.0.1:notaport/panfm": "port",
        pg_server.url("no_such_database"): "does not exist",
    }
    for url, cause in cases.items():
        with pytest.raises(config.ConfigError) as caught:
            check_database(url)
        message = str(caught.value)
        assert message.startswith("setting database_url: ")
        assert cause in message
        assert "s3cretpass" not in message


def test_start_check_refuses_a_user_without_the_right_to_create_tables(pg_server, pg_url):
    pg_server.psql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'panfm_reader')"
                   " THEN CREATE ROLE panfm_reader LOGIN; END IF; END $$")
    reader_url = pg_url.replace("panfm_test@", "panfm_reader@")
    with pytest.raises(config.ConfigError, match=r"may not create tables.*grant it CREATE"):
        check_database(reader_url)


def test_a_database_url_that_is_not_postgresql_is_refused_without_showing_it():
    with pytest.raises(config.ConfigError) as caught:
        config.load_settings(env={"PANFM_DATABASE_URL": "mysql://root:hunter22@db/panfm"})
    assert "database_url" in str(caught.value) and "hunter22" not in str(caught.value)


def test_the_url_can_come_from_a_secret_file(tmp_path, pg_url):
    secret = tmp_path / "db_url"
    secret.write_text(pg_url + "\n")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"),
                                         "PANFM_DATABASE_URL_FILE": str(secret)})
    assert settings.database_url == pg_url and settings.on_postgres
    assert pg_url not in repr(settings)


def _env(tmp_path: Path, url: str, keys: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANFM_")}
    env.update(pg_env(url) if keys else {"PANFM_DATABASE_URL": url})
    env.update({"PANFM_DATA_DIR": str(tmp_path / "data"), "PANFM_PORT": "1"})
    return env


@pytest.mark.parametrize("program", ["clock", "gunicorn"])
@pytest.mark.parametrize(("keys", "cause"), [
    (True, "cannot connect to PostgreSQL at 127.0.0.1:1/panfm"),
    (False, "every host must share its keys; set encryption_key (PANFM_ENCRYPTION_KEY"),
])
def test_clock_and_web_stop_with_exit_2_and_a_message_when_the_database_is_unusable(tmp_path, program, keys, cause):
    url = "postgresql://panfm:s3cretpass@127.0.0.1:1/panfm"
    argv = ([sys.executable, "clock.py"] if program == "clock" else
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"])
    done = subprocess.run(argv, cwd=ROOT, env=_env(tmp_path, url, keys), capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "database_url" in output and cause in output
    assert "Traceback" not in output
    assert "s3cretpass" not in output
