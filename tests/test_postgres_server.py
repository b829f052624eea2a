"""The suite's own PostgreSQL (tests/helpers/postgres.py): started here, isolated per test."""

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_the_suite_runs_its_own_postgresql_15_or_newer_on_loopback(pg_server, pg_url):
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
        port = conn.execute("SHOW port").fetchone()[0]
    assert int(version) >= 150000
    assert listen == "127.0.0.1"
    assert int(port) == pg_server.port


def test_each_test_gets_an_empty_database_of_its_own(pg_server):
    first, second = pg_server.fresh_database(), pg_server.fresh_database()
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int)")
    with psycopg.connect(second) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert tables == 0
