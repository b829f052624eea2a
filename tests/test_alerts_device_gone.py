"""Removing or disabling a firewall closes its alerts; re-enabling it starts fresh."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import clock
import config
from panfm.alerting.evaluate import Observations, evaluate
from panfm.alerting.jobs import evaluate_alerts
from panfm.alerting.run import run_evaluation
from panfm.models import AlertState, CycleResult, DeviceConfig, DeviceSample, DeviceStatus, Rule, TlsConfig
from panfm.storage.alerts_store import active_alerts, history
from panfm.storage.config_store import DeviceStore, DocTable

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
RULE = {"id": "r1", "name": "Dataplane CPU high", "device_id": None, "metric": "cpu_dataplane_pct", "operator": ">",
        "threshold": 90, "for_s": 0, "severity": "critical", "repeat_s": 0, "channel_ids": ["c1"], "enabled": True}
SLOW_RULE = {**RULE, "id": "r2", "name": "CPU slow", "for_s": 600}
CHANNELS = [{"id": "c1", "name": "hook", "url_enc": "x", "enabled": True}]


def cycle(now: float, cpu: dict[str, float]) -> CycleResult:
    return CycleResult(started=now - 1, finished=now,
                       samples=tuple(DeviceSample(d, now, cpu_dataplane_pct=v) for d, v in cpu.items()),
                       interfaces=(), baselines=(), statuses=tuple(DeviceStatus(d, "up") for d in cpu))


def outbox(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute("SELECT alert_id, kind FROM outbox ORDER BY id")]
    finally:
        conn.close()


def evaluate_at(db: Path, offset: float, cpu: dict[str, float], enabled: dict[str, bool]) -> list[str]:
    now = T0 + offset
    trs = run_evaluation(db, [RULE, SLOW_RULE], CHANNELS, [], cycle(now, cpu), {}, now, device_enabled=enabled)
    return sorted(f"{t.device_id}:{t.rule_id}:{t.kind}" for t in trs)


@pytest.mark.parametrize(("enabled", "reason"), [({"fw2": True}, "device removed"),
                                                 ({"fw1": False, "fw2": True}, "device disabled")])
def test_it_ends_the_incidents_of_a_removed_or_disabled_device_without_a_resolved_message(
    tmp_path: Path, enabled: dict[str, bool], reason: str
) -> None:
    db = tmp_path / "alerts.db"
    both = {"fw1": True, "fw2": True}
    assert evaluate_at(db, 0, {"fw1": 95, "fw2": 95}, both) == [
        "fw1:r1:firing", "fw1:r2:pending", "fw2:r1:firing", "fw2:r2:pending"]
    sent_before = outbox(db)
    # fw1 leaves: the clock no longer polls it, so the cycle has no data for it at all.
    assert evaluate_at(db, 30, {"fw2": 95}, enabled) == ["fw1:r1:resolved", "fw1:r2:cancelled"]
    assert outbox(db) == sent_before  # no "resolved" claiming the CPU went back to normal
    assert {(a["device_id"], a["rule_id"]) for a in active_alerts(db)} == {("fw2", "r1"), ("fw2", "r2")}
    (incident,) = history(db, device_id="fw1")
    assert incident["ended_at"] == "2024-05-01T12:00:30Z" and incident["detail"] == reason
    assert evaluate_at(db, 60, {"fw2": 95}, enabled) == []  # closed once, not every cycle


def test_it_starts_fresh_when_a_disabled_device_is_enabled_again(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    evaluate_at(db, 0, {"fw1": 95}, {"fw1": True})
    evaluate_at(db, 30, {}, {"fw1": False})
    assert active_alerts(db) == []
    assert evaluate_at(db, 60, {"fw1": 95}, {"fw1": True}) == ["fw1:r1:firing", "fw1:r2:pending"]
    incidents = history(db, device_id="fw1")
    assert len(incidents) == 2 and incidents[0]["id"] != incidents[1]["id"]
    assert incidents[0]["ended_at"] is None and incidents[1]["detail"] == "device disabled"
    assert [k for _a, k in outbox(db)] == ["firing", "firing"]  # the new incident notifies once


def test_it_drops_every_state_of_a_removed_device_in_pure_evaluation() -> None:
    rule = Rule(id="r1", name="HA", metric="ha_state_changed", severity="info", channel_ids=("c1",))
    remembered = AlertState("r1", "fw1", "", "inactive", observed="active", observed_at=T0)
    ev = evaluate([rule], Observations(), {("r1", "fw1", ""): remembered}, T0 + 30, device_enabled={})
    assert ev.states == {} and ev.transitions == ()  # nothing to close, but nothing kept either


@pytest.fixture
def ctx(tmp_path):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path), "refresh_interval": 5})
    context = clock.build_context(settings)
    yield context
    context.collector.close()
    context.store.close()


def test_it_closes_the_alerts_of_a_device_deleted_in_the_web_on_the_next_clock_evaluation(ctx: Any) -> None:
    devices = DeviceStore(ctx.data_dir, config.SecretBox.for_data_dir(ctx.data_dir), clock=time.time)
    dev_id = devices.add(DeviceConfig(id="", name="fw-a", host="127.0.0.1", api_key="k", tls=TlsConfig("insecure")))
    DocTable(ctx.data_dir, "alert_rules", time.time).put(dict(RULE))
    evaluate_alerts(ctx, cycle(time.time(), {dev_id: 99.0}))
    assert [a["state"] for a in active_alerts(ctx.alerts_db)] == ["firing"]
    devices.remove(dev_id)
    evaluate_alerts(ctx, cycle(time.time(), {}))
    assert active_alerts(ctx.alerts_db) == []
    assert history(ctx.alerts_db)[0]["detail"] == "device removed"
