"""Login, the login gate, forced password change, throttling and sessions, on real config.db files."""

from __future__ import annotations

import logging
import re
import sqlite3

import pytest
from flask import Flask
from flask.testing import FlaskClient

import config
import panfm.web.auth as web_auth
from app import create_app

INITIAL = "initial-password-1"
NEW = "a-much-better-password"

# Reachable without a session, exactly as the issue lists them (plus static files).
# /metrics is outside the session gate with a bearer-token rule of its own (tests/test_metrics.py).
PUBLIC = {"/login", "/api/login", "/api/logout", "/api/version", "/api/health", "/metrics"}
DURING_CHANGE = PUBLIC | {"/change-password", "/api/change-password"}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def make_app(data_dir, **overrides) -> Flask:
    overrides = {"data_dir": str(data_dir), "admin_password": INITIAL, **overrides}
    settings = config.load_settings(env={}, overrides=overrides)
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def login(client: FlaskClient, password: str = INITIAL, username: str = "admin", addr: str = "127.0.0.1"):
    return client.post(
        "/api/login", json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": addr}
    )


def concrete(rule: str) -> str:
    """Fill a rule's variables with plausible values."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "x.css" if m.group(1) == "filename" else "some-id", rule)


def routes(app: Flask):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One app whose admin has changed the password, and a logged-in client with its token."""
    app = make_app(tmp_path_factory.mktemp("data"))
    client = app.test_client()
    token = login(client).get_json()["csrf_token"]
    r = client.post(
        "/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers={"X-CSRFToken": token}
    )
    assert r.status_code == 200, r.get_json()
    return app, client, token


def test_it_requires_login_for_every_route_but_the_allowlist(shared):
    app, _, _ = shared
    anonymous = app.test_client()
    checked = 0
    for rule, method in routes(app):
        if rule.endpoint == "static" or rule.rule in PUBLIC:
            continue
        r = anonymous.open(concrete(rule.rule), method=method, json={})
        checked += 1
        if rule.rule.startswith("/api/"):
            assert r.status_code == 401, (method, rule.rule, r.status_code)
            assert r.get_json()["error"] == "unauthorized"
        else:
            assert r.status_code == 302, (method, rule.rule, r.status_code)
            assert r.headers["Location"].startswith("/login")
    assert checked >= 20, "the app should have its API and pages registered"


