"""Server-rendered pages of the dashboard: a Jinja shell per page plus one small JS module.

The pages hold no firewall data: each page's module fetches the JSON API (`/api/...`) and
fills the DOM with `textContent`, so a string from a firewall is never parsed as markup.
The shells carry only what the script needs to start: the CSRF token (a `<meta>`), the
device id of a firewall page, and a sanitized `next` target for the login page.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from flask_wtf.csrf import generate_csrf

from panfm.ops import demo_marker
from panfm.timefmt import iso_s
from panfm.web.context import WebContext
from panfm.web.identity import current_user
from throughput_storage import StorageUnavailable

bp = Blueprint("pages", __name__, template_folder="templates")

RANGES = ("1h", "6h", "24h", "7d", "30d", "90d")
THEMES = ("auto", "light", "dark")
# Ids are opaque (UUIDs today); anything else in the URL is not a device we could show.
_DEVICE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def safe_next(target: str | None) -> str:
    """Return `target` when it is a local path, else "/" (an open redirect is a phishing aid)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 0x20 for ch in target):
        return "/"
    return target


def _context() -> WebContext | None:
    """The app's WebContext (built by create_app), or None in a bare test app."""
    context = current_app.extensions.get("panfm")
    return context if isinstance(context, WebContext) else None


def _settings_value(name: str, default: Any) -> Any:
    """Read one setting as it is now (settings.json may have changed since start)."""
    context = _context()
    if context is None:
        return default
    return getattr(context.current_settings(), name, default)


def _render(template: str, *, page: str, script: str | None, **context: Any) -> str:
    """Render one page shell with what every page needs (CSRF token, theme, refresh interval)."""
    theme = _settings_value("theme", "auto")
    user = current_user()
    return render_template(
        template,
        page=page,
        script=script,
        csrf_token_value=generate_csrf(),
        theme=theme if theme in THEMES else "auto",
        refresh_interval=int(_settings_value("refresh_interval", 30)),
        # The page hides what this role cannot do (the API refuses it anyway: 403).
        role=user.role if user else "",
        username=user.username if user else "",
        **context,
    )


def _demo_data() -> bool:
    """Whether this data folder holds the demo's backfilled (simulated) history."""
    context = _context()
    return context is not None and demo_marker(context.data_dir) is not None


@bp.get("/login")
def login() -> str:
    """Show the login form."""
    return _render("login.html", page="login", script="login.js", next_url=safe_next(request.args.get("next")))


@bp.get("/change-password")
def change_password() -> str:
    """Show the password change form (forced after the first login with the initial password)."""
    return _render("change_password.html", page="change-password", script="change_password.js")


@bp.get("/")
def overview() -> str:
    """Show every firewall with its live values and a 1-hour sparkline."""
    return _render("overview.html", page="overview", script="overview.js", demo_data=_demo_data())


@bp.get("/firewall/<device_id>")
def firewall(device_id: str) -> str:
    """Show one firewall: live values, charts over a range, interfaces and system info."""
    if not _DEVICE_ID.fullmatch(device_id):
        abort(404)
    context = _context()
    inventory: dict[str, Any] | None = None
    if context is not None:
        if context.devices.get(device_id) is None:
            abort(404)
        inventory = _inventory(context, device_id)
    return _render(
        "firewall.html",
        page="firewall",
        script="firewall.js",
        device_id=device_id,
        ranges=RANGES,
        demo_data=_demo_data(),
        inventory=inventory_view(inventory, now=context.clock() if context else None),
    )


def _inventory(context: WebContext, device_id: str) -> dict[str, Any] | None:
    """Read the inventory job's inventory document of one device; None before it ran or without a database."""
    try:
        with context.reader() as reader:
            return reader.inventory(device_id) if reader else None
    except StorageUnavailable:
        return None


