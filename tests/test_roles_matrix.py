"""The role matrix: every route of `url_map` × every role × (session, API token) gets exactly the allowed answer.

Routes are enumerated from the live app, so a route added without a row in the access table
(panfm/web/roles.py) fails `test_every_route_has_an_access_rule` and is refused at run time.
"""

from __future__ import annotations

import re

import pytest
from helpers.web import INITIAL, add_token, add_user, bearer, login, make_client

import config
from app import create_app
from panfm.web.roles import PUBLIC, RANK, ROLES, SESSION_ONLY, allows, required_role

pytestmark = pytest.mark.xdist_group("roles_matrix")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An app with one user per role, each with a session client and an API token of its role."""
    app, admin = make_client(tmp_path_factory.mktemp("matrix"))
    clients = {"admin": admin}
    for role in ("operator", "viewer"):
        clients[role] = add_user(app, admin, f"{role}-user", role)
    tokens = {role: add_token(clients[role], role, name=f"{role}-token")[1] for role in ROLES}
    return app, clients, tokens


def routes(app):
    """Every (rule, method) of the app but static files, HEAD and OPTIONS."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method))
    return sorted(out)


def concrete(rule):
    """A URL for a rule, with a value for each path variable that names nothing stored."""
    return re.sub(r"<(?:[a-z]+:)?[A-Za-z_]+>", "no-such-thing", rule)


def call(client, rule, method, headers=None):
    url = concrete(rule)
    body = None if method == "GET" else {}
    return client.open(url, method=method, json=body, headers=headers or {})


def test_every_route_has_an_access_rule(world):
    app, _, _ = world
    missing = [(rule, method) for rule, method in routes(app) if required_role(rule, method) is None]
    assert missing == [], f"routes without a row in panfm/web/roles.py ACCESS: {missing}"


def test_every_access_rule_names_a_route(world):
    app, _, _ = world
    from panfm.web.roles import ACCESS

    every = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}
    assert set(ACCESS) - every == set()


def test_a_route_without_a_rule_is_refused_to_everybody(tmp_path, caplog):
    app = create_app(config.load_settings(overrides={"data_dir": str(tmp_path), "admin_password": INITIAL}))

    @app.get("/api/unruled")
    def unruled():
        return {"ok": True}

    client = app.test_client()
    r = client.get("/api/unruled")  # refused before anything else: even the login is not asked for
    assert r.status_code == 403
    assert r.get_json()["error"] == "no_access_rule"
    assert "no access rule for GET /api/unruled" in caplog.text
    admin, _ = login(app, "admin", INITIAL)
    assert admin.get("/api/unruled").status_code == 403


def _expect(rule, method, role, via):
    """(allowed?, needed role) for one cell of the matrix."""
    needed = required_role(rule, method)
    if needed == PUBLIC:
        return True, needed
    if via == "token" and (rule, method) in SESSION_ONLY:
        return False, needed
    return allows(role, needed), needed


@pytest.mark.parametrize("via", ["session", "token"])
@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_what_its_row_allows(world, role, via):
    app, clients, tokens = world
    wrong = []
    # Log out last: it ends the session the other calls use.
    for rule, method in sorted(routes(app), key=lambda rm: rm[0] == "/api/logout"):
        if via == "session":
            r = call(clients[role], rule, method)
        else:
            r = call(app.test_client(), rule, method, headers=bearer(tokens[role]))
        allowed, needed = _expect(rule, method, role, via)
        if allowed:
            if r.status_code in (401, 403):
                wrong.append((rule, method, r.status_code, "should be allowed"))
        elif r.status_code != 403:
            wrong.append((rule, method, r.status_code, "should be 403"))
        elif (rule, method) in SESSION_ONLY and via == "token":
            if b"session" not in r.data:
                wrong.append((rule, method, r.data[:120], "should say a session is required"))
        elif rule.startswith("/api/"):
            body = r.get_json()
            if body.get("required_role") != needed or body.get("role") != role:
                wrong.append((rule, method, body, f"should name {needed} and {role}"))
        else:
            # Pages answer an HTML 403 naming the role that would allow it.
            if f"needs the {needed} role".encode() not in r.data:
                wrong.append((rule, method, r.data[:120], f"page should name {needed}"))
    assert wrong == []


def test_anonymous_requests_get_401_or_the_login_page(world):
    app, _, _ = world
    client = app.test_client()
    for rule, method in routes(app):
        if required_role(rule, method) == PUBLIC:
            continue
        r = call(client, rule, method)
        if rule.startswith("/api/"):
            assert r.status_code == 401, (rule, method)
        else:
            assert r.status_code == 302 and "/login" in r.headers["Location"], (rule, method)


def test_roles_are_ordered_viewer_operator_admin():
    assert [r for r, _ in sorted(RANK.items(), key=lambda kv: kv[1])] == ["viewer", "operator", "admin"]


def test_head_follows_get_and_options_needs_the_rules_lowest_role(world):
    app, _clients, tokens = world
    bare = app.test_client()
    assert bare.open("/api/login", method="OPTIONS").status_code == 200  # public rule
    assert bare.open("/api/users", method="OPTIONS").status_code == 401
    r = bare.open("/api/devices/test", method="OPTIONS", headers=bearer(tokens["viewer"]))
    assert r.status_code == 403 and r.get_json()["required_role"] == "admin"
    assert bare.head("/api/overview", headers=bearer(tokens["viewer"])).status_code == 200
    assert bare.head("/api/users", headers=bearer(tokens["operator"])).status_code == 403
