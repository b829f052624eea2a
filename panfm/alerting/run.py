"""One alert evaluation: load the states, evaluate (pure), save the transitions, in one transaction.

The store offers the transaction (`throughput_storage.alerts_store.evaluation`); this module
orchestrates, so storage never calls the alerting logic and the logic never holds a cursor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from panfm.alerting.evaluate import evaluate, observe
from panfm.alerting.rules import rule_from_doc, window_from_doc
from panfm.models import CycleResult, MaintenanceWindow, Rule, Transition
from throughput_storage import Backend, alerts_store

log = logging.getLogger("panfm.alerting")


def _parse_all(docs: Sequence[Mapping[str, Any]], parse: Any, what: str) -> list[Any]:
    out = []
    for doc in docs:
        try:
            out.append(parse(doc))
        except ValueError as exc:  # one broken document must not stop every other rule
            log.warning("[ALERTS] skipping %s: %s", what, exc)
    return out


def run_evaluation(
    alerts_db: Path | Backend,
    rules: Sequence[Mapping[str, Any]],
    channels: Sequence[Mapping[str, Any]],
    maintenance: Sequence[Mapping[str, Any]],
    cycle: CycleResult,
    inventory: Mapping[str, Mapping[str, Any]],
    now: float,
    *,
    fingerprints: Mapping[str, str] | None = None,
    device_names: Mapping[str, str] | None = None,
    device_enabled: Mapping[str, bool] | None = None,
) -> list[Transition]:
    """Evaluate stored rule documents against one cycle; commit states, incidents and outbox rows together.

    `device_enabled` maps every configured device id to its enabled flag: the alerts of a device
    missing from it (removed) or disabled are closed (see `alerts.evaluate`).
    """
    parsed: list[Rule] = _parse_all(rules, rule_from_doc, "alert rule")
    windows: list[MaintenanceWindow] = _parse_all(maintenance, window_from_doc, "maintenance window")
    channel_ids = {str(c["id"]) for c in channels if c.get("enabled", True) and c.get("id")}
    obs = observe(cycle, inventory, now, fingerprints)
    with alerts_store.evaluation(alerts_db) as txn:  # read and write under one lock: no transition lost between
        ev = evaluate(parsed, obs, txn.load_states(), now, windows, device_enabled)
        txn.save(ev.states, ev.transitions, {r.id: r for r in parsed}, channel_ids, now, device_names or {})
    for t in ev.transitions:
        if t.kind in ("firing", "resolved"):
            log.info("[ALERTS] %s %s on %s%s%s", t.kind, t.metric or t.rule_id, t.device_id,
                     f" ({t.series})" if t.series else "", f": {t.detail}" if t.kind == "resolved" and t.detail
                     else "")
    return list(ev.transitions)
