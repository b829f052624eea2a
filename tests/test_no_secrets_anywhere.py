"""A full cycle with every fault mode, logs at DEBUG and every answer captured: no secret appears anywhere.

Secrets: device API keys (also the ones regenerated after `revoke_key`), device passwords, the
admin passwords, every Fernet token stored in config.db, encryption.key, secret_key, and the
secret parts of alert channel URLs (a mailto:// password, a Slack token).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import SIM_NETWORKS, start_sim

import clock
import config
from app import create_app
from config_store import DeviceStore

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
MAIL_PASSWORD = "Mail-Secret-Pa55word"
SLACK_TOKEN = "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
FAULTS = ["down", "http500", "bad_xml", "revoke_key", "reboot", "failover", "replace", "slow"]


def concrete(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ids.get(m.group(1), "some-id"), rule)


@pytest.mark.timeout(180)
def test_no_secret_appears_in_logs_answers_or_the_cli(tmp_path: Path, caplog, monkeypatch) -> None:
    data = tmp_path / "data"
    overrides = {"data_dir": str(data), "admin_password": INITIAL, "log_level": "DEBUG", "request_timeout": 2.0,
                 "refresh_interval": 5, "allowed_device_networks": SIM_NETWORKS}
    settings = config.load_settings(env={}, overrides=overrides)
    caplog.set_level(logging.DEBUG)
    with start_sim(tmp_path, devices=len(FAULTS) + 1, seed=11) as sim:
        app = create_app(settings)
        client = app.test_client()
        token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
        client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                    headers={"X-CSRFToken": token})
        client.environ_base["HTTP_X_CSRFTOKEN"] = token
        ids: dict[str, str] = {}
        for i, entry in enumerate(sim.inventory):
            creds = ({"api_key": entry["api_key"]} if i % 2 else
                     {"username": entry["username"], "password": entry["password"]})
            r = client.post("/api/devices", json={"name": entry["name"], "host": entry["host"], "port": entry["port"],
                                                  "tls": {"mode": "pin",
                                                          "fingerprint_sha256": entry["tls_fingerprint_sha256"]},
                                                  **creds})
            assert r.status_code == 201, r.get_json()
            ids["device_id"] = r.get_json()["id"]
        for url in (f"mailto://ops:{MAIL_PASSWORD}@example.com?to=noc@example.com&smtp=127.0.0.1&port=9",
                    f"slack://{SLACK_TOKEN}/#noc"):
            r = client.post("/api/alerts/channels", json={"name": url[:5], "url": url})
            if r.status_code != 404:  # the alerts API may not be registered in every build
                assert r.status_code == 201, r.get_json()
                ids["channel_id"] = r.get_json()["id"]
        # A connection test with a wrong key and with a wrong password.
        entry = sim.inventory[0]
        client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"], "api_key": "WrongKey-123"})
        client.post("/api/devices/test", json={"host": entry["host"], "port": entry["port"], "username": "admin",
                                                "password": "Wrong-Device-Pass"})

        for entry, mode in zip(sim.inventory[1:], FAULTS, strict=True):
            sim.fault(entry, mode, **({"latency_s": 0.5} if mode == "slow" else {}))

        ctx = clock.build_context(settings)
        ctx.load_settings = lambda: config.load_settings(env={}, overrides=overrides)
        try:
            for _ in range(3):
                clock.collect_once(ctx)
            clock.collect_slow_once(ctx)
        finally:
            ctx.collector.close()
            ctx.store.close()

        answers: list[str] = []
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint == "static":
                continue
            for query in ("", f"?device_id={ids['device_id']}&name=ethernet1/1"):
                r = client.get(concrete(rule.rule, ids) + query)
                assert r.status_code != 500, rule.rule
                answers.append(f"{rule.rule} {r.status_code} {dict(r.headers)} {r.get_data(as_text=True)}")
                r.close()
        cli = app.test_cli_runner().invoke(args=["devices", "list"], env={"PANFM_DATA_DIR": str(data)})
        assert cli.exit_code == 0, cli.output
        answers.append(cli.output)

        secrets = {e["password"] for e in sim.inventory} | {e["api_key"] for e in sim.inventory}
        box = config.SecretBox.for_data_dir(data)
        for d in DeviceStore(data, box, lambda: 0.0).list():  # keys regenerated after revoke_key too
            secrets |= {s for s in (d.api_key, d.password) if s}
    secrets |= {INITIAL, NEW, MAIL_PASSWORD, SLACK_TOKEN, "TIiajkdnlazkcOXrIdevi7FQ"}
    secrets |= set((data / config.KEY_FILE).read_text().split()) | {(data / config.SECRET_KEY_FILE).read_text().strip()}
    conn = sqlite3.connect(data / "config.db")
    try:
        for table, column in (("devices", "api_key_enc"), ("devices", "password_enc")):
            secrets |= {v for (v,) in conn.execute(f"SELECT {column} FROM {table}") if v}
        for (doc,) in conn.execute("SELECT doc FROM alert_channels"):
            secrets |= set(re.findall(r"gAAAAA[A-Za-z0-9_=-]{20,}", doc))  # Fernet tokens
    finally:
        conn.close()
    secrets = {s for s in secrets if s and len(s) >= 6}
    assert len(secrets) >= 2 * len(FAULTS)

    logs = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "collect" in logs, "the cycle should have logged"
    for secret in sorted(secrets):
        assert secret not in logs, f"a secret ({secret[:3]}...) appears in a log line"
        for answer in answers:
            assert secret not in answer, f"a secret ({secret[:3]}...) appears in {answer[:60]}"
