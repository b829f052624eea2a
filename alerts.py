"""Alerts: rule evaluation, alert states, the notification outbox.

The front door of the alerting area (the work lives in `panfm/alerting/`). After each committed
collection cycle the clock calls `evaluate_alerts`, which loads the states, evaluates the rules
(pure: `panfm/alerting/evaluate.py`) and saves the transitions with their outbox rows in one
transaction; `notify_once` sends what the outbox holds, with retries. Alerts are
edge-triggered: pending -> firing -> resolved, one notification per transition. The web uses
the validators to check what people edit and `send_test` for a channel's test button.
"""

from panfm.alerting.channels import channel_to_stored, mask_channel, validate_channel
from panfm.alerting.evaluate import alert_inputs
from panfm.alerting.jobs import evaluate_alerts, notify_once
from panfm.alerting.notify import address_refusal, send_test
from panfm.alerting.rules import SEVERITIES, validate_maintenance, validate_rule
from panfm.alerting.run import replay_evaluations
from panfm.alerting.templates import TEMPLATES, apply_template

__all__ = [
    "SEVERITIES",
    "TEMPLATES",
    "address_refusal",
    "alert_inputs",
    "apply_template",
    "channel_to_stored",
    "evaluate_alerts",
    "mask_channel",
    "notify_once",
    "replay_evaluations",
    "send_test",
    "validate_channel",
    "validate_maintenance",
    "validate_rule",
]
