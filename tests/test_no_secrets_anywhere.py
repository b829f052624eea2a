"""A full cycle with every fault mode, logs at DEBUG and every answer captured: no secret appears anywhere.

Secrets: device API keys (also the ones regenerated after `revoke_key`, which the clock keeps
in memory only: the simulator's keygen tells them), device passwords, the admin passwords,
every Fernet token stored in config.db, encryption.key, secret_key, and the secret parts of
alert channel URLs (a mailto:// password, Slack and Telegram tokens, a `json://` webhook's
userinfo password, path token, query value and header value), also while each channel
delivers, from the web's "test channel" and from the clock's outbox.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import SIM_NETWORKS, start_sim

import clock
import config
import panfm.alerting.jobs as clock_alerts
import panfm.ops as ops
import panfm.ops.logsetup as logsetup
import panfm.redact as logsafe
from app import create_app
from panfm.storage.config_store import DeviceStore

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
MAIL_PASSWORD = "Mail-Secret-Pa55word"
SLACK_TOKEN = "T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
FAULTS = ["down", "http500", "bad_xml", "revoke_key", "reboot", "failover", "replace", "slow"]


def concrete(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: ids.get(m.group(1), "some-id"), rule)


def current_key(sim: Any, entry: dict[str, Any]) -> str:
    """The device's key now, from its keygen: after `revoke_key` the clock got a new one it never stores."""
    form = urlencode({"type": "keygen", "user": entry["username"], "password": entry["password"]}).encode()
    status, _, _, body = sim.request(entry, "POST", "/api/", form,
                                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body[:200]
    found = re.search(rb"<key>([^<]+)</key>", body)
    assert found, body[:200]
    return found.group(1).decode()


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
            ops.collect_slow_once(ctx)
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
        for d in DeviceStore(data, box, lambda: 0.0).list():
            secrets |= {s for s in (d.api_key, d.password) if s}
        revoked = sim.inventory[1 + FAULTS.index("revoke_key")]
        regenerated = current_key(sim, revoked)
        assert regenerated != revoked["api_key"], "the clock should have had a new key generated"
        secrets.add(regenerated)
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


# ---- channels delivering, at DEBUG, in the web and in the clock ----------------------------

HOOK_PASSWORD = "Hook-Pa55word-9c1e"
HOOK_PATH_TOKEN = "PathTok3n-7f3a9c2b"
HOOK_HEADER_VALUE = "HeaderS3cret-b41d07"
HOOK_QUERY_VALUE = "QueryS3cret-e55a31"
BOT_TOKEN = "123456789:AAHbotT0kenSecretValue-4b2"


class Webhook:
    """A JSON webhook on loopback (a real stdlib HTTP server) keeping the headers of every post."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.posts.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def network_cut(monkeypatch) -> None:
    """Every connection beyond loopback is refused: requests goes through a proxy port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, refused)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def process_logging() -> Iterator[None]:
    """Undo what each process's logging setup installs (handlers, levels, the record factory)."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", "panfm")}
    yield
    logsetup.unconfigure()
    logsafe.uninstall_redaction()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    assert root is logging.getLogger()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("log_libraries", [False, True], ids=["libraries-at-warning", "libraries-at-debug"])
def test_no_channel_secret_reaches_a_log_record_or_file_while_channels_deliver(
        tmp_path: Path, caplog, webhook: Webhook, network_cut: None, process_logging: None, log_libraries: bool
) -> None:
    data = tmp_path / "data"
    overrides = {"data_dir": str(data), "admin_password": INITIAL, "log_level": "DEBUG", "log_file": "panfm.log",
                 "log_libraries": log_libraries, "request_timeout": 2.0, "refresh_interval": 5,
                 "base_url": "https://panfm.test", "allowed_device_networks": SIM_NETWORKS}  # the loopback webhook
    settings = config.load_settings(env={}, overrides=overrides)
    caplog.set_level(logging.DEBUG)
    console = io.StringIO()
    hook_url = (f"json://hookuser:{HOOK_PASSWORD}@127.0.0.1:{webhook.port}/hook/{HOOK_PATH_TOKEN}"
                f"?+X-Api-Token={HOOK_HEADER_VALUE}&-sig={HOOK_QUERY_VALUE}")
    urls = {"hook": hook_url, "slack": f"slack://{SLACK_TOKEN}/#noc", "telegram": f"tgram://{BOT_TOKEN}/12345"}
    answers: list[str] = []
    with start_sim(tmp_path, devices=2, models="PA-440", seed=13) as sim:
        keyed, with_creds = sim.inventory
        # The web process: its logging setup, then devices, channels, a rule, and "test channel".
        logsetup.configure(settings, "web", stream=console)
        client = create_app(settings).test_client()
        token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
        client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                    headers={"X-CSRFToken": token})
        client.environ_base["HTTP_X_CSRFTOKEN"] = token
        for entry, creds in ((keyed, {"api_key": keyed["api_key"]}),
                             (with_creds, {"username": with_creds["username"], "password": with_creds["password"]})):
            r = client.post("/api/devices", json={
                "name": entry["name"], "host": entry["host"], "port": entry["port"],
                "tls": {"mode": "pin", "fingerprint_sha256": entry["tls_fingerprint_sha256"]}, **creds})
            assert r.status_code == 201, r.get_json()
        channel_ids = {}
        for name, url in urls.items():
            r = client.post("/api/alerts/channels", json={"name": name, "url": url})
            assert r.status_code == 201, r.get_json()
            channel_ids[name] = r.get_json()["id"]
        r = client.post("/api/alerts/rules", json={
            "name": "Sessions seen", "metric": "sessions_active", "operator": ">=", "threshold": 0,
            "severity": "warning", "device_id": None, "for_s": 0, "repeat_s": 0,
            "channel_ids": list(channel_ids.values()), "enabled": True})
        assert r.status_code == 201, r.get_json()
        tested = {}
        for name, channel_id in channel_ids.items():
            r = client.post(f"/api/alerts/channels/{channel_id}/test")
            tested[name] = r.get_json()
            answers.append(r.get_data(as_text=True))
        answers += [client.get(path).get_data(as_text=True) for path in ("/api/alerts/channels", "/api/alerts/history")]
        assert tested["hook"] == {"ok": True, "error": None}, tested
        assert not tested["slack"]["ok"] and not tested["telegram"]["ok"], "the network cut should refuse them"

        # The clock process: its logging setup, a key revoked and regenerated, the outbox sent.
        logsetup.configure(settings, "clock", stream=console)
        ctx = clock.build_context(settings)
        ctx.load_settings = lambda: config.load_settings(env={}, overrides=overrides)
        try:
            clock.collect_once(ctx)
            sim.fault(with_creds, "revoke_key")
            clock.collect_once(ctx)  # 403, keygen from the stored credentials, retry
            counts = clock_alerts.notify_once(ctx)
        finally:
            ctx.collector.close()
            ctx.store.close()
        regenerated = current_key(sim, with_creds)
    logsetup.unconfigure()

    assert regenerated != with_creds["api_key"], "the revoked key should have been replaced"
    assert counts["sent"] == 2 and counts["retrying"] == 4, counts  # 2 devices x (hook | slack, telegram)
    delivered = [body["title"] for _, body in webhook.posts]
    assert len(delivered) == 3 and delivered[0].startswith("PANfm test notification"), delivered
    assert {headers.get("X-Api-Token") for headers, _ in webhook.posts} == {HOOK_HEADER_VALUE}

    files = {p.name: p.read_text() for p in data.glob("panfm-*.log")}
    assert set(files) == {"panfm-web.log", "panfm-clock.log"}
    records = [" ".join((r.name, r.getMessage(), str(r.msg), str(r.args), r.exc_text or "")) for r in caplog.records]
    logged = "\n".join([console.getvalue(), *files.values(), *records])
    assert "[ALERTS] notification" in logged, "the refused deliveries should have been logged"
    if log_libraries:  # the libraries' DEBUG lines are there, masked: what redaction must handle
        assert "JSON POST URL" in logged and "Slack POST URL" in logged and "Telegram POST URL" in logged
        assert "urllib3.connectionpool" in logged
    else:
        assert "JSON POST URL" not in logged and "Starting new HTTP" not in logged

    secrets = {HOOK_PASSWORD, HOOK_PATH_TOKEN, HOOK_HEADER_VALUE, HOOK_QUERY_VALUE, SLACK_TOKEN, BOT_TOKEN,
               *SLACK_TOKEN.split("/"), BOT_TOKEN.split(":")[1], INITIAL, NEW, regenerated,
               keyed["api_key"], with_creds["api_key"], with_creds["password"]}
    for secret in sorted(secrets):
        assert secret not in logged, f"a secret ({secret[:3]}...) appears in a log record or file"
        for answer in answers:
            assert secret not in answer, f"a secret ({secret[:3]}...) appears in {answer[:60]}"
