"""Users and roles: the /api/users contract, the last admin, resets, disables, CLI, migration, audit trail."""

from __future__ import annotations

import json
import sqlite3

from helpers.web import FP, INITIAL, NEW, add_user, login, make_client

import clock
from panfm.storage import config_store
from throughput_storage import AuditLog, UserStore

USER_KEYS = {"id", "username", "role", "disabled", "must_change_password", "created_at", "updated_at"}


def test_it_creates_a_user_and_never_answers_a_hash(tmp_path):
    _app, admin = make_client(tmp_path)
    r = admin.post("/api/users", json={"username": "olga", "password": "twelve-chars", "role": "operator"})
    assert r.status_code == 201
    body = r.get_json()
    assert set(body) == USER_KEYS
    assert (body["id"], body["username"], body["role"], body["disabled"], body["must_change_password"]) == (
        "olga", "olga", "operator", False, True)
    listed = admin.get("/api/users")
    assert {u["username"]: u["role"] for u in listed.get_json()["users"]} == {"admin": "admin", "olga": "operator"}
    assert b"argon2" not in listed.data and b"password_hash" not in listed.data and b"argon2" not in r.data


def test_it_refuses_bad_names_short_passwords_and_unknown_roles_and_stores_nothing(tmp_path):
    _app, admin = make_client(tmp_path)
    cases = [
        ({"username": "bell\x07user", "password": "twelve-chars", "role": "viewer"}, "username", "control characters"),
        ({"username": "new\nline", "password": "twelve-chars", "role": "viewer"}, "username", "control characters"),
        ({"username": "a/b", "password": "twelve-chars", "role": "viewer"}, "username", "letters, digits"),
        ({"username": "x" * 65, "password": "twelve-chars", "role": "viewer"}, "username", "1 to 64"),
        ({"username": "shorty", "password": "eleven-char", "role": "viewer"}, "password", "12 to 1024"),
        ({"username": "roleless", "password": "twelve-chars", "role": "root"}, "role", "one of"),
        ({"username": "extra", "password": "twelve-chars", "role": "viewer", "hash": "x"}, "hash", "unknown field"),
    ]
    for body, field, words in cases:
        r = admin.post("/api/users", json=body)
        assert r.status_code == 400, body
        assert words in r.get_json()["fields"][field]
    assert [u["username"] for u in admin.get("/api/users").get_json()["users"]] == ["admin"]
    r = admin.post("/api/users", json={"username": "ADMIN", "password": "twelve-chars", "role": "viewer"})
    assert r.status_code == 409 and r.get_json()["error"] == "user_exists"


def test_the_last_enabled_admin_cannot_be_disabled_demoted_or_deleted(tmp_path):
    app, admin = make_client(tmp_path)
    for change in ({"role": "viewer"}, {"role": "operator"}, {"disabled": True}):
        r = admin.put("/api/users/admin", json=change)
        assert r.status_code == 409 and r.get_json()["error"] == "last_admin", change
    other = add_user(app, admin, "second", "admin")
    assert other.delete("/api/users/admin").status_code == 200  # another enabled admin remains
    assert other.delete("/api/users/second").get_json()["error"] == "own_account"
    r = other.put("/api/users/second", json={"role": "viewer"})
    assert r.status_code == 409 and r.get_json()["error"] == "last_admin"
    assert UserStore(tmp_path).account("second").role == "admin"


def test_a_disabled_user_loses_its_session_and_cannot_log_in(tmp_path):
    app, admin = make_client(tmp_path)
    viewer = add_user(app, admin, "vic", "viewer")
    assert viewer.get("/api/overview").status_code == 200
    r = admin.put("/api/users/vic", json={"disabled": True})
    assert r.status_code == 200 and r.get_json()["disabled"] is True
    assert viewer.get("/api/overview").status_code == 401
    assert app.test_client().post("/api/login", json={"username": "vic", "password": NEW}).status_code == 401
    admin.put("/api/users/vic", json={"disabled": False})
    login(app, "vic", NEW)


