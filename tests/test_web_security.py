"""Security headers, error shapes, the secret key file and proxy trust."""

from __future__ import annotations

import sqlite3
import stat

import pytest

import config
from app import create_app

INITIAL = "initial-password-1"


def make_app(data_dir, **overrides):
    settings = config.load_settings(
        env={}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL, **overrides}
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("path", ["/api/version", "/login", "/api/overview", "/", "/api/nope", "/nope"])
def test_it_sends_the_security_headers_on_every_answer(app, path):
    r = app.test_client().get(path)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"]


def test_it_answers_json_errors_under_api_and_html_elsewhere(app):
    client = app.test_client()
    r = client.get("/api/no-such-thing")
    assert r.status_code == 404 and r.is_json
    assert set(r.get_json()) == {"error", "message"} and r.get_json()["error"] == "not_found"
    r = client.delete("/api/version")
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"
    r = client.get("/no-such-page")
    assert r.status_code == 404 and r.mimetype == "text/html"


def test_it_escapes_markup_characters_in_json(app):
    client = app.test_client()
    r = client.post("/api/login", json={"username": "<img src=x onerror=alert(1)>", "password": "x" * 2000})
    assert r.status_code == 400
    assert "<" not in r.get_data(as_text=True)


@pytest.mark.parametrize(("char", "escaped"), [("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")])
def test_each_markup_character_alone_is_escaped_in_json(app, char, escaped):
    text = app.json.dumps({"name": f"fw{char}01", "points": [{"t": 1.5}] * 100})
    assert char not in text and f"fw{escaped}01" in text
    assert app.json.loads(text)["name"] == f"fw{char}01"
    assert app.json.dumps({"name": "fw-01"}) == '{"name":"fw-01"}'  # nothing to escape: as encoded


def test_it_generates_the_secret_key_once_with_mode_0600(tmp_path):
    first = make_app(tmp_path)
    second = make_app(tmp_path)
    path = tmp_path / config.SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == path.read_text().strip()
    assert len(first.config["SECRET_KEY"]) >= 32


def test_it_prefers_the_secret_key_setting(tmp_path):
    app = make_app(tmp_path, secret_key="k" * 40)
    assert app.config["SECRET_KEY"] == "k" * 40
    assert not (tmp_path / config.SECRET_KEY_FILE).exists()


def test_it_trusts_forwarded_headers_only_when_configured(tmp_path):
    """The throttle counts failures per client address: which address it saw shows whom it trusted."""
    headers = {"X-Forwarded-For": "203.0.113.9"}
    for proxies, expected in ((0, "addr:127.0.0.1"), (1, "addr:203.0.113.9")):
        data = tmp_path / str(proxies)
        app = make_app(data, trusted_proxies=proxies)
        r = app.test_client().post("/api/login", json={"username": "admin", "password": "wrong"}, headers=headers)
        assert r.status_code == 401
        conn = sqlite3.connect(data / "config.db")
        keys = {k for (k,) in conn.execute("SELECT key FROM login_failures WHERE key LIKE 'addr:%'")}
        conn.close()
        assert keys == {expected}


def test_it_does_not_cache_api_answers(app):
    r = app.test_client().get("/api/version")
    assert r.headers["Cache-Control"] == "no-store"
