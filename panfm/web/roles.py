"""Who may call what: the roles and the one access table of every route.

Every (URL rule, method) of the app has a row here; the login gate (panfm/web/auth.py) looks
the request up and refuses, with 403 naming the role that would allow it, what the caller's
role does not reach. A route without a row is refused to everybody (and logged), and the
role-matrix test (tests/test_roles_matrix.py) fails on it: adding a route means adding its row.

Levels: `public` (no login), `viewer` (any logged-in user, read-only), `operator`
(acknowledge alerts; edit alert rules, channels and maintenance windows) and `admin`
(everything: devices, users, settings, the audit trail). `SESSION_ONLY` rows refuse API
tokens: a token cannot change a password or mint or revoke tokens, so a leaked token cannot
make itself permanent.
"""

from __future__ import annotations

ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
PUBLIC = "public"

_V, _O, _A = "viewer", "operator", "admin"

# (rule, method) -> the lowest role allowed, or PUBLIC. HEAD and OPTIONS follow GET.
ACCESS: dict[tuple[str, str], str] = {
    # public: the login itself, liveness, and /metrics (its own access rule: metrics.py)
    ("/login", "GET"): PUBLIC,
    ("/api/login", "POST"): PUBLIC,
    ("/api/logout", "POST"): PUBLIC,
    ("/api/version", "GET"): PUBLIC,
    ("/api/health", "GET"): PUBLIC,
    ("/metrics", "GET"): PUBLIC,
    ("/static/<path:filename>", "GET"): PUBLIC,
    # pages
    ("/", "GET"): _V,
    ("/firewall/<device_id>", "GET"): _V,
    ("/devices", "GET"): _V,
    ("/alerts", "GET"): _V,
    ("/settings", "GET"): _V,
    ("/clock", "GET"): _V,
    ("/connected-devices", "GET"): _V,
    ("/applications", "GET"): _V,
    ("/threats", "GET"): _V,
    ("/logs", "GET"): _V,
    ("/change-password", "GET"): _V,
    ("/tokens", "GET"): _V,
    ("/api-docs", "GET"): _V,
    ("/users", "GET"): _A,
    ("/audit", "GET"): _A,
    # own account
    ("/api/change-password", "POST"): _V,
    ("/api/tokens", "GET"): _V,
    ("/api/tokens", "POST"): _V,
    ("/api/tokens/<token_id>", "DELETE"): _V,
    ("/api/openapi.json", "GET"): _V,
    # data, read-only
    ("/api/overview", "GET"): _V,
    ("/api/overview/history", "GET"): _V,
    ("/api/connected-devices", "GET"): _V,
    ("/api/applications", "GET"): _V,
    ("/api/threats", "GET"): _V,
    ("/api/logs", "GET"): _V,
    ("/api/network/summary", "GET"): _V,
    ("/api/clock", "GET"): _V,
    ("/api/throughput", "GET"): _V,
    ("/api/throughput/history", "GET"): _V,
    ("/api/throughput/history/export", "GET"): _V,
    ("/api/interfaces", "GET"): _V,
    ("/api/interfaces/history", "GET"): _V,
    ("/api/devices", "GET"): _V,
    ("/api/devices/<device_id>", "GET"): _V,
    ("/api/settings", "GET"): _V,
    ("/api/alerts/active", "GET"): _V,
    ("/api/alerts/history", "GET"): _V,
    ("/api/alerts/rules", "GET"): _V,
    ("/api/alerts/channels", "GET"): _V,
    ("/api/alerts/maintenance", "GET"): _V,
    # operator: alert handling
    ("/api/alerts/<alert_id>/acknowledge", "POST"): _O,
    ("/api/alerts/rules", "POST"): _O,
    ("/api/alerts/rules/<rule_id>", "PUT"): _O,
    ("/api/alerts/rules/<rule_id>", "DELETE"): _O,
    ("/api/alerts/rules/apply-template", "POST"): _O,
    ("/api/alerts/channels", "POST"): _O,
    ("/api/alerts/channels/<channel_id>", "PUT"): _O,
    ("/api/alerts/channels/<channel_id>", "DELETE"): _O,
    ("/api/alerts/channels/<channel_id>/test", "POST"): _O,
    ("/api/alerts/maintenance", "POST"): _O,
    ("/api/alerts/maintenance/<window_id>", "DELETE"): _O,
    # the admin's names, comments, tags and locations of connected devices: annotations, not firewall config
    ("/api/connected-devices/metadata/<mac>", "PUT"): _O,
    # admin: devices, settings, users, audit
    ("/api/devices", "POST"): _A,
    ("/api/devices/test", "POST"): _A,
    ("/api/devices/<device_id>", "PUT"): _A,
    ("/api/devices/<device_id>", "DELETE"): _A,
    ("/api/settings", "PUT"): _A,
    ("/api/users", "GET"): _A,
    ("/api/users", "POST"): _A,
    ("/api/users/<user_id>", "PUT"): _A,
    ("/api/users/<user_id>", "DELETE"): _A,
    ("/api/audit", "GET"): _A,
}

# Rows a bearer token may not use (a session is required).
SESSION_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("/api/change-password", "POST"),
    ("/change-password", "GET"),
    ("/api/tokens", "POST"),
    ("/api/tokens/<token_id>", "DELETE"),
})

# Reachable while the initial (or an admin-reset) password must still be changed.
CHANGE_PASSWORD_RULES = frozenset({"/change-password", "/api/change-password"})


def required_role(rule: str, method: str) -> str | None:
    """The lowest role (or PUBLIC) for a rule and method; None when the table has no row.

    HEAD is GET's; OPTIONS (which only lists the methods) needs the lowest role of the rule's rows.
    """
    if method == "OPTIONS":
        levels = [needed for (r, _), needed in ACCESS.items() if r == rule]
        return min(levels, key=lambda n: -1 if n == PUBLIC else RANK[n]) if levels else None
    return ACCESS.get((rule, "GET" if method == "HEAD" else method))


def allows(role: str, needed: str) -> bool:
    """Whether `role` reaches `needed` (PUBLIC: anyone)."""
    return needed == PUBLIC or RANK.get(role, -1) >= RANK[needed]


def session_only(rule: str, method: str) -> bool:
    return (rule, method) in SESSION_ONLY
