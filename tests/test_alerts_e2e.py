"""Alerts end to end: the simulator, the clock's own jobs, the web API and a webhook on loopback."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import LOOPBACK, SIM_NETWORKS, start_sim

import clock
import panfm.alerting.jobs as clock_alerts
import panfm.settings as config
from app import create_app
from panfm.alerting.channels import channel_to_stored, validate_channel
from panfm.collector.cycle import Collector, panos_client_factory
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.config_store import DocTable

pytestmark = pytest.mark.slow

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


def test_it_notifies_one_unreachable_and_one_resolution_for_a_blackholed_firewall(tmp_path, clk, receiver):
    with start_sim(tmp_path, devices=2, models="PA-440") as sim:
        hole, fine = sim.inventory
        hole_id, fine_id = clk.add_device(hole), clk.add_device(fine)
        channel = clk.add_channel(receiver.url)
        clk.add_rule(name="Unreachable", metric="device_unreachable", severity="critical", device_id=None,
                     for_s=0, repeat_s=0, channel_ids=[channel], enabled=True)
        assert {s.state for s in clk.cycle().statuses} == {"up"}
        sim.fault(hole, "blackhole", 600)
        states = []
        for _ in range(4):  # down, down, breaker open, skipped while the breaker waits
            states.append({s.device_id: s.state for s in clk.cycle().statuses}[hole_id])
        assert states == ["down", "down", "breaker_open", "breaker_open"]
        assert len(receiver.titles("FIRING", "Unreachable")) == 1
        assert receiver.titles("FIRING", "Unreachable")[0].endswith(hole["name"])
        sim.fault(hole, "none")
        clk.offset += 125  # past the breaker's longest probe gap (120 s): the next cycle probes
        cycle = clk.cycle()
        assert {s.device_id: s.state for s in cycle.statuses} == {hole_id: "up", fine_id: "up"}
        for _ in range(2):
            clk.offset += 5
            clk.cycle()
        assert len(receiver.titles("FIRING", "Unreachable")) == 1
        assert len(receiver.titles("RESOLVED", "Unreachable")) == 1
        assert len(receiver.accepted) == 2, [m["title"] for m in receiver.accepted]


def test_it_fires_a_cpu_rule_once_and_resolves_it_once_after_a_web_edit(tmp_path, clk, receiver):
    with start_sim(tmp_path, devices=1, models="PA-3220") as sim:
        (entry,) = sim.inventory
        device_id = clk.add_device(entry)
        channel = clk.add_channel(receiver.url)
        first = clk.cycle()
        cpu = first.samples[0].cpu_dataplane_pct
        assert cpu is not None and cpu > 0.5, "the simulated firewall should be busy"
        web = web_client(clk.settings)
        r = web.post("/api/alerts/rules", json={"name": "DP CPU", "metric": "cpu_dataplane_pct", "operator": ">",
                                                 "threshold": round(cpu / 4, 2), "device_id": device_id,
                                                 "severity": "warning", "channel_ids": [channel]})
        assert r.status_code == 201
        rule_id = r.get_json()["id"]
        for _ in range(3):
            clk.offset += 5
            clk.cycle()
        (active,) = web.get("/api/alerts/active").get_json()["alerts"]
        assert (active["rule_id"], active["state"], active["device_id"]) == (rule_id, "firing", device_id)
        assert active["value"] > active["threshold"] == round(cpu / 4, 2)
        assert web.get("/api/overview").get_json()["devices"][0]["active_alerts"] == 1
        assert web.put(f"/api/alerts/rules/{rule_id}", json={"threshold": 100}).status_code == 200
        for _ in range(3):
            clk.offset += 5
            clk.cycle()
        assert web.get("/api/alerts/active").get_json() == {"alerts": []}
        (incident,) = web.get("/api/alerts/history").get_json()["history"]
        assert incident["ended_at"] is not None and incident["peak"] >= incident["threshold"]
        assert len(receiver.titles("FIRING", "DP CPU")) == 1
        assert len(receiver.titles("RESOLVED", "DP CPU")) == 1
        assert len(receiver.accepted) == 2
        body = receiver.accepted[0]["message"]
        assert f"https://panfm.test/firewall/{device_id}" in body and "cpu_dataplane_pct" in body
