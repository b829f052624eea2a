"""`db migrate-to` copies what issues 15, 16 and 18 added: roles, tokens, audit, uplinks, metadata, network.db."""

from __future__ import annotations

import dataclasses
import sqlite3
import time

import pytest
from conftest import pg_env

import config
import throughput_storage
from panfm.models import DeviceConfig, TlsConfig
from throughput_storage import TokenRecord, config_store

pytestmark = pytest.mark.postgres

MAC = "00:1b:17:00:00:01"


def _settings(data_dir, pg_url=None):
    env = {"PANFM_DATA_DIR": str(data_dir)}
    if pg_url:
        env.update(pg_env(pg_url))
    return config.load_settings(env=env)


def _folder(data_dir) -> str:
    """A SQLite folder with users of two roles, a token, audit entries, uplinks, metadata and connected devices."""
    config.ensure_data_dir(data_dir)
    stores = throughput_storage.open_stores(_settings(data_dir))
    fw = stores.devices.add(DeviceConfig(id="", name="fw1", host="10.0.0.1", port=443, api_key="KEY-1",
                                         tls=TlsConfig("insecure"), interfaces=("ethernet1/1", "ethernet1/2"),
                                         uplinks=("ethernet1/1",)))
    users = stores.users()
    users.create_first("admin", "hash-admin", 1.0)
    users.create("vera", "hash-vera", "viewer", must_change=False, now=2.0)
    users.create("otto", "hash-otto", "operator", must_change=True, now=3.0)
    users.change("otto", role=None, disabled=True, now=4.0)
    assert stores.tokens().create(TokenRecord("tok1", "vera", "grafana", "viewer", 5.0, 9_999_999_999.0, None),
                                  "digest-1", 10)
    for i in range(3):
        stores.audit().append("admin", "user.create", f"user{i}", {"role": "viewer"}, 1_780_000_000.0)
    stores.metadata().update(MAC, {"name": "printer", "tags": ["floor-2"]})
    network = stores.open_network_writer()
    try:
        network.record(fw, 1000.0, [{"mac": MAC, "ip": "10.0.0.9", "interface": "ethernet1/2", "vlan": 100,
                                     "zone": "trust", "user": "corp\\ann", "vendor": "Acme", "static": False}])
        network.record_apps(fw, 1000.0, [{"name": "ssl", "bytes": 3 * 2**31, "sessions": 4}], [])
        network.record_logs(fw, 1000.0, {"system": [{"id": "1", "epoch": 990.0, "opaque": "commit"}]})
        network.record_security(fw, 1000.0, {"counts": {"critical": 2}, "latest": [{"name": "x"}]})
    finally:
        network.close()
    stores.close()
    return fw


def test_migrate_to_copies_roles_tokens_audit_uplinks_metadata_and_connected_devices(tmp_path, pg_url):
    data = tmp_path / "data"
    fw = _folder(data)
    source = dataclasses.replace(_settings(data), encryption_key="")
    lines: list[str] = []
    copied = throughput_storage.migrate_to(source, _settings(data, pg_url), lines.append)
    assert copied["users"] == 3 and copied["api_tokens"] == 1 and copied["audit_log"] == 3
    assert copied["device_metadata"] == 1 and copied["connected_devices"] == 1 and copied["log_entries"] == 1
    sqlite = throughput_storage.open_stores(_settings(data))
    pg = throughput_storage.open_stores(_settings(tmp_path / "other-host", pg_url))
    try:
        assert pg.users().accounts() == sqlite.users().accounts()
        assert [(a.username, a.role, a.disabled) for a in pg.users().accounts()] == [
            ("admin", "admin", False), ("otto", "operator", True), ("vera", "viewer", False)]
        assert pg.users().password_of("vera") == ("hash-vera", False)
        assert pg.tokens().find("digest-1") == sqlite.tokens().find("digest-1")
        assert pg.tokens().find("digest-1").user_role == "viewer"
        assert pg.audit().page(None, 10) == sqlite.audit().page(None, 10)
        assert pg.devices.get(fw).uplinks == ("ethernet1/1",) and pg.devices.get(fw).api_key == "KEY-1"
        assert config_store.device_uplinks(pg.backend, fw) == ("ethernet1/1",)
        assert pg.metadata().all() == sqlite.metadata().all() == {
            MAC: {"name": "printer", "comment": None, "tags": ["floor-2"], "location": None}}
        with sqlite.open_network_reader() as a, pg.open_network_reader() as b:
            assert b.devices(1100.0, fw) == a.devices(1100.0, fw) and b.devices(1100.0, fw)[0]["vlan"] == 100
            assert b.snapshots() == a.snapshots()
            assert b.applications(fw, 0.0) == a.applications(fw, 0.0)
            assert b.logs(fw, "system", 0.0) == a.logs(fw, "system", 0.0)
            assert b.security(fw, 0.0) == a.security(fw, 0.0)
        # A token made before the move still authenticates after it, and the keys go on increasing.
        assert pg.audit().append("admin", "login", "session", {}, time.time()) > pg.audit().page(None, 2)[1].t_us
    finally:
        sqlite.close()
        pg.close()
    again: list[str] = []
    throughput_storage.migrate_to(source, _settings(data, pg_url), again.append)
    assert "network.connected_devices: already copied (1 rows)" in again
    assert "api_tokens: already copied (1 rows)" in again


def test_migrate_to_takes_a_config_db_from_before_roles_and_keeps_its_user_an_admin(tmp_path, pg_url):
    data = tmp_path / "data"
    config.ensure_data_dir(data)
    old = config_store.MIGRATIONS[:2]  # config.db as PANfm wrote it before users had roles
    conn = sqlite3.connect(data / config_store.CONFIG_DB)
    for i, script in enumerate(old):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {i + 1}")
    conn.execute("INSERT INTO users (username, password_hash, must_change_password, created_at, updated_at)"
                 " VALUES ('root', 'h', 0, 1.0, 1.0)")
    conn.commit()
    conn.close()
    source = dataclasses.replace(_settings(data), encryption_key="")
    lines: list[str] = []
    copied = throughput_storage.migrate_to(source, _settings(data, pg_url), lines.append)
    assert copied["users"] == 1 and copied["api_tokens"] == 0 and "api_tokens: not in this folder" in lines
    pg = throughput_storage.open_stores(_settings(tmp_path / "other-host", pg_url))
    try:
        [root] = pg.users().accounts()
        assert (root.username, root.role, root.disabled) == ("root", "admin", False)
    finally:
        pg.close()
