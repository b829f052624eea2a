"""`flask --app app db migrate-to URL`: a SQLite data folder copied into PostgreSQL, resumable; db check/backup."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from datetime import UTC, datetime

import pytest
from conftest import pg_env

import config
import throughput_storage
from app import create_app
from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceConfig, DeviceSample, DeviceStatus, InterfaceSample, TlsConfig
from panfm.storage.config_store import DeviceStore, DocTable
from panfm.storage.samples import HISTORY_DB, SampleStore
from panfm.web.auth import Auth

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp()
RULE = {"id": "r1", "name": "CPU", "device_id": None, "metric": "cpu_dataplane_pct", "operator": ">",
        "threshold": 90, "clear_threshold": 80, "for_s": 0, "severity": "critical", "repeat_s": 0,
        "channel_ids": ["c1"], "enabled": True}


def _folder(data_dir) -> dict[str, str]:
    """A SQLite data folder with a bit of everything: devices, a user, rules, settings, alerts, 2 h of samples."""
    config.ensure_data_dir(data_dir)
    box = config.SecretBox.for_data_dir(data_dir)
    store = DeviceStore(data_dir, box, time.time)
    ids = {}
    for i in range(3):
        ids[f"fw{i}"] = store.add(DeviceConfig(id="", name=f"fw{i}", host=f"10.0.0.{i + 1}", port=443,
                                               api_key=f"KEY-{i}", tls=TlsConfig("insecure"), password=None))
    Auth(data_dir, time.time).ensure_admin("initial-password-1")
    DocTable(data_dir, "alert_rules", time.time).put(RULE)
    DocTable(data_dir, "alert_channels", time.time).put({"id": "c1", "name": "hook", "enabled": True,
                                                         "url_enc": box.encrypt("https://hooks.example/abc")})
    config.save_settings(data_dir, {"theme": "dark", "refresh_interval": 60})
    with SampleStore.open(data_dir / HISTORY_DB) as samples:
        for k in range(120):
            now = T0 + 60 * k
            samples.write_cycle(CycleResult(
                started=now, finished=now + 1,
                samples=tuple(DeviceSample(d, now + 0.5, inbound_mbps=float(k), cpu_dataplane_pct=95.0 if k > 100
                                           else 10.0, sessions_active=k) for d in ids.values()),
                interfaces=tuple(InterfaceSample(d, name, now + 0.5, 1e6 * k * j, 2e6, 1.0, 1.0, 0.0, 0.0, True)
                                 for d in ids.values() for j, name in ((1, "ethernet1/1"), (3, "ethernet1/2"))),
                baselines=(), statuses=tuple(DeviceStatus(d, "up", now, now) for d in ids.values())))
    cycle = CycleResult(T0 + 7200, T0 + 7201, (DeviceSample(ids["fw0"], T0 + 7201, cpu_dataplane_pct=99.0),),
                        (), (), (DeviceStatus(ids["fw0"], "up"),))
    run_evaluation(data_dir / "alerts.db", [RULE], [{"id": "c1", "url_enc": "x", "enabled": True}], [], cycle, {},
                   T0 + 7201)
    return ids


def _settings(data_dir, pg_url=None):
    env = {"PANFM_DATA_DIR": str(data_dir)}
    if pg_url:
        env.update(pg_env(pg_url))
    return config.load_settings(env=env)


def test_migrate_to_copies_everything_and_postgresql_answers_the_same(tmp_path, pg_url):
    data = tmp_path / "data"
    ids = _folder(data)
    # The folder's own encryption.key encrypted its secrets; the environment's key is what PostgreSQL gets.
    keys = {k: v for k, v in pg_env(pg_url).items() if k != "PANFM_DATABASE_URL"}
    app = create_app(config.load_settings(env=keys, overrides={"data_dir": str(data)}))
    result = app.test_cli_runner().invoke(args=["db", "migrate-to", pg_url])
    assert result.exit_code == 0, result.output
    assert "device_samples: 360 rows" in result.output and "copied: devices 3" in result.output
    assert pg_url.split("@")[-1] not in result.output or "password" not in result.output

    sqlite = throughput_storage.open_stores(_settings(data))
    pg = throughput_storage.open_stores(_settings(tmp_path / "other-host", pg_url))
    try:
        assert [(d.name, d.api_key) for d in pg.devices.list()] == [(d.name, d.api_key) for d in sqlite.devices.list()]
        [channel] = pg.doc_table("alert_channels").list()
        assert pg.box.decrypt(channel["url_enc"]) == "https://hooks.example/abc"
        assert pg.doc_table("alert_rules").list() == sqlite.doc_table("alert_rules").list()
        assert pg.users().password_of("admin") == sqlite.users().password_of("admin")
        assert pg.stored_settings() == {"refresh_interval": 60, "theme": "dark"}
        assert len(throughput_storage.alerts_store.history(pg.alerts_db)) == 1
        assert throughput_storage.alerts_store.active_alerts(pg.alerts_db)[0]["device_id"] == ids["fw0"]
        with sqlite.open_sample_reader() as a, pg.open_sample_reader() as b:
            for device_id in ids.values():
                assert b.latest(device_id).inbound_mbps == a.latest(device_id).inbound_mbps
                ha, hb = a.history(device_id, T0, T0 + 7200), b.history(device_id, T0, T0 + 7200)
                assert (hb.tier, len(hb.points)) == (ha.tier, len(ha.points))
                assert [p["inbound_mbps"] for p in hb.points] == pytest.approx([p["inbound_mbps"] for p in ha.points])
                # Interface rows, copied one interface at a time, packed per device and slot.
                assert b.interfaces_latest(device_id) == a.interfaces_latest(device_id)
                for name in ("ethernet1/1", "ethernet1/2"):
                    ia = a.interface_history(device_id, name, T0, T0 + 7200)
                    ib = b.interface_history(device_id, name, T0, T0 + 7200)
                    assert (ib.tier, len(ib.points)) == (ia.tier, len(ia.points))
                    assert [p["in_bps"] for p in ib.points] == pytest.approx([p["in_bps"] for p in ia.points])
                # Long ranges read the copied rollups.
                ra = a.history(device_id, T0 - 86400 * 20, T0 + 7200, max_points=100)
                rb = b.history(device_id, T0 - 86400 * 20, T0 + 7200, max_points=100)
                assert rb.tier == ra.tier != "raw"
                assert [p["inbound_mbps"] for p in rb.points if p["inbound_mbps"] is not None] == pytest.approx(
                    [p["inbound_mbps"] for p in ra.points if p["inbound_mbps"] is not None])
            assert b.device_statuses() == a.device_statuses()
    finally:
        sqlite.close()
        pg.close()


def test_migrate_to_resumes_after_an_interruption_and_copies_nothing_twice(tmp_path, pg_url):
    data = tmp_path / "data"
    _folder(data)
    source = dataclasses.replace(_settings(data), encryption_key="")
    target = _settings(data, pg_url)
    lines: list[str] = []

    def kill_after_some_chunks(line: str) -> None:
        lines.append(line)
        if line.startswith("interface_samples: ") and len(lines) > 8:
            raise KeyboardInterrupt  # as good as kill -9 between two committed chunks

    with pytest.raises(KeyboardInterrupt):
        throughput_storage.migrate_to(source, target, kill_after_some_chunks, chunk=50)
    again: list[str] = []
    copied = throughput_storage.migrate_to(source, target, again.append, chunk=50)
    assert any(line.startswith("devices: already copied") for line in again)
    assert any(line == "device_samples: already copied (360 rows)" for line in again)
    assert "device_samples" not in copied and copied["interface_samples"] == 720
    pg = throughput_storage.open_stores(target)
    try:
        with pg.backend.db.connection() as conn:
            assert conn.fetchone("SELECT count(*) AS n FROM device_samples")["n"] == 360
            assert conn.fetchone("SELECT count(*) AS n FROM iface_samples")["n"] == 720
            assert conn.fetchone("SELECT count(*) AS n FROM iface_packed")["n"] == 360  # per device and slot
            assert conn.fetchone("SELECT count(*) AS n FROM devices")["n"] == 3
    finally:
        pg.close()


def test_migrate_to_refuses_a_database_that_already_holds_panfm_data(tmp_path, pg_url):
    _folder(tmp_path / "data")
    target = _settings(tmp_path / "data", pg_url)
    stores = throughput_storage.open_stores(target)
    stores.devices.add(DeviceConfig(id="", name="other", host="10.9.9.9", port=443, api_key="k",
                                    tls=TlsConfig("insecure")))
    stores.close()
    source = dataclasses.replace(_settings(tmp_path / "data"), encryption_key="")
    with pytest.raises(config.ConfigError, match="already holds devices"):
        throughput_storage.migrate_to(source, target, print)


def _pg_cli(tmp_path, pg_url):
    env = pg_env(pg_url)
    app = create_app(config.load_settings(env={**env, "PANFM_DATA_DIR": str(tmp_path / "web")}))
    return app.test_cli_runner()


def test_db_check_on_postgresql_reports_the_server_schemas_and_that_secrets_decrypt(tmp_path, pg_url):
    runner = _pg_cli(tmp_path, pg_url)
    assert runner.invoke(args=["devices", "add", "--name", "hq", "--host", "192.0.2.1", "--api-key", "K" * 20,
                               "--insecure"]).exit_code == 0
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    assert "server: ok (PostgreSQL 1" in result.output
    for component in ("alerts", "config", "series", "sessions"):
        assert f"schema {component}: ok" in result.output
    assert "indexes: ok" in result.output and "secrets: ok (1 devices decrypt)" in result.output
    assert "throughput_history.db" not in result.output  # no SQLite file is looked for


def test_db_backup_on_postgresql_is_a_pg_dump_archive_and_says_so_without_pg_dump(tmp_path, pg_url, pg_server,
                                                                                  monkeypatch):
    runner = _pg_cli(tmp_path, pg_url)
    assert runner.invoke(args=["devices", "add", "--name", "hq", "--host", "192.0.2.1", "--api-key", "K" * 20,
                               "--insecure"]).exit_code == 0
    monkeypatch.setenv("PATH", f"{pg_server.bindir}:{os.environ.get('PATH', '')}")
    result = runner.invoke(args=["db", "backup", str(tmp_path / "backup")])
    assert result.exit_code == 0, result.output
    archive = tmp_path / "backup" / "panfm.pgdump"
    assert archive.read_bytes().startswith(b"PGDMP")
    # Restored into a fresh database, the device is there.
    restored = pg_server.fresh_database("restored")
    subprocess.run([str(pg_server.bindir / "pg_restore"), "--no-owner", f"--dbname={restored}", str(archive)],
                   check=True, capture_output=True, timeout=120)
    assert pg_server.psql("SELECT name FROM devices", restored.rsplit("/", 1)[-1]) == "hq"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    result = runner.invoke(args=["db", "backup", str(tmp_path / "backup2")])
    assert result.exit_code == 1 and "pg_dump not found" in result.output


def test_import_panfm_on_postgresql_points_to_sqlite_then_migrate_to(tmp_path, pg_url):
    (tmp_path / "old").mkdir()
    result = _pg_cli(tmp_path, pg_url).invoke(args=["import-panfm", str(tmp_path / "old")])
    assert result.exit_code == 1 and "then copy it with `flask --app app db migrate-to URL`" in result.output