def test_it_lets_the_allowlist_through_without_login(shared):
    app, _, _ = shared
    anonymous = app.test_client()
    assert anonymous.get("/api/version").status_code == 200
    assert anonymous.get("/api/health").status_code in (200, 503)
    assert anonymous.get("/login").status_code == 200
    assert login(anonymous, "wrong-password-xx").status_code == 401
    metrics = anonymous.get("/metrics")  # no session asked, but its own token: no metrics_token set here
    assert metrics.status_code == 401 and metrics.headers["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_every_mutating_route_without_a_csrf_token(shared):
    app, client, _ = shared
    checked = 0
    for rule, method in routes(app):
        if method not in MUTATING or rule.rule == "/api/login":
            continue
        r = client.open(concrete(rule.rule), method=method, json={})
        assert r.status_code == 400, (method, rule.rule, r.status_code)
        assert r.get_json()["error"] == "csrf_failed"
        checked += 1
    assert checked >= 6


def test_it_refuses_a_wrong_csrf_token(shared):
    _, client, _ = shared
    r = client.put("/api/settings", json={"theme": "dark"}, headers={"X-CSRFToken": "forged"})
    assert r.status_code == 400
    assert r.get_json()["error"] == "csrf_failed"


def test_it_accepts_login_only_as_application_json(shared):
    app, _, _ = shared
    anonymous = app.test_client()
    r = anonymous.post("/api/login", data={"username": "admin", "password": NEW})
    assert r.status_code == 415
    r = anonymous.post("/api/login", data='{"username": "admin", "password": "x"}', content_type="text/plain")
    assert r.status_code == 415
    assert login(anonymous, NEW).status_code == 200


def test_it_enforces_the_initial_password_change_on_the_server(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    r = login(client)
    assert r.status_code == 200
    body = r.get_json()
    assert body["must_change_password"] is True
    token = body["csrf_token"]
    headers = {"X-CSRFToken": token}
    for rule, method in routes(app):
        if rule.endpoint == "static" or rule.rule in DURING_CHANGE:
            continue
        r = client.open(concrete(rule.rule), method=method, json={}, headers=headers)
        if rule.rule.startswith("/api/"):
            assert r.status_code == 403, (method, rule.rule)
            assert r.get_json() == {"error": "must_change_password", "message": "Change the initial password first."}
        else:
            assert r.status_code == 302 and r.headers["Location"] == "/change-password", (method, rule.rule)
    assert client.get("/change-password").status_code == 200

    too_short = client.post(
        "/api/change-password", json={"old_password": INITIAL, "new_password": "short"}, headers=headers
    )
    assert too_short.status_code == 400 and "new_password" in too_short.get_json()["fields"]
    wrong_old = client.post(
        "/api/change-password", json={"old_password": "nope", "new_password": NEW}, headers=headers
    )
    assert wrong_old.status_code == 400 and "old_password" in wrong_old.get_json()["fields"]
    ok = client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers=headers)
    assert ok.status_code == 200 and ok.get_json()["must_change_password"] is False
    assert client.get("/api/overview").status_code == 200

    # The change is stored: a fresh login no longer asks, and the old password is gone.
    fresh = app.test_client()
    assert login(fresh, INITIAL).status_code == 401
    assert login(fresh, NEW).get_json()["must_change_password"] is False


def test_it_ends_other_sessions_when_the_password_changes(tmp_path):
    app = make_app(tmp_path)
    first, second = app.test_client(), app.test_client()
    token = login(first).get_json()["csrf_token"]
    login(second)
    first.post(
        "/api/change-password", json={"old_password": INITIAL, "new_password": NEW}, headers={"X-CSRFToken": token}
    )
    assert first.get("/api/overview").status_code == 200
    assert second.get("/api/overview").status_code == 401


def test_it_issues_a_new_session_at_login_and_logout_ends_it(shared):
    app, _, _ = shared
    client = app.test_client()
    login(client, "wrong-password-xx")
    before = client.get_cookie("panfm_session")
    token = login(client, NEW).get_json()["csrf_token"]
    after = client.get_cookie("panfm_session")
    assert after is not None and (before is None or before.value != after.value)
    assert after.http_only and after.same_site == "Lax" and not after.secure

    # A copy of the cookie (stolen, or kept by a proxy) dies with the logout.
    thief = app.test_client()
    thief.set_cookie("panfm_session", after.value)
    assert thief.get("/api/overview").status_code == 200
    assert client.post("/api/logout", headers={"X-CSRFToken": token}).status_code == 200
    assert client.get("/api/overview").status_code == 401
    assert thief.get("/api/overview").status_code == 401


def test_it_marks_the_cookie_secure_when_configured(tmp_path):
    app = make_app(tmp_path, secure_cookies=True)
    client = app.test_client()
    login(client)
    cookie = client.get_cookie("panfm_session")
    assert cookie is not None and cookie.secure


def recorded_waits(app: Flask) -> list[float]:
    """Record the account slowdown's waits instead of sleeping them (time is the outer edge)."""
    waits: list[float] = []
    app.extensions["panfm_auth"].sleep = waits.append
    return waits


def test_it_never_locks_the_admin_out_for_a_correct_login_from_another_address(tmp_path, caplog):
    app = make_app(tmp_path)
    waits = recorded_waits(app)
    client = app.test_client()
    attackers = [f"203.0.113.{i}" for i in range(1, 5)]
    with caplog.at_level(logging.WARNING, logger="panfm.web"):
        for addr in attackers:
            codes = [login(client, f"guess-{i}", addr=addr).status_code for i in range(12)]
            assert codes == [401] * 10 + [429] * 2, (addr, codes)
    # 40 failures on `admin` from four addresses: the owner, elsewhere, still gets in.
    r = login(client, INITIAL, addr="198.51.100.5")
    assert r.status_code == 200, r.get_json()
    # ...after a short, bounded wait, while each attacker address stays refused.
    assert waits[-1] == web_auth.ACCOUNT_DELAY_CAP_S
    assert max(waits) <= web_auth.ACCOUNT_DELAY_CAP_S <= 5
    for addr in attackers:
        r = login(client, INITIAL, addr=addr)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert r.get_json()["error"] == "too_many_attempts"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("login throttled for account 'admin'" in m for m in warned), warned


def test_it_slows_an_account_more_with_each_failure_up_to_a_cap():
    delays = [web_auth.account_delay(n) for n in range(40)]
    assert delays[: web_auth.ACCOUNT_FREE_FAILURES] == [0.0] * web_auth.ACCOUNT_FREE_FAILURES
    assert delays == sorted(delays)
    assert 0 < delays[web_auth.ACCOUNT_FREE_FAILURES] < delays[-1] == web_auth.ACCOUNT_DELAY_CAP_S
    assert web_auth.account_delay(10**9) == web_auth.ACCOUNT_DELAY_CAP_S


def test_it_keeps_the_slowdown_when_the_owner_logs_in(tmp_path):
    app = make_app(tmp_path)
    waits = recorded_waits(app)
    client = app.test_client()
    for addr in ("203.0.113.1", "203.0.113.2"):
        for i in range(10):
            login(client, f"guess-{i}", addr=addr)
    assert login(client, INITIAL, addr="198.51.100.5").status_code == 200
    login(client, "guess-x", addr="203.0.113.3")
    assert waits[-1] == waits[-2] > 0, "a login by the owner must not reset an attacker's slowdown"


def test_it_refuses_ten_failures_for_one_account_from_one_address(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    for i in range(10):
        assert login(client, f"wrong-{i}", addr="10.0.0.1").status_code == 401
    r = login(client, INITIAL, addr="10.0.0.1")
    assert r.status_code == 429, "the right password must not help the address that guessed"
    assert int(r.headers["Retry-After"]) > 0
    assert login(client, INITIAL, addr="10.0.0.2").status_code == 200


def test_it_throttles_a_client_address_after_thirty_failures(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    for i in range(30):
        assert login(client, "x", username=f"user{i}", addr="192.0.2.7").status_code == 401
    assert login(client, INITIAL, addr="192.0.2.7").status_code == 429
    assert login(client, INITIAL, addr="192.0.2.8").status_code == 200


def test_it_lifts_the_throttle_when_the_window_passes(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    for i in range(10):
        login(client, f"wrong-{i}")
    assert login(client, INITIAL).status_code == 429
    # Age the recorded failures past the 5-minute window, as time would.
    conn = sqlite3.connect(tmp_path / "config.db")
    with conn:
        conn.execute("UPDATE login_failures SET ts = ts - ?", (web_auth.THROTTLE_WINDOW_S + 1,))
    conn.close()
    assert login(client, INITIAL).status_code == 200


def test_it_holds_the_throttle_across_app_instances(tmp_path):
    """Two apps over one data folder stand for two gunicorn workers: failures add up."""
    worker_a, worker_b = make_app(tmp_path), make_app(tmp_path)
    a, b = worker_a.test_client(), worker_b.test_client()
    for i in range(10):
        client = a if i % 2 else b
        assert login(client, f"wrong-{i}").status_code == 401
    assert login(a, INITIAL).status_code == 429
    assert login(b, INITIAL).status_code == 429


def test_it_creates_admin_once_with_a_random_password_logged_once(tmp_path, caplog):
    settings = config.load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    with caplog.at_level(logging.WARNING, logger="panfm.web"):
        app = create_app(settings)
        create_app(settings)
    lines = [r.getMessage() for r in caplog.records if "initial password" in r.getMessage()]
    assert len(lines) == 1
    password = lines[0].split("initial password: ")[1].split(" ")[0]
    assert len(password) >= 16
    r = login(app.test_client(), password)
    assert r.status_code == 200 and r.get_json()["must_change_password"] is True


def test_it_uses_the_admin_password_from_the_environment(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="panfm.web"):
        app = make_app(tmp_path)
    assert not [r for r in caplog.records if "initial password" in r.getMessage()]
    assert login(app.test_client()).status_code == 200
    conn = sqlite3.connect(tmp_path / "config.db")
    (stored,) = conn.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()
    conn.close()
    assert stored.startswith("$argon2id$") and INITIAL not in stored


def test_it_answers_unknown_users_like_wrong_passwords(shared):
    app, _, _ = shared
    client = app.test_client()
    unknown = login(client, "whatever-password", username="nobody", addr="198.51.100.1")
    wrong = login(client, "whatever-password", addr="198.51.100.2")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.get_json() == wrong.get_json()