def test_an_admin_reset_forces_a_password_change_and_ends_the_sessions(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    r = admin.put("/api/users/olga", json={"password": "reset-by-the-admin"})
    assert r.status_code == 200 and r.get_json()["must_change_password"] is True
    assert olga.get("/api/overview").status_code == 401
    client, body = login(app, "olga", "reset-by-the-admin")
    assert body["must_change_password"] is True
    assert client.get("/api/overview").get_json()["error"] == "must_change_password"
    r = client.post("/api/change-password", json={"old_password": "reset-by-the-admin", "new_password": "short"})
    assert r.status_code == 400
    assert admin.put("/api/users/olga", json={"password": "short"}).status_code == 400


def test_a_new_role_takes_effect_at_the_next_request(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    rule = {"name": "cpu", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 90}
    assert olga.post("/api/alerts/rules", json=rule).status_code == 201
    admin.put("/api/users/olga", json={"role": "viewer"})
    r = olga.post("/api/alerts/rules", json=rule)
    assert r.status_code == 403
    assert r.get_json() == {"error": "forbidden", "message": "This needs the operator role; you are viewer.",
                            "required_role": "operator", "role": "viewer"}


def test_the_migration_keeps_the_existing_admin_an_admin(tmp_path):
    conn = sqlite3.connect(tmp_path / "config.db", isolation_level=None)
    for i, step in enumerate(config_store.MIGRATIONS[:2]):
        conn.executescript(step)
        conn.execute(f"PRAGMA user_version = {i + 1}")
    conn.execute("INSERT INTO users VALUES ('admin', 'hash', 0, 1.0, 1.0)")
    conn.close()
    config_store.connect(tmp_path).close()  # what the web and the clock do at start: migrate
    account = UserStore(tmp_path).account("admin")
    assert (account.role, account.disabled) == ("admin", False)


def test_the_users_cli_adds_lists_disables_and_sets_roles(tmp_path):
    app, _admin = make_client(tmp_path)
    runner = app.test_cli_runner()
    r = runner.invoke(args=["users", "add", "nina", "--role", "viewer", "--password-stdin"], input="a-fine-password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["users", "add", "nina", "--role", "viewer", "--password-stdin"], input="a-fine-password\n")
    assert r.exit_code != 0 and "already exists" in r.output
    r = runner.invoke(args=["users", "add", "bad\x1bname", "--role", "viewer", "--password-stdin"], input="x" * 12)
    assert r.exit_code != 0 and "control characters" in r.output
    r = runner.invoke(args=["users", "add", "short", "--role", "viewer", "--password-stdin"], input="tiny\n")
    assert r.exit_code != 0 and "12 to 1024" in r.output
    assert runner.invoke(args=["users", "set-role", "nina", "operator"]).exit_code == 0
    r = runner.invoke(args=["users", "set-role", "admin", "viewer"])
    assert r.exit_code != 0 and "last enabled admin" in r.output
    assert runner.invoke(args=["users", "disable", "nina"]).exit_code == 0
    listing = runner.invoke(args=["users", "list"]).output
    assert "nina" in listing and "operator" in listing and "disabled" in listing and "argon2" not in listing
    r = runner.invoke(args=["users", "disable", "nobody"])
    assert r.exit_code != 0 and "no user named" in r.output
    actions = [(e.actor.startswith("cli:"), e.action, e.target) for e in AuditLog(tmp_path).page(None, 10)]
    assert (True, "user.create", "nina") in actions and (True, "user.update", "nina") in actions


def test_the_audit_trail_names_who_changed_what_and_never_a_secret(tmp_path):
    app, admin = make_client(tmp_path)
    app.test_client().post("/api/login", json={"username": "mallory\x07", "password": "wrong-password"})
    device = {"name": "fw-audit", "host": "198.51.100.7", "api_key": "SECRET-DEVICE-KEY-123",
              "tls": {"mode": "pin", "fingerprint_sha256": FP}}
    device_id = admin.post("/api/devices", json=device).get_json()["id"]
    admin.put(f"/api/devices/{device_id}", json={"name": "fw-renamed"})
    channel = admin.post("/api/alerts/channels", json={"name": "hook", "url": "json://hooks.example/SECRET-PATH"})
    assert channel.status_code == 201
    admin.put("/api/settings", json={"refresh_interval": 60})
    admin.post("/api/users", json={"username": "olga", "password": "SECRET-USER-PASSWORD", "role": "operator"})
    entries = admin.get("/api/audit?limit=500").get_json()["entries"]
    text = json.dumps(entries)
    for secret in ("SECRET-DEVICE-KEY-123", "SECRET-PATH", "SECRET-USER-PASSWORD", NEW, INITIAL, "wrong-password"):
        assert secret not in text
    assert all(set(e) == {"t", "actor", "action", "target", "fields"} for e in entries)
    by_action = {e["action"]: e for e in entries}
    assert by_action["login.failed"]["actor"] == "mallory\\x07"
    assert by_action["device.create"]["fields"]["api_key"] == "(set)"
    assert by_action["device.update"]["fields"] == {"name": "fw-renamed"}
    assert by_action["channel.create"]["fields"]["url"] == "(set)"
    assert by_action["settings.update"]["fields"] == {"refresh_interval": 60}
    assert by_action["user.create"]["fields"] == {"role": "operator", "password": "(set)"}
    assert {e["actor"] for e in entries if e["action"] != "login.failed"} == {"admin"}
    raw = (tmp_path / "config.db").read_bytes()
    assert b"SECRET-USER-PASSWORD" not in raw and b"SECRET-PATH" not in raw


def test_the_audit_pages_backwards_without_gaps_or_repeats(tmp_path):
    _app, admin = make_client(tmp_path)
    log = AuditLog(tmp_path)
    for i in range(7):
        log.append("admin", "test.step", f"n{i}", {}, 1_700_000_000.0)  # one instant: t stays unique
    seen, before = [], None
    while True:
        query = "limit=3" + (f"&before={before}" if before else "")
        page = admin.get(f"/api/audit?{query}").get_json()["entries"]
        if not page:
            break
        seen += [e["target"] for e in page if e["action"] == "test.step"]
        before = page[-1]["t"]
    assert seen == [f"n{i}" for i in reversed(range(7))]
    for bad in ("before=yesterday", "limit=0", "limit=501", "limit=abc", "before=2026-01-01T00:00:00%2B02:00"):
        r = admin.get(f"/api/audit?{bad}")
        assert r.status_code == 400 and r.get_json()["error"] == "invalid", bad


def test_the_nightly_cleanup_drops_audit_entries_past_retention(clk):
    log = AuditLog(clk.settings.data_path)
    now = clk.ctx.clock()
    log.append("admin", "old", "x", {}, now - 400 * 86400)
    log.append("admin", "recent", "y", {}, now - 10 * 86400)
    deleted = clock.cleanup_once(clk.ctx)
    assert deleted["audit_entries"] == 1
    assert [e.action for e in log.page(None, 10)] == ["recent"]
