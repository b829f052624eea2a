"""A firewall whose certificate changes (simulator `replace`) is not polled until an admin accepts the new one."""

from __future__ import annotations

import time

import pytest
from conftest import start_sim
from helpers.alerts import web_client

import panfm.ops as ops

pytestmark = pytest.mark.slow


def requests_of(sim, entry) -> int:
    return int(sim.stats(entry)[entry["name"]]["requests_total"])



def test_it_stops_polling_a_replaced_firewall_until_its_new_fingerprint_is_accepted(tmp_path, clk, receiver):
    # Two devices: the replace drops every connection of its own port, the control call included,
    # so the fleet's helper retries it through the other one.
    with start_sim(tmp_path, devices=2, models="PA-440") as sim:
        entry = sim.inventory[0]
        old_fp = entry["tls_fingerprint_sha256"]
        device_id = clk.add_device(entry)
        channel = clk.add_channel(receiver.url)
        for name, metric in (("Cert changed", "tls_fingerprint_changed"), ("Unreachable", "device_unreachable")):
            clk.add_rule(name=name, metric=metric, severity="critical", device_id=None, for_s=0, repeat_s=0,
                         channel_ids=[channel], enabled=True)
        assert clk.cycle().statuses[0].state == "up"
        clk.offset += 5
        assert clk.cycle().samples[0].inbound_mbps is not None

        new_fp = sim.fault(entry, "replace")["tls_fingerprint_sha256"]
        assert new_fp != old_fp
        before = requests_of(sim, entry)
        for _ in range(3):
            clk.offset += 5
            cycle = clk.cycle()
            assert cycle.samples == ()
            (status,) = cycle.statuses
            assert status.state == "down"
            assert status.last_error.startswith(f"certificate changed: expected {old_fp}, got {new_fp}")
        ops.collect_slow_once(clk.ctx)
        assert requests_of(sim, entry) == before, "a request (with the key) reached the new certificate"
        assert len(receiver.titles("FIRING", "Cert changed")) == 1
        assert receiver.titles("FIRING", "Unreachable") == [], "a certificate change is not an outage"

        web = web_client(clk.settings)
        shown = web.get(f"/api/devices/{device_id}").get_json()
        assert shown["status"]["state"] == "down" and new_fp in shown["status"]["last_error"]
        (active,) = web.get("/api/alerts/active").get_json()["alerts"]
        assert active["metric"] == "tls_fingerprint_changed" and new_fp in active["detail"]
        # Accepting a new certificate is a new TLS target: the stored key is not sent to it unasked.
        r = web.put(f"/api/devices/{device_id}", json={"tls": {"mode": "pin", "fingerprint_sha256": new_fp}})
        assert r.status_code == 400 and "api_key" in r.get_json()["fields"]
        r = web.put(f"/api/devices/{device_id}", json={"tls": {"mode": "pin", "fingerprint_sha256": new_fp},
                                                       "api_key": entry["api_key"]})
        assert r.status_code == 200

        clk.offset += 5
        accepted = clk.cycle()
        assert accepted.statuses[0].state == "up" and requests_of(sim, entry) > before
        assert accepted.samples[0].inbound_mbps is None, "the first sample of the new box is a gap, not a spike"
        # A real interval between two real polls: the rate is then measured over seconds, not the
        # few milliseconds of two back-to-back cycles where response jitter would dominate.
        time.sleep(2.0)
        clk.offset += 5
        after = clk.cycle()
        (baseline,) = accepted.baselines
        (sample,) = after.samples
        truth = sim.truth(entry, baseline.ts, sample.ts)
        ports = [n for n in truth["interfaces"] if n.startswith("ethernet") and "." not in n]
        want = sum(truth["interfaces"][n]["in_bytes"] for n in ports) * 8 / (sample.ts - baseline.ts) / 1e6
        # A spike across the swap (counters from zero against a 2^40 baseline) would be off by orders
        # of magnitude; 10% leaves room for response jitter on a loaded machine.
        assert sample.inbound_mbps == pytest.approx(want, rel=0.1)

        clk.offset += 601  # the change has been stable for 10 minutes: the alert resolves, once
        clk.cycle()
        clk.offset += 5
        clk.cycle()
        assert len(receiver.titles("FIRING", "Cert changed")) == 1
        assert len(receiver.titles("RESOLVED", "Cert changed")) == 1
        assert web.get("/api/alerts/active").get_json() == {"alerts": []}
