"""Scan every route of `app.url_map`: headers on every answer, CSRF bound to the session, sessions, throttle, bandit.

tests/test_web_auth.py already proves the login gate and a missing CSRF token per route; this
file adds what those do not: every answer (errors, static files, each method) carries the
security headers, a token from another session is refused everywhere, a planted or replayed
cookie gets nothing, and the product code has no bandit finding.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require
from flask import Flask
from flask.testing import FlaskClient

import config
from app import create_app

ROOT = Path(__file__).resolve().parent.parent
INITIAL = "initial-password-1"
NEW = "a-much-better-password"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC = {"/login", "/api/login", "/api/logout", "/api/version", "/api/health"}
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def make_app(data_dir: Path) -> Flask:
    settings = config.load_settings(env={}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL})
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def login(client: FlaskClient, password: str = NEW, addr: str = "127.0.0.1"):
    return client.post("/api/login", json={"username": "admin", "password": password},
                       environ_base={"REMOTE_ADDR": addr})


def concrete(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "app.css" if m.group(1) == "filename" else "some-id", rule)


def routes(app: Flask):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def assert_hardened(r, where: object) -> None:
    csp = r.headers.get("Content-Security-Policy", "")
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == "default-src 'self'", (where, csp)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (where, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "*" not in csp, (where, csp)
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (where, name, r.headers.get(name))
    if r.request.path.startswith("/api/"):
        assert r.headers.get("Cache-Control") == "no-store", where


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """An app with a changed admin password; a logged-in client with its token."""
    app = make_app(tmp_path_factory.mktemp("data"))
    client = app.test_client()
    token = login(client, INITIAL).get_json()["csrf_token"]
    r = client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 200
    return app, client, token


def test_it_sends_the_security_headers_on_every_route_and_method_anonymous_or_not(site) -> None:
    app, client, token = site
    anonymous = app.test_client()
    checked = 0
    for rule, method in routes(app):
        if rule.rule in ("/api/logout", "/api/login"):
            continue  # would end the logged-in session; covered below on their own clients
        for who, c, headers in (("anonymous", anonymous, {}), ("user", client, {"X-CSRFToken": token})):
            if who == "user" and method in MUTATING:
                headers = {"X-CSRFToken": "forged"}  # a refusal is an answer too, and changes nothing
            r = c.open(concrete(rule.rule), method=method, json={}, headers=headers)
            assert_hardened(r, (who, method, rule.rule, r.status_code))
            r.close()
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/api/no-such-thing", {}, 404),
        ("DELETE", "/api/version", {}, 405),
        ("POST", "/api/login", {"data": "x" * (1024 * 1024 + 1), "content_type": "application/json"}, 413),
        ("POST", "/api/login", {"data": "x", "content_type": "text/plain"}, 415),
        ("GET", "/static/css/app.css", {}, 200),
        ("GET", "/static/no-such-file.js", {}, 404),
        ("GET", "/static/../config.py", {}, 404),
        ("POST", "/api/login", {"json": {"username": "admin", "password": "wrong-password"}}, 401),
    ],
)
def test_it_sends_the_security_headers_on_errors_and_static_files(site, method, path, kwargs, status) -> None:
    app, _, _ = site
    r = app.test_client().open(path, method=method, **kwargs)
    r.close()  # a static file answer holds the file open until closed
    assert r.status_code == status
    assert_hardened(r, path)


def test_it_hides_the_cause_of_an_unexpected_error_and_keeps_the_headers(tmp_path, monkeypatch) -> None:
    from panfm.web.roles import ACCESS

    # Every route needs a row in the access table (a route without one is refused to everybody).
    monkeypatch.setitem(ACCESS, ("/api/explode", "GET"), "viewer")
    monkeypatch.setitem(ACCESS, ("/explode", "GET"), "viewer")
    app = make_app(tmp_path)
    app.config["TESTING"] = False  # let the app's own handler answer, as in production

    def explode() -> str:
        raise RuntimeError("api_key=LUFRPT-leaked-in-an-exception")

    app.add_url_rule("/api/explode", "explode", explode)
    app.add_url_rule("/explode", "explode_page", explode)
    client = app.test_client()
    token = login(client, INITIAL).get_json()["csrf_token"]
    client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                headers={"X-CSRFToken": token})
    for path in ("/api/explode", "/explode"):
        r = client.get(path)
        assert r.status_code == 500
        assert_hardened(r, path)
        assert "LUFRPT" not in r.get_data(as_text=True)
    assert client.get("/api/explode").get_json()["error"] == "internal_error"


def test_it_refuses_a_csrf_token_from_another_session_on_every_mutating_route(site) -> None:
    app, _, _ = site
    victim, attacker = app.test_client(), app.test_client()
    login(victim)
    attacker_token = login(attacker, addr="198.51.100.7").get_json()["csrf_token"]
    checked = 0
    for rule, method in routes(app):
        if method not in MUTATING or rule.rule == "/api/login":
            continue
        r = victim.open(concrete(rule.rule), method=method, json={}, headers={"X-CSRFToken": attacker_token})
        assert r.status_code == 400 and r.get_json()["error"] == "csrf_failed", (method, rule.rule, r.status_code)
        checked += 1
    assert checked >= 8
    assert victim.get("/api/overview").status_code == 200, "the refusals must not have ended the session"


def test_it_ignores_a_session_cookie_planted_before_login(site) -> None:
    app, _, _ = site
    victim = app.test_client()
    # The attacker's own session cookie, planted in the victim's browser (session fixation).
    planted_from = app.test_client()
    login(planted_from, addr="198.51.100.9")
    planted = planted_from.get_cookie("panfm_session").value
    victim.set_cookie("panfm_session", planted)
    login(victim)
    issued = victim.get_cookie("panfm_session").value
    assert issued != planted
    # Logging in through a planted cookie ended that session: the attacker's copy is dead.
    planted_from.set_cookie("panfm_session", planted)
    assert planted_from.get("/api/overview").status_code == 401
    assert victim.get("/api/overview").status_code == 200


def test_it_refuses_a_replayed_cookie_after_logout_on_every_api_route(site) -> None:
    app, _, _ = site
    client = app.test_client()
    token = login(client).get_json()["csrf_token"]
    cookie = client.get_cookie("panfm_session").value
    assert client.post("/api/logout", headers={"X-CSRFToken": token}).status_code == 200
    replay = app.test_client()
    replay.set_cookie("panfm_session", cookie)
    checked = 0
    for rule, method in routes(app):
        if not rule.rule.startswith("/api/") or rule.rule in PUBLIC:
            continue
        r = replay.open(concrete(rule.rule), method=method, json={}, headers={"X-CSRFToken": token})
        assert r.status_code == 401, (method, rule.rule, r.status_code)
        checked += 1
    assert checked >= 15


def test_it_refuses_a_forged_or_tampered_session_cookie(site) -> None:
    app, _, _ = site
    client = app.test_client()
    login(client)
    value = client.get_cookie("panfm_session").value
    for forged in (value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "eyJzaWQiOiJ4In0.x.y", "", "a" * 4000):
        c = app.test_client()
        c.set_cookie("panfm_session", forged)
        assert c.get("/api/overview").status_code == 401, forged[:20]


def test_it_throttles_password_guesses_through_change_password_too(tmp_path) -> None:
    app = make_app(tmp_path)
    client = app.test_client()
    token = login(client, INITIAL).get_json()["csrf_token"]
    headers = {"X-CSRFToken": token}
    codes = [
        client.post("/api/change-password", json={"old_password": f"guess-{i}", "new_password": NEW},
                    headers=headers).status_code
        for i in range(11)
    ]
    assert codes[:10] == [400] * 10 and codes[10] == 429, codes
    # The right old password does not help while throttled.
    r = client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers=headers)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def test_it_sets_no_session_cookie_for_anonymous_reads(site) -> None:
    app, _, _ = site
    client = app.test_client()
    for path in ("/api/version", "/api/health", "/login", "/static/css/app.css"):
        client.get(path).close()
    cookie = client.get_cookie("panfm_session")
    # A cookie for the login form's CSRF token is fine; it must still be HttpOnly and SameSite.
    assert cookie is None or (cookie.http_only and cookie.same_site == "Lax")


def product_files() -> list[str]:
    """The Makefile's PRODUCT_FILES: every top-level module but gunicorn.conf.py, the package, the simulator."""
    files = sorted(p.name for p in ROOT.glob("*.py") if p.name != "gunicorn.conf.py")
    return [*files, "panfm", "panos_sim"]


def test_bandit_finds_nothing_in_the_product_code() -> None:
    bandit = Path(sys.executable).with_name("bandit")
    require(bandit.exists(), "bandit beside the interpreter (pip install -r requirements-dev.txt)")
    result = subprocess.run(
        [str(bandit), "-q", "-c", "pyproject.toml", "-f", "custom", "--msg-template",
         "{abspath}:{line}: {test_id} {severity} {msg}", "-r", *product_files()],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    findings = [line for line in result.stdout.splitlines() if re.search(r":\d+: B\d+ ", line)]
    assert not findings, "bandit findings (fix, or add a reasoned `# nosec Bxxx`):\n" + "\n".join(findings)
    assert result.returncode == 0, result.stderr[-2000:]
