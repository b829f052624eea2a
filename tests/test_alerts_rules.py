"""Rule, channel and maintenance validation; templates; channel secrets at rest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import SecretBox
from panfm.alerting.channels import channel_to_stored, mask_channel, validate_channel
from panfm.alerting.rules import in_maintenance, rule_from_doc, validate_maintenance, validate_rule, window_from_doc
from panfm.alerting.templates import TEMPLATES, apply_template
from panfm.storage.config_store import DocTable


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


GOOD_RULE = {"name": "CPU", "device_id": None, "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 90,
             "clear_threshold": 80, "for_s": 300, "severity": "warning", "repeat_s": 0, "channel_ids": ["c1"],
             "enabled": True}


def test_it_accepts_a_complete_rule_and_builds_the_model() -> None:
    clean, errors = validate_rule(GOOD_RULE)
    assert errors == {}
    rule = rule_from_doc({**clean, "id": "r1"})
    assert (rule.metric, rule.operator, rule.threshold, rule.clear_threshold, rule.for_s, rule.channel_ids) == (
        "cpu_dataplane_pct", ">", 90.0, 80.0, 300, ("c1",))


def test_it_accepts_an_event_rule_without_operator_or_threshold() -> None:
    clean, errors = validate_rule({"name": "Down", "metric": "device_unreachable", "severity": "critical"})
    assert errors == {}
    assert "operator" not in clean and clean["for_s"] == 0 and clean["channel_ids"] == []


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"metric": "cpu"}, "metric"),
    ({"operator": "=="}, "operator"),
    ({"threshold": None}, "threshold"),
    ({"threshold": "90"}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"clear_threshold": 95}, "clear_threshold"),
    ({"for_s": -1}, "for_s"),
    ({"for_s": 1.5}, "for_s"),
    ({"repeat_s": 10}, "repeat_s"),
    ({"severity": "fatal"}, "severity"),
    ({"channel_ids": "c1"}, "channel_ids"),
    ({"enabled": "yes"}, "enabled"),
    ({"device_id": "../etc"}, "device_id"),
    ({"interface": "ethernet1/1"}, "interface"),
])
def test_it_names_the_bad_field_of_a_rule(change: dict[str, Any], field: str) -> None:
    _clean, errors = validate_rule({**GOOD_RULE, **change})
    assert list(errors) == [field]
    assert errors[field]


def test_it_rejects_a_threshold_on_an_event_rule() -> None:
    _clean, errors = validate_rule({"name": "x", "metric": "ha_state_changed", "severity": "info", "threshold": 1})
    assert errors == {"threshold": "event metrics take no threshold"}


def test_it_refuses_to_build_a_model_from_an_invalid_document() -> None:
    with pytest.raises(ValueError, match="metric"):
        rule_from_doc({**GOOD_RULE, "id": "r1", "metric": "nope"})


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_it_applies_every_template_as_valid_rules(name: str) -> None:
    rules = apply_template(name, "fw1", ["c1"])
    assert rules and all(r["device_id"] == "fw1" and r["channel_ids"] == ["c1"] for r in rules)
    assert all(validate_rule(r)[1] == {} for r in rules)


def test_it_knows_the_four_template_sets() -> None:
    assert set(TEMPLATES) == {"system-health", "capacity", "security", "link-health"}
    with pytest.raises(KeyError):
        apply_template("nope", None)


def test_it_stores_a_channel_url_encrypted_and_shows_it_masked(tmp_path: Path) -> None:
    box = SecretBox.for_data_dir(tmp_path)
    url = "json://hook-user:S3cretPass@127.0.0.1:8080/path/T0KEN123"
    clean, errors = validate_channel({"name": "Ops hook", "url": url})
    assert errors == {}
    stored = channel_to_stored(clean, box)
    table = DocTable(tmp_path, "alert_channels", lambda: 0.0)
    channel_id = table.put(stored)
    assert url not in (tmp_path / "config.db").read_bytes().decode("latin-1")
    saved = table.get(channel_id)
    assert saved is not None and box.decrypt(saved["url_enc"]) == url
    shown = mask_channel(saved)
    assert shown["id"] == channel_id and shown["name"] == "Ops hook" and shown["enabled"] is True
    assert "S3cretPass" not in shown["url"] and "T0KEN123" not in shown["url"] and shown["url"].startswith("json://")


def test_it_keeps_the_stored_url_when_an_edit_sends_none(tmp_path: Path) -> None:
    box = SecretBox.for_data_dir(tmp_path)
    old = channel_to_stored(validate_channel({"name": "a", "url": "json://127.0.0.1/x"})[0], box)
    clean, errors = validate_channel({"name": "renamed", "url": mask_channel(old)["url"]}, url_required=False)
    assert errors == {}
    new = channel_to_stored(clean, box, existing=old)
    assert new["name"] == "renamed" and new["url_enc"] == old["url_enc"]


@pytest.mark.parametrize(("doc", "field"), [
    ({"name": "x"}, "url"),
    ({"name": "x", "url": "not a url"}, "url"),
    ({"name": "x", "url": "nosuchscheme://host/"}, "url"),
    ({"url": "json://127.0.0.1/"}, "name"),
])
def test_it_names_the_bad_field_of_a_channel(doc: dict[str, Any], field: str) -> None:
    assert list(validate_channel(doc)[1]) == [field]


def test_it_validates_one_off_and_weekly_windows() -> None:
    once = {"kind": "once", "start": "2024-05-01T22:00:00Z", "end": "2024-05-02T02:00:00Z"}
    _clean, errors = validate_maintenance(once)
    assert errors == {}
    weekly, errors = validate_maintenance({"kind": "weekly", "device_id": "fw1", "weekdays": ["sun", "sat"],
                                           "start_time": "23:00", "duration_s": 7200})
    assert errors == {} and weekly["weekdays"] == ["sat", "sun"]
    _c, errors = validate_maintenance({"kind": "once", "start": "2024-05-01T22:00:00Z", "end": "2024-05-01T21:00:00Z"})
    assert list(errors) == ["end"]
    _c, errors = validate_maintenance({"kind": "weekly", "weekdays": ["funday"], "start_time": "25:00"})
    assert set(errors) == {"weekdays", "start_time", "duration_s"}
    assert list(validate_maintenance({"kind": "daily"})[1]) == ["kind"]
    assert "start" in validate_maintenance({**once, "start": "2024-05-01 22:00"})[1]  # no zone


def test_it_opens_windows_at_the_right_times() -> None:
    once = window_from_doc({"id": "a", "kind": "once", "start": "2024-05-01T22:00:00Z", "end": "2024-05-02T02:00:00Z"})
    # Saturday 23:00 for 2 h: covers Sunday 00:30 (crossing midnight), not Saturday 22:59.
    weekly = window_from_doc({"id": "b", "kind": "weekly", "device_id": "fw1", "weekdays": ["sat"],
                              "start_time": "23:00", "duration_s": 7200})
    assert in_maintenance([once], "fw9", ts("2024-05-01T23:00:00Z"))
    assert not in_maintenance([once], "fw9", ts("2024-05-02T02:00:00Z"))
    assert in_maintenance([weekly], "fw1", ts("2024-05-05T00:30:00Z"))  # 2024-05-04 is a Saturday
    assert not in_maintenance([weekly], "fw1", ts("2024-05-04T22:59:00Z"))
    assert not in_maintenance([weekly], "fw1", ts("2024-05-05T01:00:00Z"))
    assert not in_maintenance([weekly], "fw2", ts("2024-05-05T00:30:00Z"))
    assert in_maintenance([weekly], "fw1", ts("2024-05-11T23:30:00Z"))  # next week too


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_it_lets_every_template_rule_resolve_on_a_healthy_value(name: str) -> None:
    # Every template metric is >= 0; a clear threshold of 0 on a ">" rule would fire forever.
    for rule in apply_template(name, None):
        if rule.get("operator") in (">", ">=") and "clear_threshold" in rule:
            assert rule["clear_threshold"] > 0, rule["name"]
