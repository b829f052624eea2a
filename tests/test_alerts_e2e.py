"""Alerts end to end: the simulator, the clock's own jobs, the web API and a webhook on loopback."""

from __future__ import annotations

import pytest
from conftest import start_sim
from helpers.alerts import web_client

pytestmark = pytest.mark.slow


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
