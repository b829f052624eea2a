"""API tokens: shown once, stored hashed, header only, no CSRF, rate-limited, capped by role, refused when dead."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from helpers.web import add_token, add_user, bearer, make_client

from panfm.web.tokens import MAX_TOKENS_PER_USER
from throughput_storage import TokenRecord, TokenStore

TOKEN_KEYS = {"id", "name", "role", "username", "created_at", "expires_at", "expired", "last_used"}


def test_the_secret_appears_only_in_the_creation_answer(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    app, admin = make_client(tmp_path)
    r = admin.post("/api/tokens", json={"name": "grafana", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"})
    assert r.status_code == 201
    created = r.get_json()
    assert set(created) == TOKEN_KEYS | {"token"}
    secret = created["token"]
    assert secret.startswith("pfm_") and len(secret) == 47
    assert app.test_client().get("/api/overview", headers=bearer(secret)).status_code == 200
    listed = admin.get("/api/tokens")
    assert secret.encode() not in listed.data
    assert [set(t) for t in listed.get_json()["tokens"]] == [TOKEN_KEYS]
    assert listed.get_json()["tokens"][0]["last_used"] is not None
    audit = admin.get("/api/audit").data
    for path in tmp_path.iterdir():
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path.name
    assert secret.encode() not in audit
    assert secret not in caplog.text
    stored_digest = hashlib.sha256(secret.encode()).hexdigest()
    assert TokenStore(tmp_path).find(stored_digest).name == "grafana"


def test_a_token_needs_no_csrf_and_acts_with_its_role(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    _, op_secret = add_token(olga, "operator")
    _, view_secret = add_token(olga, "viewer", name="read-only")
    bare = app.test_client()  # no cookie, no CSRF header
    rule = {"name": "cpu", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 90}
    assert bare.post("/api/alerts/rules", json=rule, headers=bearer(op_secret)).status_code == 201
    r = bare.post("/api/alerts/rules", json=rule, headers=bearer(view_secret))
    assert r.status_code == 403 and r.get_json()["required_role"] == "operator"
    # A session without the CSRF token is still refused: only a token skips it.
    olga.environ_base.pop("HTTP_X_CSRFTOKEN")
    assert olga.post("/api/alerts/rules", json=rule).get_json()["error"] == "csrf_failed"


def test_a_token_cannot_outrank_its_creator_now_or_later(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    r = olga.post("/api/tokens", json={"name": "sneaky", "role": "admin"})
    assert r.status_code == 400 and r.get_json()["fields"]["role"] == "at most your own role (operator)"
    _, secret = add_token(olga, "operator")
    admin.put("/api/users/olga", json={"role": "viewer"})
    r = app.test_client().post("/api/alerts/rules", json={}, headers=bearer(secret))
    assert r.status_code == 403 and r.get_json()["role"] == "viewer"


def test_revoked_expired_and_disabled_users_tokens_are_refused(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    bare = app.test_client()
    token_id, revoked = add_token(olga, "viewer", name="revoked")
    assert olga.delete(f"/api/tokens/{token_id}").get_json() == {"deleted": token_id}
    r = bare.get("/api/overview", headers=bearer(revoked))
    assert r.status_code == 401 and r.get_json()["error"] == "invalid_token"
    assert "invalid_token" in r.headers["WWW-Authenticate"]

    expired = "pfm_" + secrets.token_urlsafe(32)
    rec = TokenRecord("expired1", "olga", "old", "viewer", time.time() - 100, time.time() - 1, None)
    assert TokenStore(tmp_path).create(rec, hashlib.sha256(expired.encode()).hexdigest(), 100)
    r = bare.get("/api/overview", headers=bearer(expired))
    assert r.status_code == 401 and r.get_json()["error"] == "token_expired"
    assert [t["expired"] for t in olga.get("/api/tokens").get_json()["tokens"] if t["id"] == "expired1"] == [True]

    _, live = add_token(olga, "viewer", name="live")
    assert bare.get("/api/overview", headers=bearer(live)).status_code == 200
    admin.put("/api/users/olga", json={"disabled": True})
    r = bare.get("/api/overview", headers=bearer(live))
    assert r.status_code == 401 and r.get_json()["error"] == "user_disabled"
    assert bare.get("/metrics", headers=bearer(live)).status_code == 401
    admin.delete("/api/users/olga")
    assert bare.get("/api/overview", headers=bearer(live)).get_json()["error"] == "invalid_token"


def test_a_token_in_the_url_query_is_refused_even_a_valid_one(tmp_path):
    app, admin = make_client(tmp_path)
    _, secret = add_token(admin, "viewer")
    bare = app.test_client()
    for url in (f"/api/overview?token={secret}", f"/api/overview?x={secret}", "/api/overview?access_token=abc",
                f"/metrics?token={secret}", f"/api/version?api_token={secret}"):
        r = bare.get(url)
        assert r.status_code == 400, url
        assert r.get_json()["error"] == "token_in_query"
        assert "Authorization header" in r.get_json()["message"]


def test_expiry_must_be_a_future_utc_time(tmp_path):
    _app, admin = make_client(tmp_path)
    for bad, words in (("2001-01-01T00:00:00Z", "future"), ("tomorrow", "ISO-8601"),
                       ("2099-01-01T00:00:00+02:00", "UTC"), (5, "ISO-8601")):
        r = admin.post("/api/tokens", json={"name": "x", "role": "viewer", "expires_at": bad})
        assert r.status_code == 400 and words in r.get_json()["fields"]["expires_at"], bad
    r = admin.post("/api/tokens", json={"name": "bad\x00name", "role": "viewer"})
    assert r.get_json()["fields"]["name"] == "control characters are not allowed"
    assert admin.get("/api/tokens").get_json()["tokens"] == []


def test_tokens_are_rate_limited_per_token(tmp_path):
    app, admin = make_client(tmp_path, api_token_rate_limit=10)
    _, first = add_token(admin, "viewer", name="first")
    _, second = add_token(admin, "viewer", name="second")
    bare = app.test_client()
    frozen = time.time()
    app.extensions["panfm_auth"].clock = lambda: frozen  # one fixed minute, whatever the wall clock does
    answers = [bare.get("/api/version", headers=bearer(first)).status_code for _ in range(11)]
    assert answers == [200] * 10 + [429]
    r = bare.get("/api/version", headers=bearer(first))
    assert r.get_json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    assert bare.get("/api/version", headers=bearer(second)).status_code == 200  # its own budget
    app.extensions["panfm_auth"].clock = lambda: frozen + 60  # the next minute: a new budget
    assert bare.get("/api/version", headers=bearer(first)).status_code == 200


def test_ten_thousand_tokens_stop_at_the_per_user_cap_and_nothing_else_is_stored(tmp_path):
    _app, admin = make_client(tmp_path)
    statuses = []
    for i in range(10_000):
        r = admin.post("/api/tokens", json={"name": f"t{i}", "role": "viewer"})
        statuses.append(r.status_code)
        if r.status_code != 201:
            break
    assert statuses == [201] * MAX_TOKENS_PER_USER + [409]
    assert r.get_json()["error"] == "too_many_tokens"
    assert len(admin.get("/api/tokens").get_json()["tokens"]) == MAX_TOKENS_PER_USER


def test_a_huge_or_malformed_bearer_value_is_a_plain_401(tmp_path):
    app, _ = make_client(tmp_path)
    bare = app.test_client()
    for value in ("pfm_" + "A" * 10_000, "not-a-token", "pfm_short", ""):
        r = bare.get("/api/overview", headers={"Authorization": f"Bearer {value}"})
        assert r.status_code == 401, value[:20]


def test_metrics_accept_any_roles_token_and_still_the_metrics_token(tmp_path):
    app, admin = make_client(tmp_path, metrics_token="prometheus-scrape-secret")
    viewer = add_user(app, admin, "vic", "viewer")
    _, secret = add_token(viewer, "viewer")
    bare = app.test_client()
    assert bare.get("/metrics", headers=bearer(secret)).status_code == 200
    assert bare.get("/metrics", headers=bearer("prometheus-scrape-secret")).status_code == 200
    assert bare.get("/metrics", headers=bearer("wrong")).status_code == 401
    assert bare.get("/metrics").status_code == 401


def test_only_the_owner_or_an_admin_revokes_a_token(tmp_path):
    app, admin = make_client(tmp_path)
    olga = add_user(app, admin, "olga", "operator")
    vic = add_user(app, admin, "vic", "viewer")
    token_id, _ = add_token(olga, "viewer")
    assert vic.delete(f"/api/tokens/{token_id}").status_code == 404
    assert vic.get("/api/tokens").get_json()["tokens"] == []
    assert [t["username"] for t in admin.get("/api/tokens").get_json()["tokens"]] == ["olga"]
    assert admin.delete(f"/api/tokens/{token_id}").status_code == 200


def test_a_token_in_a_log_line_is_masked(tmp_path):
    from panfm.redact import MASK, redact

    secret = "pfm_" + secrets.token_urlsafe(32)
    assert redact(f"GET /api/overview?x={secret} from someone") == f"GET /api/overview?x={MASK} from someone"
    assert secret not in redact(f"Authorization: Bearer {secret}")