def inventory_view(doc: dict[str, Any] | None, now: float | None) -> dict[str, Any] | None:
    """Shape an inventory document for the template (Jinja escapes every string it prints)."""
    if not doc:
        return None
    system: dict[str, Any] = doc["system"] if isinstance(doc.get("system"), dict) else {}
    content = [
        (label, system.get(key))
        for label, key in (
            ("Applications and threats", "app_version"),
            ("Threat content", "threat_version"),
            ("Antivirus", "av_version"),
            ("WildFire", "wildfire_version"),
            ("URL filtering", "url_filtering_version"),
        )
    ]
    today = datetime.fromtimestamp(now if now is not None else 0, UTC).date()
    licenses = []
    for lic in doc.get("licenses") or []:
        if not isinstance(lic, dict):
            continue
        expires = _date(lic.get("expires"))
        days_left = (expires - today).days if expires and now is not None else None
        if lic.get("expired") or (days_left is not None and days_left < 0):
            state = "expired"
        elif days_left is not None and days_left <= 30:
            state = f"expires in {days_left} days"
        else:
            state = "valid"
        licenses.append(
            {
                "feature": lic.get("feature"),
                "description": lic.get("description"),
                "expires": expires.isoformat() if expires else "never",
                "state": state,
                "class": "down" if state == "expired" else ("stale" if state != "valid" else ""),
            }
        )
    ha = doc.get("ha") if isinstance(doc.get("ha"), dict) else {}
    threats = doc.get("threats") if isinstance(doc.get("threats"), dict) else None
    collected = doc.get("collected_at")
    return {
        "content": content,
        "licenses": licenses,
        "ha": ha,
        "gp_users": doc.get("gp_users"),
        "threats": threats,
        "blocked_urls": doc.get("blocked_urls"),
        "window": window_label(doc.get("window_s")),
        "errors": doc.get("errors") if isinstance(doc.get("errors"), dict) else {},
        "collected_at": (
            iso_s(float(collected))
            if isinstance(collected, int | float)
            else None
        ),
    }


def window_label(seconds: Any) -> str | None:
    """Say a counting window as people do: "last 5 minutes", "last hour", "last 36 hours"."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        return None
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"last {round(seconds)} seconds"
    if minutes == 1:
        return "last minute"
    if minutes < 60 or minutes % 60:
        return f"last {minutes} minutes" if minutes < 120 else f"last {seconds / 3600:.1f} hours"
    hours = minutes // 60
    if hours == 1:
        return "last hour"
    if hours % 24 == 0 and hours > 24:
        return f"last {hours // 24} days"
    return f"last {hours} hours"


def _date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@bp.get("/devices")
def devices() -> str:
    """Show the device list with add, test connection, edit, disable and delete."""
    return _render("devices.html", page="devices", script="devices.js")


@bp.get("/settings")
def settings() -> str:
    """Show the editable settings and the password form."""
    return _render("settings.html", page="settings", script="settings.js")


@bp.get("/connected-devices")
def connected_devices() -> str:
    """Show who is on the network behind the firewalls (ARP, DHCP, User-ID), with the admin's notes."""
    return _render("connected_devices.html", page="connected-devices", script="connected_devices.js")


@bp.get("/applications")
def applications() -> str:
    """Show a firewall's top applications and categories (ACC reports stored by the clock)."""
    return _render("applications.html", page="applications", script="applications.js")


@bp.get("/threats")
def threats() -> str:
    """Show a firewall's threat and blocked-URL tiles, the latest events and the top names."""
    return _render("threats.html", page="threats", script="threats.js")


@bp.get("/logs")
def logs() -> str:
    """Show a firewall's system and traffic log entries fetched by the clock."""
    return _render("logs.html", page="logs", script="logs.js")


@bp.get("/clock")
def clock() -> str:
    """Show the clock's health and job statistics."""
    return _render("clock.html", page="clock", script="clock.js")


@bp.get("/alerts")
def alerts() -> str:
    """Show active alerts (filled by the alerts API when it is present)."""
    return _render("alerts.html", page="alerts", script="alerts.js")


@bp.get("/users")
def users() -> str:
    """Show the users (admins: add, change role, disable, reset password, delete)."""
    return _render("users.html", page="users", script="users.js")


@bp.get("/audit")
def audit() -> str:
    """Show the audit trail, newest first (admins)."""
    return _render("audit.html", page="audit", script="audit.js")


@bp.get("/tokens")
def tokens() -> str:
    """Show the user's API tokens (admins: everyone's), create and revoke them."""
    return _render("tokens.html", page="tokens", script="tokens.js")


@bp.get("/api-docs")
def api_docs() -> str:
    """Show the API reference, rendered from /api/openapi.json by a local script (no CDN)."""
    return _render("api_docs.html", page="api-docs", script="api_docs.js")
