"""The outbox sender against real receivers on loopback: an SMTP server and a JSON webhook."""

from __future__ import annotations

import email
import json
import logging
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import LOOPBACK

from config import SecretBox
from panfm.alerting.channels import channel_to_stored, validate_channel
from panfm.alerting.notify import format_message, redact, send_pending, send_test
from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceSample, DeviceStatus

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
BASE_URL = "https://panfm.example.net"
SECRET = "Hunter2Secret"


class Webhook:
    """A JSON receiver that answers 500 to the first `fail` requests, then 200."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.attempts, self.accepted = fail, 0, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.attempts += 1
                ok = hook.attempts > hook.fail
                if ok:
                    hook.accepted.append(json.loads(body))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"json://panfm:{SECRET}@127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(fail=3)
    yield hook
    hook.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as s:  # aiosmtpd needs a concrete port: borrow a free one
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def channel(box: SecretBox, channel_id: str, url: str) -> dict[str, Any]:
    clean, errors = validate_channel({"name": channel_id, "url": url})
    assert errors == {}
    return {**channel_to_stored(clean, box), "id": channel_id}


def fire_cpu_alert(db: Path, channel_ids: list[str], channels: list[dict[str, Any]]) -> None:
    rule = {"id": "r1", "name": "Dataplane CPU high", "metric": "cpu_dataplane_pct", "operator": ">",
            "threshold": 90, "for_s": 0, "severity": "critical", "channel_ids": channel_ids}
    cyc = CycleResult(T0 - 1, T0, (DeviceSample("fw1", T0, cpu_dataplane_pct=97.5),), (), (),
                      (DeviceStatus("fw1", "up"),))
    run_evaluation(db, [rule], channels, [], cyc, {}, T0, device_names={"fw1": "edge-fw-1"})


def test_it_delivers_a_firing_alert_by_email_with_every_detail(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    box = SecretBox.for_data_dir(tmp_path)
    url = f"mailto://example.com:{port}?smtp=127.0.0.1&from=panfm@example.com&to=ops@example.com"
    channels = [channel(box, "mail", url)]
    db = tmp_path / "alerts.db"
    fire_cpu_alert(db, ["mail"], channels)
    assert send_pending(db, channels, box, T0 + 5, BASE_URL, policy=LOOPBACK) == {"sent": 1, "retrying": 0, "dead": 0}
    [msg] = mailbox.messages
    assert "[FIRING] critical: Dataplane CPU high on edge-fw-1" in str(msg["Subject"])
    body = msg.get_body(("plain", "html"))
    assert body is not None
    text = body.get_content()
    for expected in ("Device: edge-fw-1 (fw1)", "Metric: cpu_dataplane_pct", "Value: 97.5", "Threshold: > 90",
                     "Started: 2024-05-01T12:00:00Z", "Duration: 0s so far", f"{BASE_URL}/firewall/fw1"):
        assert expected in text
    assert send_pending(db, channels, box, T0 + 600, BASE_URL, policy=LOOPBACK) == {"sent": 0, "retrying": 0, "dead": 0}
    assert len(mailbox.messages) == 1


def test_it_retries_a_failing_webhook_with_backoff_and_delivers_exactly_once(
    tmp_path: Path, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    box = SecretBox.for_data_dir(tmp_path)
    channels = [channel(box, "hook", webhook.url())]
    db = tmp_path / "alerts.db"
    fire_cpu_alert(db, ["hook"], channels)
    caplog.set_level(logging.INFO, logger="panfm.alerting")
    outcomes = []
    # Poll every 10 s for 10 minutes; the backoff (30, 60, 120 s) decides when a retry is due.
    for step in range(0, 600, 10):
        counts = send_pending(db, channels, box, T0 + step, BASE_URL, policy=LOOPBACK)
        if counts != {"sent": 0, "retrying": 0, "dead": 0}:
            outcomes.append((step, counts["sent"], counts["retrying"]))
    assert outcomes == [(0, 0, 1), (30, 0, 1), (90, 0, 1), (210, 1, 0)]
    assert webhook.attempts == 4
    [message] = webhook.accepted
    assert message["title"].startswith("[FIRING] critical: Dataplane CPU high")
    assert f"{BASE_URL}/firewall/fw1" in message["message"]
    conn = sqlite3.connect(db)
    [(status, attempts, last_error)] = conn.execute("SELECT status, attempts, last_error FROM outbox").fetchall()
    conn.close()
    assert (status, attempts, last_error) == ("sent", 4, None)
    assert SECRET not in caplog.text
    assert "500" in caplog.text  # the transport's error reached the log, without the secret


def test_it_gives_up_after_the_last_attempt_and_keeps_the_error_without_secrets(tmp_path: Path) -> None:
    hook = Webhook(fail=100)
    try:
        box = SecretBox.for_data_dir(tmp_path)
        channels = [channel(box, "hook", hook.url())]
        db = tmp_path / "alerts.db"
        fire_cpu_alert(db, ["hook"], channels)
        results = [send_pending(db, channels, box, T0 + 7200 * i, BASE_URL, max_attempts=3, policy=LOOPBACK)
                   for i in range(5)]
    finally:
        hook.close()
    assert [r["dead"] for r in results] == [0, 0, 1, 0, 0]
    assert hook.attempts == 3
    conn = sqlite3.connect(db)
    [(status, error)] = conn.execute("SELECT status, last_error FROM outbox").fetchall()
    conn.close()
    assert status == "dead" and error and SECRET not in error


def test_it_drops_a_row_whose_channel_was_removed(tmp_path: Path, webhook: Webhook) -> None:
    box = SecretBox.for_data_dir(tmp_path)
    channels = [channel(box, "hook", webhook.url())]
    db = tmp_path / "alerts.db"
    fire_cpu_alert(db, ["hook"], channels)
    assert send_pending(db, [], box, T0, BASE_URL, policy=LOOPBACK) == {"sent": 0, "retrying": 0, "dead": 1}
    assert webhook.attempts == 0


def test_it_reports_a_test_message_success_or_the_transport_error(tmp_path: Path) -> None:
    box = SecretBox.for_data_dir(tmp_path)
    good, bad = Webhook(fail=0), Webhook(fail=100)
    try:
        assert send_test(channel(box, "ok", good.url()), box, BASE_URL, LOOPBACK) == (True, None)
        ok, error = send_test(channel(box, "bad", bad.url()), box, BASE_URL, LOOPBACK)
    finally:
        good.close()
        bad.close()
    assert good.accepted[0]["title"] == "PANfm test notification: ok"
    assert ok is False and error and "500" in error and SECRET not in error
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    ok, error = send_test(channel(box, "gone", f"json://u:{SECRET}@127.0.0.1:{closed}/x"), box, BASE_URL, LOOPBACK)
    assert ok is False and error and SECRET not in error


def test_it_formats_a_resolution_with_its_duration() -> None:
    payload = {"kind": "resolved", "rule_name": "Down", "device_id": "fw1", "device_name": "fw1", "series": "",
               "metric": "device_unreachable", "severity": "critical", "operator": None, "value": 0.0,
               "threshold": None, "peak": None, "started_at": T0, "at": T0 + 3725, "detail": None}
    title, body = format_message(payload, BASE_URL + "/")
    assert title == "[RESOLVED] critical: Down on fw1"
    assert "Duration: 1h 2m 5s (ended)" in body and "Threshold: n/a" in body
    assert f"Firewall: {BASE_URL}/firewall/fw1" in body


def test_it_redacts_every_secret_part_of_a_url() -> None:
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#ops?token=abcdEFGH"
    text = f"failed posting to {url} with TIiajkdnlazkcOXrIdevi7FQ and abcdEFGH and T1JJ3T3L2"
    cleaned = redact(text, url)
    assert all(s not in cleaned for s in ("TIiajkdnlazkcOXrIdevi7FQ", "abcdEFGH", "T1JJ3T3L2"))
