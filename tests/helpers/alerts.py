"""Alerts helpers: a webhook receiver on loopback, the clock's real jobs with movable time, a logged-in web client."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conftest import LOOPBACK, SIM_NETWORKS

import clock
import config
import panfm.alerting.jobs as clock_alerts
from app import create_app
from panfm.alerting.channels import channel_to_stored, validate_channel
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DocTable

INITIAL = "initial-password-1"
NEW = "a-much-better-password"


class Receiver:
    """A JSON webhook on loopback (what Apprise's json:// posts) that keeps every message it accepted."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.accepted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def titles(self, kind: str, rule: str) -> list[str]:
        return [m["title"] for m in self.accepted if m["title"].startswith(f"[{kind}]") and rule in m["title"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """The clock's real context and jobs over a temp data folder, with time that tests can move."""

    def __init__(self, data_dir: Path) -> None:
        self.offset = 0.0
        now: Callable[[], float] = lambda: time.time() + self.offset  # noqa: E731
        self.settings = config.load_settings(env={}, overrides={
            "data_dir": str(data_dir), "refresh_interval": 5, "admin_password": INITIAL,
            "base_url": "https://panfm.test", "allowed_device_networks": SIM_NETWORKS})
        self.ctx = clock.build_context(self.settings)
        self.ctx.load_settings = lambda: self.settings
        self.ctx.clock = now
        self.ctx.collector.close()
        self.ctx.collector = Collector(workers=4, request_timeout=5.0, clock=now,
                                       client_factory=functools.partial(panos_client_factory, policy=LOOPBACK))

    def cycle(self) -> Any:
        cycle = clock.collect_once(self.ctx)
        clock_alerts.notify_once(self.ctx)
        return cycle

    def add_device(self, entry: dict[str, Any]) -> str:
        return self.ctx.devices.add(DeviceConfig(
            id="", name=entry["name"], host=entry["host"], port=entry["port"], api_key=entry["api_key"],
            tls=TlsConfig("pin", fingerprint_sha256=entry["tls_fingerprint_sha256"])))

    def add_channel(self, url: str) -> str:
        clean, errors = validate_channel({"name": "hook", "url": url})
        assert not errors
        stored = channel_to_stored(clean, self.ctx.devices.box)
        return DocTable(self.ctx.data_dir, "alert_channels", time.time).put(stored)

    def add_rule(self, **doc: Any) -> str:
        return DocTable(self.ctx.data_dir, "alert_rules", time.time).put(doc)

    def close(self) -> None:
        self.ctx.collector.close()
        self.ctx.store.close()


def web_client(settings: config.Settings) -> Any:
    client = create_app(settings).test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                headers={"X-CSRFToken": token})
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return client
