"""The alerts store on both backends (S11): evaluation, incidents, acknowledgements, outbox, cleanup.

The real evaluation (`alerts.run_evaluation`) writes through `stores.alerts_db`: alerts.db of the
data folder, or the PostgreSQL database.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceSample, DeviceStatus
from throughput_storage import alerts_store

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
RULE = {"id": "r1", "name": "Dataplane CPU high", "device_id": None, "metric": "cpu_dataplane_pct", "operator": ">",
        "threshold": 90, "clear_threshold": 80, "for_s": 60, "severity": "critical", "repeat_s": 0,
        "channel_ids": ["c1"], "enabled": True}
CHANNELS = [{"id": "c1", "name": "hook", "url_enc": "x", "enabled": True}]


def _evaluate(stores, offset: float, cpu: dict[str, float]) -> list[str]:
    now = T0 + offset
    cycle = CycleResult(started=now - 1, finished=now,
                        samples=tuple(DeviceSample(d, now, cpu_dataplane_pct=v) for d, v in cpu.items()),
                        interfaces=(), baselines=(), statuses=tuple(DeviceStatus(d, "up") for d in cpu))
    return [f"{t.device_id}:{t.kind}" for t in run_evaluation(stores.alerts_db, [RULE], CHANNELS, [], cycle, {}, now)]


def test_an_incident_fires_is_acknowledged_resolves_and_notifies_once_per_transition(stores):
    assert alerts_store.active_alerts(stores.alerts_db) == []
    assert _evaluate(stores, 0, {"fw1": 95, "fw2": 10}) == ["fw1:pending"]
    assert _evaluate(stores, 60, {"fw1": 99, "fw2": 10}) == ["fw1:firing"]
    [active] = alerts_store.active_alerts(stores.alerts_db)
    assert active["state"] == "firing" and active["device_id"] == "fw1" and active["value"] == 99
    assert alerts_store.active_alert_counts(stores.alerts_db) == {"fw1": 1}
    assert alerts_store.acknowledge(stores.alerts_db, active["id"], "admin", T0 + 70)
    assert alerts_store.acknowledge(stores.alerts_db, active["id"], "admin", T0 + 71)  # twice: one ack
    assert not alerts_store.acknowledge(stores.alerts_db, "no-such-alert", "admin", T0 + 70)
    assert _evaluate(stores, 120, {"fw1": 50, "fw2": 10}) == ["fw1:resolved"]
    assert alerts_store.active_alerts(stores.alerts_db) == []
    [incident] = alerts_store.history(stores.alerts_db)
    assert incident["id"] == active["id"] and incident["peak"] == 99 and incident["duration_s"] == 120
    assert [a["username"] for a in incident["acknowledgements"]] == ["admin"]
    assert alerts_store.history(stores.alerts_db, device_id="fw2") == []
    with alerts_store.outbox(stores.alerts_db) as box:
        due = box.due(T0 + 200, 10)
        assert [r.payload["kind"] for r in due] == ["firing", "resolved"]
        assert box.sent(due[0].id, T0 + 201)
        assert not box.sent(due[0].id, T0 + 202)  # settled already: a second sender is told so
        assert box.failed(due[1].id, dead=False, next_attempt_at=T0 + 400, error="timeout")
        assert [r.id for r in box.due(T0 + 300, 10)] == []
        assert [r.attempts for r in box.due(T0 + 400, 10)] == [1]
    assert alerts_store.cleanup(stores.alerts_db, T0 + 400 * 86400, history_days=365) == {"incidents": 1,
                                                                                           "outbox": 1}
    assert alerts_store.history(stores.alerts_db) == []


def test_two_evaluations_at_once_record_and_enqueue_a_transition_once(stores):
    _evaluate(stores, 0, {"fw1": 95})
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def evaluate() -> None:
        barrier.wait()
        results.append(_evaluate(stores, 60, {"fw1": 99}))

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [[], ["fw1:firing"]]
    assert len(alerts_store.history(stores.alerts_db)) == 1
    with alerts_store.outbox(stores.alerts_db) as box:
        assert [r.payload["kind"] for r in box.due(T0 + 100, 10)] == ["firing"]
