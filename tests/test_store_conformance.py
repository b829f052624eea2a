"""One suite for the store interfaces, run on both backends (scenario S11): SQLite files and PostgreSQL.

Every test takes `stores` (tests/conftest.py), built by `open_stores` from settings with an
empty `database_url` (SQLite in the data folder) or a fresh PostgreSQL database: the same
calls must give the same answers.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from panfm.models import DeviceConfig, TlsConfig
from throughput_storage import IntegrityError, config_store

ROOT = Path(__file__).resolve().parent.parent


def _device(name: str, host: str, **kw) -> DeviceConfig:
    return DeviceConfig(id="", name=name, host=host, port=443, api_key=kw.pop("api_key", "K-" + name),
                        username=None, password=kw.pop("password", None),
                        tls=TlsConfig(mode="fingerprint", fingerprint_sha256="ab" * 32, ca_pem=None),
                        interfaces=("ethernet1/1",), enabled=kw.pop("enabled", True))


def test_devices_round_trip_with_their_secrets_encrypted_at_rest(stores):
    assert stores.devices.list() == []
    fw1 = stores.devices.add(_device("fw1", "10.0.0.1", password="pw-1"))
    stores.devices.add(_device("fw0", "10.0.0.2", enabled=False))
    got = stores.devices.get(fw1)
    assert got is not None and got.api_key == "K-fw1" and got.password == "pw-1"
    assert got.interfaces == ("ethernet1/1",) and got.tls.fingerprint_sha256 == "ab" * 32
    assert [d.name for d in stores.devices.list()] == ["fw0", "fw1"]
    assert [d.name for d in stores.devices.list(enabled_only=True)] == ["fw1"]
    assert config_store.device_names(stores.backend) == {d.id: d.name for d in stores.devices.list()}
    assert config_store.device_exists(stores.backend, fw1)
    assert not config_store.device_exists(stores.backend, "nope")
    assert [d["name"] for d in config_store.device_catalogue(stores.backend)] == ["fw0", "fw1"]
    # What is stored is a Fernet token, never the key itself.
    with stores.devices.handle.read() as conn:
        row = conn.execute("SELECT api_key_enc FROM devices WHERE id = ?", (fw1,)).fetchone()
    assert row["api_key_enc"].startswith("gAAAAA") and "K-fw1" not in row["api_key_enc"]


def test_duplicate_names_and_addresses_raise_the_front_doors_integrity_error(stores):
    stores.devices.add(_device("fw1", "10.0.0.1"))
    with pytest.raises(IntegrityError):
        stores.devices.add(_device("fw1", "10.0.0.9"))
    with pytest.raises(IntegrityError):
        stores.devices.add(_device("other", "10.0.0.1"))
    assert [d.name for d in stores.devices.list()] == ["fw1"]


def test_update_and_remove_report_whether_the_device_existed(stores):
    device_id = stores.devices.add(_device("fw1", "10.0.0.1"))
    moved = DeviceConfig(**{**stores.devices.get(device_id).__dict__, "host": "10.0.0.5", "enabled": False})
    assert stores.devices.update(moved)
    assert stores.devices.get(device_id).host == "10.0.0.5"
    assert not stores.devices.update(DeviceConfig(**{**moved.__dict__, "id": "missing"}))
    assert stores.devices.remove(device_id)
    assert not stores.devices.remove(device_id)
    assert stores.devices.list() == []


@pytest.mark.parametrize("table", ["alert_rules", "alert_channels", "maintenance_windows"])
def test_documents_are_put_replaced_listed_and_deleted(stores, table):
    docs = stores.doc_table(table)
    assert docs.list() == []
    a = docs.put({"name": "b", "n": 1})
    b = docs.put({"id": "fixed", "name": "a"})
    assert b == "fixed"
    docs.put({"id": "fixed", "name": "a2", "extra": [1, 2]})
    assert docs.get("fixed") == {"id": "fixed", "name": "a2", "extra": [1, 2]}
    assert sorted(d["id"] for d in docs.list()) == sorted([a, "fixed"])
    assert docs.delete(a) and not docs.delete(a)
    assert [d["id"] for d in docs.list()] == ["fixed"]


def test_reencrypting_passes_every_secret_through_once(stores):
    stores.devices.add(_device("fw1", "10.0.0.1", password="pw"))
    stores.doc_table("alert_channels").put({"id": "c1", "url_enc": stores.box.encrypt("https://hook/x"), "n": 1})
    seen: list[str] = []

    def again(token: str | None) -> str | None:
        if token is None:
            return None
        seen.append(stores.box.decrypt(token))
        return stores.box.encrypt(stores.box.decrypt(token))

    assert config_store.reencrypt_secrets(stores.backend, again) == (2, 1)
    # On PostgreSQL the shared key's marker is re-encrypted in the same transaction.
    marker = [config_store.KEY_MARKER] if stores.on_postgres else []
    assert sorted(seen) == sorted(["K-fw1", "https://hook/x", "pw", *marker])
    assert stores.devices.list()[0].password == "pw"


def test_a_failed_reencryption_changes_nothing(stores):
    stores.devices.add(_device("fw1", "10.0.0.1"))
    before = stores.devices.handle
    with before.read() as conn:
        stored = conn.execute("SELECT api_key_enc FROM devices").fetchone()["api_key_enc"]

    def broken(token: str | None) -> str | None:
        raise ValueError("wrong key")

    with pytest.raises(ValueError):
        config_store.reencrypt_secrets(stores.backend, broken)
    with before.read() as conn:
        assert conn.execute("SELECT api_key_enc FROM devices").fetchone()["api_key_enc"] == stored


def test_the_first_user_is_created_once_and_passwords_change(stores):
    users = stores.users()
    assert users.password_of("admin") is None
    assert users.create_first("admin", "hash-1", 100.0)
    assert not users.create_first("other", "hash-2", 101.0)
    assert users.password_of("admin") == ("hash-1", True)
    assert config_store.user_exists(stores.backend, "admin")
    assert not config_store.user_exists(stores.backend, "other")
    users.set_password("admin", "hash-3", must_change=False, now=102.0)
    assert users.password_of("admin") == ("hash-3", False)


def test_login_gates_count_failures_in_the_window_and_forget_them(stores):
    failures = stores.login_failures()
    gates = [("ip:1.2.3.4", 3)]
    r1 = failures.reserve(gates, "acct:admin", 1000.0, 60.0)
    assert r1.retry_after is None and r1.account_failures == 0
    failures.reserve(gates, "acct:admin", 1001.0, 60.0)
    r3 = failures.reserve(gates, "acct:admin", 1002.0, 60.0)
    assert r3.reaching == ("ip:1.2.3.4",) and r3.account_failures == 2
    refused = failures.reserve(gates, "acct:admin", 1003.0, 60.0)
    assert refused.retry_after == 58  # the oldest counted failure (1000) ages out at 1060
    assert failures.reserve(gates, "acct:admin", 1061.0, 60.0).retry_after is None  # 1000 aged out
    failures.forget("acct:admin", ["ip:1.2.3.4"], 1061.0)
    assert failures.reserve(gates, "acct:admin", 1062.0, 60.0).account_failures == 0


def test_concurrent_guesses_never_pass_a_full_gate(stores):
    failures = stores.login_failures()
    results = []
    barrier = threading.Barrier(8)

    def guess() -> None:
        barrier.wait()
        results.append(failures.reserve([("ip:9.9.9.9", 5)], "acct:x", 500.0, 60.0).retry_after)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r is None for r in results) == [False] * 3 + [True] * 5


def test_sessions_open_expire_close_and_keep_only_one(stores):
    sessions = stores.sessions()
    sessions.open("h1", "admin", True, 100.0, 200.0)
    sessions.open("h2", "admin", True, 100.0, 200.0)
    assert sessions.user_of("h1", 150.0) == ("admin", True)
    assert sessions.user_of("h1", 250.0) is None  # expired
    sessions.keep_only("admin", "h2")
    assert sessions.user_of("h1", 150.0) is None
    assert sessions.user_of("h2", 150.0) == ("admin", False)
    sessions.close("h2")
    assert sessions.user_of("h2", 150.0) is None


def test_session_actions_are_limited_per_window(stores):
    sessions = stores.sessions()
    assert [sessions.spend("h", "test_connection", 2, 60.0, 100.0 + i) for i in range(3)] == [None, None, 58]
    assert sessions.spend("h", "test_connection", 2, 60.0, 161.0) is None


def test_sessions_work_from_many_threads_at_once(stores):
    """gunicorn's gthread workers check sessions from 4 threads: each thread's calls see every commit."""
    sessions = stores.sessions()
    barrier = threading.Barrier(6)
    seen: list[object] = []

    def worker(i: int) -> None:
        barrier.wait()
        for j in range(10):
            sessions.open(f"t{i}-{j}", f"user{i}", False, 100.0, 200.0)
            seen.append(sessions.user_of(f"t{i}-{j}", 150.0))
            seen.append(sessions.spend(f"t{i}", "act", 100, 60.0, 100.0 + j))
            sessions.close(f"t{i}-{j}")
            seen.append(sessions.user_of(f"t{i}-{j}", 150.0))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    expected = [(f"user{i}", False) for i in range(6) for _ in range(10)]
    assert sorted(x for x in seen if isinstance(x, tuple)) == sorted(expected)
    assert [x for x in seen if not isinstance(x, tuple)] == [None] * 120  # within the limit; closed


def test_a_sqlite_session_store_keeps_one_connection_per_thread_and_other_processes_see_its_commits(tmp_path):
    from throughput_storage import SessionStore

    sessions = SessionStore(tmp_path)
    sessions.open("h1", "admin", False, time.time(), time.time() + 600)
    mine = sessions.handle._conn()
    assert sessions.handle._conn() is mine  # kept, not reopened per call
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(sessions.handle._conn()))
    t.start()
    t.join(timeout=30)
    assert other and other[0] is not mine  # SQLite connections stay in their thread
    # Another worker process (its own connection) sees the session and ends it; this thread sees that.
    code = ("import sys, time; from pathlib import Path; from throughput_storage import SessionStore;"
            "s = SessionStore(Path(sys.argv[1])); assert s.user_of('h1', time.time()) == ('admin', False);"
            "s.close('h1')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True, timeout=60)
    assert sessions.user_of("h1", time.time()) is None


def test_postgresql_needs_the_shared_keys_and_refuses_a_key_that_cannot_read_the_secrets(store_settings):
    import dataclasses

    import config
    import throughput_storage

    if not store_settings.on_postgres:
        # SQLite: the data folder's own key file is generated once, as always.
        throughput_storage.open_stores(store_settings).close()
        assert (store_settings.data_path / config.KEY_FILE).exists()
        return
    for missing in ("encryption_key", "secret_key"):
        with pytest.raises(config.ConfigError, match=f"share its keys; set {missing}"):
            throughput_storage.open_stores(dataclasses.replace(store_settings, **{missing: ""}))
    first = throughput_storage.open_stores(store_settings)
    first.devices.add(_device("fw1", "10.0.0.1"))
    first.close()
    other = dataclasses.replace(store_settings, encryption_key="Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI=")
    with pytest.raises(config.ConfigError, match="cannot decrypt the secrets stored in the database"):
        throughput_storage.open_stores(other)
    assert not (store_settings.data_path / config.KEY_FILE).exists()  # no per-host key on PostgreSQL


@pytest.mark.postgres
def test_keys_rotate_across_hosts_on_postgresql(pg_url, tmp_path):
    import dataclasses

    from conftest import pg_env

    import config
    import throughput_storage
    from panfm.ops import rotate_shared_keys

    config.ensure_data_dir(tmp_path / "data")
    settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / "data"), **pg_env(pg_url)})
    old = settings.encryption_key
    new = "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI="
    stores = throughput_storage.open_stores(settings)
    stores.devices.add(_device("fw1", "10.0.0.1", password="pw"))
    stores.close()
    # Every host runs with NEW,OLD; one of them rotates; then every host drops OLD.
    both = throughput_storage.open_stores(dataclasses.replace(settings, encryption_key=f"{new},{old}"))
    assert rotate_shared_keys(both.backend, both.box).device_secrets == 2
    both.close()
    with pytest.raises(config.ConfigError, match="cannot decrypt"):
        throughput_storage.open_stores(settings)  # a host still on the old key alone is refused
    after = throughput_storage.open_stores(dataclasses.replace(settings, encryption_key=new))
    assert after.devices.list()[0].password == "pw"
    after.close()


@pytest.mark.postgres
def test_settings_edited_on_one_web_reach_every_host_through_the_database(pg_url, tmp_path):
    from conftest import pg_env

    import config
    from app import create_app

    clients = []
    for name in ("web1", "web2"):
        settings = config.load_settings(env={"PANFM_DATA_DIR": str(tmp_path / name), **pg_env(pg_url)},
                                        overrides={"admin_password": "initial-password-1"})
        clients.append(create_app(settings).test_client())
    one, two = clients
    login = {"username": "admin", "password": "initial-password-1"}
    token = one.post("/api/login", json=login).get_json()["csrf_token"]
    assert one.post("/api/change-password", json={"old_password": "initial-password-1", "new_password": "x" * 16},
                    headers={"X-CSRFToken": token}).status_code == 200
    assert one.put("/api/settings", json={"refresh_interval": 45, "theme": "dark"},
                   headers={"X-CSRFToken": token}).status_code == 200
    two_token = two.post("/api/login", json={"username": "admin", "password": "x" * 16}).get_json()["csrf_token"]
    got = two.get("/api/settings", headers={"X-CSRFToken": two_token}).get_json()["settings"]
    assert got["refresh_interval"]["value"] == 45 and got["theme"]["value"] == "dark"
    assert not (tmp_path / "web1" / config.SETTINGS_FILE).exists()
    # The clock reads them from the database too (stores.load_settings).
    import throughput_storage

    stores = throughput_storage.open_stores(config.load_settings(
        env={"PANFM_DATA_DIR": str(tmp_path / "clock"), **pg_env(pg_url)}))
    try:
        import os
        from unittest import mock

        with mock.patch.dict(os.environ, {"PANFM_DATA_DIR": str(tmp_path / "clock"), **pg_env(pg_url)}):
            assert stores.load_settings().refresh_interval == 45
    finally:
        stores.close()
