"""alerts.db through the clock's and the web's functions: states, incidents, outbox rows, acks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceSample, DeviceStatus
from panfm.storage.alerts_store import (
    acknowledge,
    active_alert_counts,
    active_alerts,
    cleanup,
    history,
)

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
RULE = {"id": "r1", "name": "Dataplane CPU high", "device_id": None, "metric": "cpu_dataplane_pct", "operator": ">",
        "threshold": 90, "clear_threshold": 80, "for_s": 60, "severity": "critical", "repeat_s": 0,
        "channel_ids": ["c1", "c2"], "enabled": True}
CHANNELS = [{"id": "c1", "name": "hook", "url_enc": "x", "enabled": True},
            {"id": "c2", "name": "off", "url_enc": "x", "enabled": False}]


def cycle(now: float, cpu: dict[str, float | None], down: tuple[str, ...] = ()) -> CycleResult:
    return CycleResult(
        started=now - 1, finished=now,
        samples=tuple(DeviceSample(d, now, cpu_dataplane_pct=v) for d, v in cpu.items() if d not in down),
        interfaces=(), baselines=(),
        statuses=tuple(DeviceStatus(d, "down" if d in down else "up") for d in cpu),
    )


def evaluate_at(db: Path, offset: float, cpu: dict[str, float | None], rules: list[dict[str, Any]] | None = None,
                maintenance: list[dict[str, Any]] | None = None) -> list[str]:
    now = T0 + offset
    transitions = run_evaluation(db, rules or [RULE], CHANNELS, maintenance or [], cycle(now, cpu), {}, now)
    return [f"{t.device_id}:{t.kind}" for t in transitions]


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


RESTART_SCRIPT = """
import json, sys
from panfm.alerting.run import run_evaluation
from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceSample, DeviceStatus
db, rule, channels, steps = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
for now, value in steps:
    cyc = CycleResult(now - 1, now, (DeviceSample("fw1", now, cpu_dataplane_pct=value),), (), (),
                      (DeviceStatus("fw1", "up"),))
    for t in run_evaluation(__import__("pathlib").Path(db), [rule], channels, [], cyc, {}, now):
        print(t.kind)
