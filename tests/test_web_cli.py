"""The admin CLI (`flask --app app ...`) against real data folders: devices, users, db, keys, 1.x import."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

import config
import panfm.storage.config_store as config_store
from app import create_app
from panfm.models import CycleResult, DeviceSample
from panfm.storage.config_store import DeviceStore, DocTable
from panfm.storage.samples import HISTORY_DB, SampleStore
from panfm.storage.tier_views import register as register_tier_functions
from panfm.web.auth import Auth

INITIAL = "initial-password-1"
FP = "ab" * 32
API_KEY = "LUFRPT-cli-secret-key=="
PASSWORD = "device-password-42"


@pytest.fixture
def cli(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "admin_password": INITIAL})
    app = create_app(settings)
    runner = app.test_cli_runner()

    def run(*args, input=None):
        return runner.invoke(args=list(args), input=input)

    run.data_dir = tmp_path
    return run


def _store(data_dir):
    return DeviceStore(data_dir, config.SecretBox.for_data_dir(data_dir), time.time)


# ---- devices ----------------------------------------------------------------------------


def test_it_adds_lists_and_removes_devices_without_ever_printing_secrets(cli):
    r = cli("devices", "add", "--name", "hq", "--host", "192.0.2.1", "--api-key", API_KEY, "--fingerprint", FP)
    assert r.exit_code == 0, r.output
    r = cli("devices", "add", "--name", "branch", "--host", "fw.example.net", "--port", "8443",
            "--username", "panfm", "--insecure", input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert PASSWORD not in r.output  # the prompt hides the typed password
    stored = {d.name: d for d in _store(cli.data_dir).list()}
    assert stored["hq"].api_key == API_KEY and stored["hq"].tls.fingerprint_sha256 == FP
    assert (stored["branch"].username, stored["branch"].password, stored["branch"].port) == ("panfm", PASSWORD, 8443)
    listing = cli("devices", "list").output
    assert "hq" in listing and "192.0.2.1:443" in listing and "user panfm" in listing and "insecure" in listing
    assert API_KEY not in listing and PASSWORD not in listing
    assert cli("devices", "remove", "hq").exit_code == 0
    assert [d.name for d in _store(cli.data_dir).list()] == ["branch"]
    assert cli("devices", "remove", "hq").exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", API_KEY], "exactly one of"),
        (["--api-key", API_KEY, "--insecure", "--fingerprint", FP], "exactly one of"),
        (["--insecure"], "either --api-key or --username"),
        (["--api-key", API_KEY, "--fingerprint", "nothex"], "fingerprint"),
    ],
)
def test_it_refuses_an_incomplete_device(cli, args, message):
    r = cli("devices", "add", "--name", "x", "--host", "192.0.2.9", *args)
    assert r.exit_code != 0 and message in r.output
    assert _store(cli.data_dir).list() == []


def test_it_refuses_a_duplicate_name_or_address(cli):
    base = ["devices", "add", "--api-key", API_KEY, "--insecure"]
    assert cli(*base, "--name", "a", "--host", "192.0.2.1").exit_code == 0
    assert "already has" in cli(*base, "--name", "a", "--host", "192.0.2.2").output
    assert "already has" in cli(*base, "--name", "b", "--host", "192.0.2.1").output
    assert len(_store(cli.data_dir).list()) == 1


def test_it_imports_a_simulator_inventory_pinned_and_refreshes_it(cli, tmp_path):
    inventory = tmp_path / "inv.json"
    devs = [{"name": f"sim-{i}", "host": "127.0.0.1", "port": 20000 + i, "serial": f"0{i}", "model": "PA-440",
             "sw_version": "11.1.0", "username": "admin", "password": f"pw{i}", "api_key": f"key{i}",
             "tls_fingerprint_sha256": FP} for i in range(2)]
    inventory.write_text(json.dumps({"devices": devs}))
    r = cli("devices", "import", str(inventory))
    assert r.exit_code == 0 and "imported 2 devices" in r.output, r.output
    devs[0]["api_key"] = "key-new"
    inventory.write_text(json.dumps({"devices": devs}))
    assert cli("devices", "import", str(inventory)).exit_code == 0
    stored = {d.name: d for d in _store(cli.data_dir).list()}
    assert len(stored) == 2 and stored["sim-0"].api_key == "key-new" and stored["sim-1"].tls.mode == "pin"
    inventory.write_text('{"hosts": []}')
    assert "not a simulator inventory" in cli("devices", "import", str(inventory)).output


# ---- users ------------------------------------------------------------------------------


def test_it_resets_a_password_that_must_be_changed_and_ends_sessions(cli):
    auth = Auth(cli.data_dir, time.time)
    sid = auth.open_session(auth.login("admin", INITIAL, "127.0.0.1"))
    r = cli("users", "reset-password", "admin", "--password-stdin", input="a-brand-new-password\n")
    assert r.exit_code == 0, r.output
    assert auth.session_user(sid) is None
    user = auth.login("admin", "a-brand-new-password", "127.0.0.1")
    assert user.must_change_password is True
    with pytest.raises(PermissionError):
        auth.login("admin", INITIAL, "127.0.0.2")


def test_it_prompts_twice_and_refuses_short_passwords_and_unknown_users(cli):
    r = cli("users", "reset-password", "admin", input="prompted-password-1\nprompted-password-1\n")
    assert r.exit_code == 0 and "prompted-password-1" not in r.output
    assert Auth(cli.data_dir, time.time).login("admin", "prompted-password-1", "127.0.0.1")
    short = cli("users", "reset-password", "admin", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "characters" in short.output
    assert cli("users", "reset-password", "nobody", "--password-stdin", input="x" * 20).exit_code == 1


# ---- db ---------------------------------------------------------------------------------


def _cycle(ts, device="dev-1", value=100.0):
    return CycleResult(ts, ts + 0.1, (DeviceSample(device_id=device, ts=ts, inbound_mbps=value),), (), (), ())


def test_it_backs_up_every_database_consistently_while_the_clock_writes(cli, tmp_path):
    store = SampleStore.open(cli.data_dir / HISTORY_DB)
    t0 = time.time() - 10_000
    for i in range(50):
        store.write_cycle(_cycle(t0 + i))
    stop = threading.Event()

    def writer():
        i = 50
        while not stop.is_set():
            store.write_cycle(_cycle(t0 + i))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        r = cli("db", "backup", str(tmp_path / "backup"))
    finally:
        stop.set()
        thread.join(10)
        store.close()
    assert r.exit_code == 0, r.output
    backup = tmp_path / "backup"
    assert {p.name for p in backup.iterdir()} >= {"config.db", HISTORY_DB, "encryption.key", "secret_key"}
    conn = sqlite3.connect(backup / HISTORY_DB)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM device_samples").fetchone()[0] >= 50
    finally:
        conn.close()
    assert (backup / "encryption.key").read_bytes() == (cli.data_dir / "encryption.key").read_bytes()


def test_it_writes_backup_files_readable_by_the_owner_only(cli, tmp_path):
    # docs/operations.md: the backup folder is 0700 and its files 0600 (config.db holds the
    # encrypted device secrets and password hashes, like the key files beside it).
    SampleStore.open(cli.data_dir / HISTORY_DB).close()
    r = cli("db", "backup", str(tmp_path / "backup"))
    assert r.exit_code == 0, r.output
    backup = tmp_path / "backup"
    assert backup.stat().st_mode & 0o777 == 0o700
    modes = {p.name: p.stat().st_mode & 0o777 for p in backup.iterdir()}
    assert {"config.db", HISTORY_DB, "encryption.key", "secret_key"} <= modes.keys()
    assert modes == dict.fromkeys(modes, 0o600)


def test_it_checks_databases_settings_and_secrets_and_fails_on_a_problem(cli):
    SampleStore.open(cli.data_dir / HISTORY_DB).close()
    ok = cli("db", "check")
    assert ok.exit_code == 0, ok.output
    assert "config.db: ok" in ok.output and f"{HISTORY_DB}: ok" in ok.output and "settings: ok" in ok.output
    (cli.data_dir / "alerts.db").write_bytes(b"this is not a database" * 100)
    (cli.data_dir / "settings.json").write_text('{"refresh_interval": 1}')
    bad = cli("db", "check")
    assert bad.exit_code == 1
    assert "alerts.db: file is not a database" in bad.output and "refresh_interval" in bad.output


def test_it_reports_secrets_that_no_longer_decrypt(cli):
    added = cli("devices", "add", "--name", "a", "--host", "192.0.2.1", "--api-key", API_KEY, "--insecure")
    assert added.exit_code == 0
    (cli.data_dir / "encryption.key").write_bytes(Fernet.generate_key())
    r = cli("db", "check")
    assert r.exit_code == 1 and "secrets: a stored secret cannot be decrypted" in r.output


# ---- keys rotate --------------------------------------------------------------------------


def _keys(data_dir):
    return [k for k in (data_dir / "encryption.key").read_bytes().splitlines() if k]


def _secret_fixture(data_dir):
    """A device with an API key and password, and an alert channel whose URL is encrypted."""
    box = config.SecretBox.for_data_dir(data_dir)
    _store(data_dir).add(config_store.DeviceConfig(
        id="d1", name="fw", host="192.0.2.1", api_key=API_KEY, username="u", password=PASSWORD,
        tls=config_store.TlsConfig(mode="insecure")))
    channels = DocTable(data_dir, "alert_channels", time.time)
    channels.put({"id": "c1", "name": "ops", "url_enc": box.encrypt("tgram://bottoken/chat")})
    return channels


def test_it_rotates_every_secret_under_a_new_key_and_drops_the_old_one(cli):
    channels = _secret_fixture(cli.data_dir)
    [old] = _keys(cli.data_dir)
    r = cli("keys", "rotate")
    assert r.exit_code == 0, r.output
    assert "2 device secrets and 1 channel secrets" in r.output
    [new] = _keys(cli.data_dir)
    assert new != old
    device = _store(cli.data_dir).get("d1")
    assert (device.api_key, device.password) == (API_KEY, PASSWORD)
    token = channels.get("c1")["url_enc"]
    assert config.SecretBox([new]).decrypt(token) == "tgram://bottoken/chat"
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(token.encode())
    conn = config_store.connect(cli.data_dir, readonly=True)
    try:
        row = conn.execute("SELECT api_key_enc FROM devices").fetchone()
    finally:
        conn.close()
    with pytest.raises(InvalidToken):
        Fernet(old).decrypt(row[0].encode())


def test_it_keeps_every_secret_readable_when_a_rotation_fails_midway(cli):
    channels = _secret_fixture(cli.data_dir)
    [old] = _keys(cli.data_dir)
    foreign = Fernet(Fernet.generate_key()).encrypt(b"x").decode()
    channels.put({"id": "c2", "name": "broken", "url_enc": foreign})  # cannot decrypt: the transaction aborts
    r = cli("keys", "rotate")
    assert r.exit_code == 1 and "cannot be decrypted" in r.output
    assert foreign not in r.output
    keys = _keys(cli.data_dir)
    assert len(keys) == 2 and keys[1] == old  # new key first, old kept: crash-safe state
    device = _store(cli.data_dir).get("d1")
    assert device.api_key == API_KEY
    assert Fernet(old).decrypt(channels.get("c1")["url_enc"].encode()) == b"tgram://bottoken/chat"  # untouched
    channels.delete("c2")
    assert cli("keys", "rotate").exit_code == 0  # a re-run finishes the job
    assert len(_keys(cli.data_dir)) == 1 and _store(cli.data_dir).get("d1").password == PASSWORD


# ---- PANfm 1.x import -----------------------------------------------------------------------

DEV_A = "3f1b2c4d-0000-4000-8000-00000000000a"
DEV_B = "3f1b2c4d-0000-4000-8000-00000000000b"
T0 = 1762934400  # 2025-11-12T08:00:00Z, a whole hour


def _iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000000Z"


def build_legacy(folder: Path) -> Path:
    """A PANfm 1.11 folder per docs/migration.md: 2 devices, settings, 2 hours of history for A."""
    folder.mkdir()
    key = Fernet.generate_key()
    (folder / "encryption.key").write_bytes(key)
    enc = base64.b64encode(Fernet(key).encrypt(b"LUFRPT-legacy-A==")).decode()
    (folder / "devices.json").write_text(json.dumps({"devices": [
        {"id": DEV_A, "name": "HQ-FW", "ip": "192.0.2.10", "api_key": enc, "enabled": True,
         "monitored_interface": "ethernet1/12"},
        {"id": DEV_B, "name": "Branch", "ip": "192.0.2.20:8443", "api_key": "plain-key-B", "enabled": True},
    ], "groups": []}))
    (folder / "settings.json").write_text(json.dumps({"refresh_interval": 600, "throughput_retention_days": 60,
                                                      "timezone": "UTC"}))
    db = sqlite3.connect(folder / "throughput_history.db")
    db.execute("CREATE TABLE throughput_samples (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,"
               " timestamp TEXT NOT NULL, inbound_mbps REAL, outbound_mbps REAL, total_mbps REAL,"
               " sessions_active INTEGER, cpu_data_plane INTEGER, cpu_mgmt_plane INTEGER, memory_used_pct INTEGER)")
    rows = [(DEV_A, _iso(T0 + 60 * i), 10.0 + i, 5.0, 15.0 + i, 100 + i, 20, 10, 97) for i in range(120)]
    rows.append((DEV_A, _iso(T0 + 7200), 0.0, 0.0, 0.0, 0, 0, 0, 97))  # a 1.x false zero
    rows.append((DEV_B, _iso(T0), 1.0, 2.0, 3.0, 7, 1, 1, 97))
    db.executemany("INSERT INTO throughput_samples (device_id, timestamp, inbound_mbps, outbound_mbps, total_mbps,"
                   " sessions_active, cpu_data_plane, cpu_mgmt_plane, memory_used_pct) VALUES (?,?,?,?,?,?,?,?,?)",
                   rows)
    db.commit()
    db.close()
    return folder


def _count(data_dir, sql):
    conn = sqlite3.connect(data_dir / HISTORY_DB)
    register_tier_functions(conn)  # the rollup names are views decoding packed rows
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def test_it_imports_a_panfm_1x_folder_end_to_end(cli, tmp_path):
    legacy = build_legacy(tmp_path / "panfm1")
    dry = cli("import-panfm", str(legacy), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "throughput samples imported: 121" in dry.output
    assert _store(cli.data_dir).list() == [] and not (cli.data_dir / HISTORY_DB).exists()

    r = cli("import-panfm", str(legacy))
    assert r.exit_code == 0, r.output
    assert "devices imported: 2 (HQ-FW, Branch)" in r.output and "throughput samples imported: 121" in r.output
    assert "skipped: settings.json refresh_interval=600" in r.output
    assert "LUFRPT-legacy-A" not in r.output
    devices = {d.id: d for d in _store(cli.data_dir).list()}
    assert devices[DEV_A].api_key == "LUFRPT-legacy-A==" and devices[DEV_B].port == 8443
    assert not devices[DEV_A].enabled
    assert config.read_settings_file(cli.data_dir) == {"refresh_interval": 300, "throughput_retention_days": 60}
    assert _count(cli.data_dir, f"SELECT count(*) FROM device_samples WHERE device_id = '{DEV_A}'") == (120,)
    # Rollups cover the imported range: 24 five-minute buckets and 2 hours, averages from the raw rows.
    assert _count(cli.data_dir, f"SELECT count(*), sum(n) FROM device_5m WHERE device_id = '{DEV_A}'") == (24, 120)
    assert _count(cli.data_dir, f"SELECT count(*), sum(n) FROM device_1h WHERE device_id = '{DEV_A}'") == (2, 120)

    again = cli("import-panfm", str(legacy))
    assert again.exit_code == 0 and "already imported (same id)" in again.output
    assert len(_store(cli.data_dir).list()) == 2
    assert _count(cli.data_dir, "SELECT count(*) FROM device_samples") == (121,)  # replaced, not doubled


def test_it_skips_a_1x_device_whose_name_is_taken_and_its_samples(cli, tmp_path):
    legacy = build_legacy(tmp_path / "panfm1")
    cli("devices", "add", "--name", "HQ-FW", "--host", "192.0.2.99", "--api-key", API_KEY, "--insecure")
    r = cli("import-panfm", str(legacy))
    assert r.exit_code == 0, r.output
    assert "skipped: device 'HQ-FW'" in r.output and "devices imported: 1 (Branch)" in r.output
    assert _count(cli.data_dir, f"SELECT count(*) FROM device_samples WHERE device_id = '{DEV_A}'") == (0,)


def test_it_stops_with_a_clear_message_on_a_wrong_1x_key(cli, tmp_path):
    legacy = build_legacy(tmp_path / "panfm1")
    (legacy / "encryption.key").write_bytes(Fernet.generate_key())
    r = cli("import-panfm", str(legacy))
    assert r.exit_code == 1 and "does not decrypt" in r.output
    assert _store(cli.data_dir).list() == []


def test_it_imports_history_beside_a_running_clock_without_faking_its_heartbeat(cli, tmp_path):
    legacy = build_legacy(tmp_path / "panfm1")
    heartbeat = time.time() - 42
    store = SampleStore.open(cli.data_dir / HISTORY_DB)
    try:
        store.write_cycle(_cycle(time.time() - 60, device="collected"), clock_stats={"total_executions": 3})
        store.write_clock_stats({"total_executions": 3}, heartbeat=heartbeat)
        r = cli("import-panfm", str(legacy))
    finally:
        store.close()
    assert r.exit_code == 0, r.output
    assert _count(cli.data_dir, "SELECT heartbeat FROM clock_stats") == (pytest.approx(heartbeat),)
    # The clock's rollup mark had moved past 2025: the imported range is rolled up all the same.
    assert _count(cli.data_dir, f"SELECT count(*) FROM device_5m WHERE device_id = '{DEV_A}'") == (24,)
    assert _count(cli.data_dir, "SELECT count(*) FROM device_samples WHERE device_id = 'collected'") == (1,)
