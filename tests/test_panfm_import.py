"""Import of a PANfm 1.x folder, built by the test in the formats of docs/migration.md."""

import base64
import json
import sqlite3

import pytest
from cryptography.fernet import Fernet

import panfm.ops.import_1x as panfm_import
from panfm.ops.import_1x import ImportError_, ImportReport, LegacySecrets, read_devices, read_samples, read_settings

DEV_A = "3f1b2c4d-0000-4000-8000-000000000001"
DEV_B = "3f1b2c4d-0000-4000-8000-000000000002"


def _enc(fernet, value):
    return base64.b64encode(fernet.encrypt(value.encode())).decode()


@pytest.fixture
def legacy(tmp_path):
    """A PANfm 1.11 folder: two devices (one with host:port), settings, 5 history rows."""
    folder = tmp_path / "panfm1"
    folder.mkdir()
    key = Fernet.generate_key()
    (folder / "encryption.key").write_bytes(key)
    f = Fernet(key)
    (folder / "devices.json").write_text(json.dumps({
        "devices": [
            {"id": DEV_A, "name": "HQ-FW", "ip": "192.0.2.10", "api_key": _enc(f, "LUFRPT-key-A=="),
             "enabled": True, "group": "Headquarters", "description": "", "added_date": "2025-11-01T10:00:00",
             "last_seen": None, "monitored_interface": "ethernet1/12", "wan_interface": "ethernet1/1"},
            {"id": DEV_B, "name": "Branch", "ip": "fw-branch.example.net:8443", "api_key": "plain-old-key",
             "enabled": True, "group": "Branch Office", "monitored_interface": ""},
            {"id": "x", "name": "Broken"},
        ],
        "groups": ["Headquarters", "Branch Office"],
    }))
    (folder / "settings.json").write_text(json.dumps({
        "refresh_interval": 600, "throughput_retention_days": 60, "timezone": "Europe/Paris",
        "selected_device_id": DEV_A, "alert_notification_channels": {"email": {"enabled": False}},
        "dark_mode_experiment": True,
    }))
    db = sqlite3.connect(folder / "throughput_history.db")
    db.execute("""CREATE TABLE throughput_samples (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
        timestamp TEXT NOT NULL, inbound_mbps REAL, outbound_mbps REAL, total_mbps REAL, inbound_pps INTEGER,
        outbound_pps INTEGER, total_pps INTEGER, sessions_active INTEGER, sessions_tcp INTEGER, sessions_udp INTEGER,
        sessions_icmp INTEGER, cpu_data_plane INTEGER, cpu_mgmt_plane INTEGER, memory_used_pct INTEGER,
        critical_threats INTEGER, medium_threats INTEGER, blocked_urls INTEGER, interface_errors INTEGER,
        interface_drops INTEGER, hostname TEXT, pan_os_version TEXT, uptime_seconds INTEGER, top_apps_json TEXT)""")
    rows = [
        (DEV_A, "2025-11-12T08:15:00.000000Z", 0.0, 0.0, 0.0, 10, 40),      # false zero after a 1.x restart
        (DEV_A, "2025-11-12T08:15:30.123456Z", 120.5, 30.25, 150.75, 1000, 41),
        (DEV_A, "2025-11-12T08:16:00.000000Z", 130.0, 31.0, 161.0, 1100, 42),
        (DEV_B, "2025-11-12T08:15:30.000000Z", 5.0, 1.0, 6.0, 50, 7),
        ("ghost-device", "2025-11-12T08:15:30.000000Z", 1.0, 1.0, 2.0, 1, 1),
    ]
    for dev, ts, i, o, t, s, cpu in rows:
        db.execute("INSERT INTO throughput_samples (device_id, timestamp, inbound_mbps, outbound_mbps, total_mbps,"
                   " sessions_active, cpu_data_plane, memory_used_pct) VALUES (?,?,?,?,?,?,?,?)",
                   (dev, ts, i, o, t, s, cpu, 97))
    db.commit()
    db.close()
    return folder


def test_it_decrypts_1x_api_keys_and_keeps_plaintext_ones(legacy):
    report = ImportReport()
    devices = read_devices(legacy, report)
    assert [(d.name, d.host, d.port, d.api_key) for d in devices] == [
        ("HQ-FW", "192.0.2.10", 443, "LUFRPT-key-A=="),
        ("Branch", "fw-branch.example.net", 8443, "plain-old-key"),
    ]
    assert devices[0].id == DEV_A and devices[0].interfaces == ("ethernet1/12",)
    assert devices[1].interfaces == ()
    # 1.x's wan_interface becomes the uplink (WAN) mark: In/Out are that interface's.
    assert devices[0].uplinks == ("ethernet1/1",) and devices[1].uplinks == ()
    # 1.x never verified TLS: imported devices wait, disabled, for a fingerprint decision.
    assert all(not d.enabled and d.tls.mode == "pin" and d.tls.fingerprint_sha256 is None for d in devices)
    assert any("#3" in s and "malformed" in s for s in report.skipped)


def test_a_wrong_encryption_key_is_a_clear_error(legacy):
    (legacy / "encryption.key").write_bytes(Fernet.generate_key())
    with pytest.raises(ImportError_, match="does not decrypt"):
        read_devices(legacy, ImportReport())
    (legacy / "encryption.key").unlink()
    with pytest.raises(ImportError_, match=r"encryption\.key"):
        read_devices(legacy, ImportReport())


def test_settings_with_an_equivalent_are_imported_and_clamped(legacy):
    report = ImportReport()
    assert read_settings(legacy, report) == {"refresh_interval": 300, "throughput_retention_days": 60}
    text = "\n".join(report.skipped)
    assert "refresh_interval=600" in text and "dark_mode_experiment" in text and "alert_notification_channels" in text
    assert "timezone" not in text  # display time zone is the browser's now: silently not needed


def test_history_drops_false_zeros_unknown_devices_and_swap_memory(legacy):
    report = ImportReport()
    samples = list(read_samples(legacy, {DEV_A, DEV_B}, report))
    assert [(s.device_id, s.inbound_mbps, s.sessions_active) for s in samples] == [
        (DEV_A, 120.5, 1000), (DEV_A, 130.0, 1100), (DEV_B, 5.0, 50)]
    assert samples[0].ts == pytest.approx(1762935330.123456)
    assert all(s.memory_pct is None for s in samples)
    assert report.samples == 3
    text = "\n".join(report.skipped)
    assert "1 false-zero" in text and "1 samples of devices not in devices.json" in text


def test_legacy_secret_values_that_are_not_tokens_are_plaintext():
    secrets = LegacySecrets(Fernet.generate_key())
    assert secrets.decrypt("not base64 !") == "not base64 !"
    assert secrets.decrypt(base64.b64encode(b"hello").decode()) == base64.b64encode(b"hello").decode()


def test_host_port_forms():
    assert panfm_import.split_host_port("[2001:db8::1]:4443") == ("2001:db8::1", 4443)
    assert panfm_import.split_host_port("2001:db8::1") == ("2001:db8::1", 443)
    assert panfm_import.split_host_port("fw:8443") == ("fw", 8443)