"""


def test_it_neither_renotifies_nor_forgets_an_incident_across_a_clock_restart(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    assert evaluate_at(db, 0, {"fw1": 95}) == ["fw1:pending"]
    assert evaluate_at(db, 30, {"fw1": 97}) == []
    assert evaluate_at(db, 60, {"fw1": 99}) == ["fw1:firing"]
    # A new clock process continues the incident from alerts.db.
    steps = [[T0 + 90, 96.0], [T0 + 120, 85.0]]
    out = subprocess.run(
        [sys.executable, "-c", RESTART_SCRIPT, str(db), json.dumps(RULE), json.dumps(CHANNELS), json.dumps(steps)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.split() == []
    assert evaluate_at(db, 150, {"fw1": 70}) == ["fw1:resolved"]
    assert evaluate_at(db, 180, {"fw1": 70}) == []
    # One outbox row per notifying transition and enabled channel, one incident with start, end and peak.
    assert [r[0].split(":", 1)[1] for r in rows(db, "SELECT key FROM outbox ORDER BY id")] == [
        "firing:c1", "resolved:c1"]
    [incident] = history(db)
    assert (incident["started_at"], incident["ended_at"], incident["peak"], incident["duration_s"]) == (
        "2024-05-01T12:00:00Z", "2024-05-01T12:02:30Z", 99.0, 150)
    assert active_alerts(db) == []


def test_it_reports_active_alerts_in_the_contract_shape(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    evaluate_at(db, 0, {"fw1": 95, "fw2": 95, "fw3": 10})
    evaluate_at(db, 60, {"fw1": 95, "fw2": 95, "fw3": 95})
    alerts = active_alerts(db)
    assert [(a["device_id"], a["state"]) for a in alerts] == [("fw1", "firing"), ("fw2", "firing"), ("fw3", "pending")]
    first = alerts[0]
    assert {k: first[k] for k in ("rule_id", "metric", "severity", "value", "threshold", "started_at")} == {
        "rule_id": "r1", "metric": "cpu_dataplane_pct", "severity": "critical", "value": 95.0, "threshold": 90.0,
        "started_at": "2024-05-01T12:00:00Z"}
    assert isinstance(first["id"], str) and first["id"]
    assert active_alert_counts(db) == {"fw1": 1, "fw2": 1}


def test_it_holds_metric_alerts_of_an_unreachable_device(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    down_rule = {"id": "u", "name": "Down", "metric": "device_unreachable", "severity": "critical",
                 "channel_ids": ["c1"]}
    rules = [RULE, down_rule]
    evaluate_at(db, 0, {"fw1": 95}, rules)
    assert evaluate_at(db, 60, {"fw1": 95}, rules) == ["fw1:firing"]
    assert evaluate_at(db, 90, {"fw1": None}, rules) == []  # no data: not resolved
    assert evaluate_at(db, 120, {"fw1": 10}, rules) == ["fw1:resolved"]
    assert evaluate_at(db, 150, {"fw1": 95}, rules) == ["fw1:pending"]
    assert evaluate_at(db, 180, {"fw1": 95}, rules) == []
    assert evaluate_at(db, 210, {"fw1": 95}, rules) == ["fw1:firing"]
    assert evaluate_at(db, 240, {"fw1": None}, rules) == []
    now = T0 + 270
    out = run_evaluation(db, rules, CHANNELS, [], cycle(now, {"fw1": None}, down=("fw1",)), {}, now)
    assert [(t.rule_id, t.kind) for t in out] == [("u", "firing")]
    assert {a["metric"]: a["state"] for a in active_alerts(db)} == {"cpu_dataplane_pct": "firing",
                                                                    "device_unreachable": "firing"}


def test_it_records_acknowledgements_by_user(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    assert acknowledge(db, "nope", "alice", T0) is False  # no alerts.db yet
    evaluate_at(db, 0, {"fw1": 95})
    evaluate_at(db, 60, {"fw1": 95})
    alert_id = active_alerts(db)[0]["id"]
    assert acknowledge(db, alert_id, "alice", T0 + 70) is True
    assert acknowledge(db, alert_id, "alice", T0 + 80) is True  # twice by the same user: one record
    assert acknowledge(db, alert_id, "bob", T0 + 90) is True
    assert acknowledge(db, "unknown-id", "bob", T0 + 90) is False
    expected = [{"username": "alice", "at": "2024-05-01T12:01:10Z"}, {"username": "bob", "at": "2024-05-01T12:01:30Z"}]
    assert active_alerts(db)[0]["acknowledgements"] == expected
    assert history(db)[0]["acknowledgements"] == expected


def test_it_filters_history_by_device_severity_and_time(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    warn_rule = {**RULE, "id": "r2", "severity": "warning", "threshold": 50, "clear_threshold": None, "for_s": 0}
    rules = [RULE, warn_rule]
    evaluate_at(db, 0, {"fw1": 95, "fw2": 60}, rules)
    evaluate_at(db, 60, {"fw1": 95, "fw2": 10}, rules)
    evaluate_at(db, 7200, {"fw1": 10, "fw2": 10}, rules)
    assert sorted((h["device_id"], h["severity"]) for h in history(db)) == [
        ("fw1", "critical"), ("fw1", "warning"), ("fw2", "warning")]
    assert {h["device_id"] for h in history(db, device_id="fw2")} == {"fw2"}
    assert {h["severity"] for h in history(db, severity="critical")} == {"critical"}
    assert {h["device_id"] for h in history(db, since=T0 + 3600)} == {"fw1"}  # fw2's ended at +60


def test_it_mutes_the_outbox_in_maintenance(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    window = [{"id": "m", "kind": "once", "device_id": "fw1", "start": "2024-05-01T11:00:00Z",
               "end": "2024-05-01T13:00:00Z"}]
    evaluate_at(db, 0, {"fw1": 95, "fw2": 95}, maintenance=window)
    evaluate_at(db, 60, {"fw1": 95, "fw2": 95}, maintenance=window)
    assert [r[0] for r in rows(db, "SELECT alert_id FROM outbox")] == [a["id"] for a in active_alerts(db)
                                                                        if a["device_id"] == "fw2"]
    assert active_alert_counts(db) == {"fw1": 1, "fw2": 1}  # state is tracked anyway


def test_it_skips_a_broken_rule_document_and_evaluates_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    broken = {"id": "bad", "name": "x", "metric": "nope"}
    assert evaluate_at(db, 0, {"fw1": 95}, [broken, {**RULE, "for_s": 0}]) == ["fw1:firing"]


def test_it_answers_empty_when_the_clock_has_not_created_alerts_db(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    assert (active_alerts(db), active_alert_counts(db), history(db)) == ([], {}, [])
    assert cleanup(db, T0, 365) == {"incidents": 0, "outbox": 0}
    assert not db.exists()


def test_it_drops_old_resolved_incidents_and_finished_outbox_rows(tmp_path: Path) -> None:
    db = tmp_path / "alerts.db"
    rule = {**RULE, "for_s": 0}
    evaluate_at(db, 0, {"fw1": 95, "fw2": 95}, [rule])
    evaluate_at(db, 30, {"fw1": 10, "fw2": 95}, [rule])
    conn = sqlite3.connect(db)
    conn.execute("UPDATE outbox SET status = 'sent'")
    conn.commit()
    conn.close()
    assert cleanup(db, T0 + 40 * 86400, history_days=30, outbox_days=30) == {"incidents": 1, "outbox": 3}
    assert [h["device_id"] for h in history(db)] == ["fw2"]  # still open: kept


def test_it_never_lets_the_web_reader_create_the_database(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "alerts.db"
    assert active_alerts(db) == [] and not db.parent.exists()
