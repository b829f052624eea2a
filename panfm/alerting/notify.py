"""Send the notification outbox of alerts.db through Apprise, with retries and backoff.

`send_pending` is the clock's separate sending step: it takes due outbox rows, delivers each
one outside any transaction, then marks it sent (or schedules a retry with exponential
backoff, or gives up after `max_attempts`). A row marked sent is never sent again, across
restarts too; the one window left is a crash between the receiver accepting a message and
the row being marked, which sends that message once more on restart (at-least-once there,
never lost). Transport errors are stored and returned with every secret of the URL removed.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import panfm.redact as logsafe
from panfm.alerting.channels import WEBHOOK_SCHEMES, load_apprise, scheme_refusal
from panfm.models import AddressPolicy
from panfm.timefmt import iso_s as iso
from throughput_storage import Backend, alerts_store

log = logging.getLogger("panfm.alerting")

BACKOFF_BASE_S = 30
BACKOFF_MAX_S = 3600


class Decryptor(Protocol):
    def decrypt(self, token: str) -> str: ...


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{d}d"] if d else []
    parts += [f"{h}h"] if h or d else []
    return " ".join([*parts, f"{m}m", f"{s}s"]) if parts or m else f"{s}s"


def _num(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def format_message(p: Mapping[str, Any], base_url: str) -> tuple[str, str]:
    """Title and body of one notification: device, metric, value, threshold, start, duration, link."""
    kind = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}.get(p["kind"], p["kind"].upper())
    device = p.get("device_name") or p["device_id"]
    what = p["metric"] + (f" {p['series']}" if p.get("series") else "")
    title = f"[{kind}] {p['severity']}: {p['rule_name']} on {device}"
    threshold = "n/a" if p.get("threshold") is None else f"{p.get('operator') or ''} {_num(p['threshold'])}".strip()
    lines = [
        f"Rule: {p['rule_name']} ({p['severity']})",
        f"Device: {device} ({p['device_id']})",
        f"Metric: {what}",
        f"Value: {_num(p.get('value'))}",
        f"Threshold: {threshold}",
    ]
    if p.get("peak") is not None and p.get("threshold") is not None:
        lines.append(f"Peak: {_num(p['peak'])}")
    if p.get("detail"):
        lines.append(f"Detail: {p['detail']}")
    lines += [
        f"Started: {iso(p['started_at'])}",
        f"Duration: {_duration(p['at'] - p['started_at'])}" + (" (ended)" if p["kind"] == "resolved" else " so far"),
        f"Firewall: {base_url.rstrip('/')}/firewall/{p['device_id']}",
    ]
    return title, "\n".join(lines)


# Schemes whose host is an address, not a token (tgram://TOKEN, slack://T1/B2/C3 put secrets there).
_PUBLIC_HOST_SCHEMES = ("json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos")


def _secrets_of(url: str) -> list[str]:
    """Every piece of an Apprise URL that may be secret: user, password, tokens in the path, query or fragment."""
    scheme, _, rest = url.partition("://")
    pieces = {unquote(p) for p in re.split(r"[/?&=#:@,]+", rest)}
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # a malformed address: keep every piece
        parts, host = None, ""
    # Unquoted, not parse_qsl: it turns `+` into a space, and `+X-Token=` names a json:// header.
    pairs = [q.partition("=") for q in parts.query.split("&")] if parts is not None else []
    names, values = {unquote(k) for k, _, _ in pairs}, {unquote(v) for _, _, v in pairs}
    if scheme.lower() in _PUBLIC_HOST_SCHEMES:
        pieces.discard(host)
    # Option names (`format`, `+X-Token`) are not secret; masking them would garble every
    # log line that mentions them while the channel delivers. Their values are kept.
    pieces -= names - values
    found = {url, rest, *pieces, *values}
    return sorted((p for p in found if len(p) >= 4 and not p.isdigit()), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """Remove every secret part of `url` (and any recognised secret) from an error text."""
    return logsafe.without(text, _secrets_of(url), mask="••••")


class _Capture(logging.Handler):
    """Keep the warnings Apprise logs in this thread while one message is sent (the transport's error)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()  # the web may test two channels at once
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def _capture() -> Iterator[_Capture]:
    logger = logging.getLogger("apprise")
    handler = _Capture()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def address_refusal(url: str, policy: AddressPolicy) -> str | None:
    """Why a webhook URL's host may not be sent to (resolved now), or None; other schemes pass.

    Apprise resolves the name again when it sends, so a name that changes its answer in
    between (DNS rebinding) is not stopped here; an address literal always is.
    """
    if url.partition("://")[0].strip().lower() not in WEBHOOK_SCHEMES:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return "not a valid URL"
    if not host:
        return None
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None  # does not resolve: the send fails on its own, and says so
    for *_, sockaddr in infos:
        if why := policy.refusal(str(sockaddr[0]), device=False):
            return f"{host}: {why}"
    return None


def deliver(
    url: str, title: str, body: str, notify_type: str = "info", policy: AddressPolicy | None = None
) -> str | None:
    """Send one message to one Apprise URL; None on success, else the transport's error without secrets."""
    # Checked at every send too: a channel stored before the rules, or a name that moved since.
    refused = scheme_refusal(url) or address_refusal(url, policy or AddressPolicy())
    if refused:
        return redact(f"refused: {refused}", url)[:500]
    # Apprise and urllib3 log the full URL (tokens in its path, header values) at DEBUG, from
    # instantiate() on: every record logged meanwhile is masked with this channel's secrets.
    with logsafe.hiding(_secrets_of(url)):
        # The plugin itself, not Apprise(): it sends in this thread, so its log lines are this send's.
        plugin = load_apprise().Apprise.instantiate(url)
        if plugin is None:
            return "the channel URL is not one Apprise can send to"
        with _capture() as captured:
            try:
                ok = plugin.notify(title=title, body=body, notify_type=notify_type)
            except Exception as exc:  # a plugin bug must not stop the outbox
                return redact(f"{type(exc).__name__}: {exc}", url)[:500]
    if ok:
        return None
    detail = "; ".join(dict.fromkeys(captured.messages)) or "the transport reported a failure"
    return redact(detail, url)[:500]


def _notify_type(p: Mapping[str, Any]) -> str:
    if p["kind"] == "resolved":
        return "success"
    return {"critical": "failure", "warning": "warning"}.get(p["severity"], "info")


def send_pending(
    alerts_db: Path | Backend,
    channels: Sequence[Mapping[str, Any]],
    box: Decryptor,
    now: float,
    base_url: str,
    *,
    max_attempts: int = 10,
    limit: int = 100,
    policy: AddressPolicy | None = None,
) -> dict[str, int]:
    """Deliver due outbox rows; return counts of sent, retrying and given-up ("dead") rows."""
    counts = {"sent": 0, "retrying": 0, "dead": 0}
    if not alerts_store.exists(alerts_db):
        return counts
    by_id = {str(c.get("id")): c for c in channels}
    with alerts_store.outbox(alerts_db) as box_rows:
        for row in box_rows.due(now, limit):
            channel = by_id.get(row.channel_id)
            error: str | None
            if channel is None or not channel.get("enabled", True) or not channel.get("url_enc"):
                error, final = "the channel was removed or disabled", True
            else:
                title, body = format_message(row.payload, base_url)
                error = deliver(box.decrypt(channel["url_enc"]), title, body, _notify_type(row.payload), policy)
                final = row.attempts + 1 >= max_attempts
            if error is None:
                box_rows.sent(row.id, now)
                counts["sent"] += 1
                continue
            delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** row.attempts)
            box_rows.failed(row.id, dead=final, next_attempt_at=now + delay, error=error)
            counts["dead" if final else "retrying"] += 1
            log.warning("[ALERTS] notification %s to channel %s failed: %s", row.id, row.channel_id, error)
    return counts


def send_test(
    channel: Mapping[str, Any], box: Decryptor, base_url: str, policy: AddressPolicy | None = None
) -> tuple[bool, str | None]:
    """Send a test message through one stored channel; (True, None) or (False, error without secrets)."""
    if not channel.get("url_enc"):
        return False, "the channel has no URL"
    title = f"PANfm test notification: {channel.get('name', '')}"
    body = f"This channel works. Alerts will link to {base_url.rstrip('/')}/alerts"
    error = deliver(box.decrypt(channel["url_enc"]), title, body, policy=policy)
    return error is None, error
