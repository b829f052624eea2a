"""Every POST/PUT endpoint fed with nonsense: a 4xx with {"error", "message"}, nothing stored, never a 500.

The endpoints come from `app.url_map`: a new POST/PUT route without an entry in `TEMPLATES`
(or `BODYLESS`) fails `test_it_covers_every_post_and_put_endpoint`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config
from app import create_app

INITIAL = "initial-password-1"
NEW = "a-much-better-password"
FP = "ab" * 32
MB = 1024 * 1024

# A valid body per endpoint (method, rule); `required` lists fields whose absence is an error,
# `extra_refused` says whether unknown fields are refused (login and change-password ignore them).
TEMPLATES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/login"): {
        "body": {"username": "admin", "password": "not-the-password"},
        "required": ["username", "password"],
        "extra_refused": False,
    },
    ("POST", "/api/change-password"): {
        "body": {"old_password": "not-the-password", "new_password": "another-long-password"},
        "required": ["old_password", "new_password"],
        "extra_refused": False,
    },
    ("POST", "/api/devices"): {
        "body": {"name": "fw-new", "host": "192.0.2.10", "port": 443, "api_key": "LUFRPT-key",
                 "tls": {"mode": "pin", "fingerprint_sha256": FP}, "interfaces": ["ethernet1/1"], "enabled": True},
        "required": ["name", "host", "api_key", "tls"],
        "extra_refused": True,
    },
    ("PUT", "/api/devices/<device_id>"): {
        "body": {"name": "fw-edit", "host": "192.0.2.20", "port": 8443, "username": "admin", "password": "pw",
                 "tls": {"mode": "insecure"}, "interfaces": ["ethernet1/2"], "enabled": False},
        "required": [],
        "extra_refused": True,
    },
    # Port 9 on the loopback refuses at once: a body that happens to be valid costs nothing.
    ("POST", "/api/devices/test"): {
        "body": {"host": "127.0.0.1", "port": 9, "api_key": "LUFRPT-key",
                 "tls": {"mode": "pin", "fingerprint_sha256": FP}},
        "required": ["host"],
        "extra_refused": False,
    },
    ("POST", "/api/users"): {
        "body": {"username": "new-user", "password": "a-long-enough-password", "role": "viewer"},
        "required": ["username", "password", "role"],
        "extra_refused": True,
    },
    # The admin itself, kept admin: a valid body changes nothing (the last admin stays one).
    ("PUT", "/api/users/<user_id>"): {
        "body": {"role": "admin", "disabled": False},
        "required": [],
        "extra_refused": True,
    },
    ("POST", "/api/tokens"): {
        "body": {"name": "ci", "role": "viewer", "expires_at": "2099-01-01T00:00:00Z"},
        "required": ["name", "role"],
        "extra_refused": True,
    },
    ("PUT", "/api/settings"): {
        "body": {"refresh_interval": 60, "request_timeout": 5.0, "theme": "dark"},
        "required": [],
        "extra_refused": True,
    },
    ("POST", "/api/alerts/rules"): {
        "body": {"name": "cpu high", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 90.0},
        "required": ["name", "metric"],
        "extra_refused": True,
    },
    ("PUT", "/api/alerts/rules/<rule_id>"): {
        "body": {"name": "cpu very high", "metric": "cpu_dataplane_pct", "operator": ">", "threshold": 95.0},
        "required": [],  # partial: omitted fields keep their stored values
        "extra_refused": True,
    },
    ("POST", "/api/alerts/rules/apply-template"): {
        "body": {"template": "no-such-template"},
        "required": ["template"],
        "extra_refused": True,
    },
    ("POST", "/api/alerts/channels"): {
        "body": {"name": "ops", "url": "json://127.0.0.1:9/hook", "enabled": True},
        "required": ["name", "url"],
        "extra_refused": True,
    },
    ("PUT", "/api/alerts/channels/<channel_id>"): {
        "body": {"name": "ops 2", "url": "json://127.0.0.1:9/hook2", "enabled": False},
        "required": [],  # partial: omitted fields keep their stored values
        "extra_refused": True,
    },
    ("PUT", "/api/connected-devices/metadata/<mac>"): {
        "body": {"name": "printer", "comment": "floor 2", "tags": ["printer"], "location": "room 2.14"},
        "required": [],  # partial: any one field
        "extra_refused": True,
    },
    ("POST", "/api/alerts/maintenance"): {
        "body": {"name": "night", "kind": "once", "start": "2030-01-01T00:00:00Z", "end": "2030-01-01T02:00:00Z"},
        "required": ["kind"],
        "extra_refused": True,
    },
}
# Endpoints that take no body: nonsense in one must change nothing about the answer's kind.
BODYLESS = {
    ("POST", "/api/logout"),
    ("POST", "/api/alerts/<alert_id>/acknowledge"),
    ("POST", "/api/alerts/channels/<channel_id>/test"),
}

NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "fw\x00-1",
    "\ud800",  # a lone surrogate, sent as the JSON escape \ud800
    "x\udfffy",
    "\u202efdp.exe",  # right-to-left override
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew, right to left
    "\U0001f525\U0001f469\u200d\U0001f467",  # emoji and a zero-width joiner
    "e" + "\u0301" * 500,  # a pile of combining accents
    "\ufeff\uffff",
    "<script>alert(1)</script>",
    "' OR 1=1; --",
    "../../../etc/passwd",
    "%s%n%x",
    "A" * 100_000,
]
WRONG_TYPES: dict[type, list[Any]] = {
    str: [0, 1.5, True, [], {}, ["x"]],
    int: ["ten", "", 1.5, True, [], {}],
    float: ["ten", "", True, [], {}],
    bool: [0, 1, "true", [], {}],
    list: ["ethernet1/1", 0, True, {}],
    dict: ["pin", 0, True, []],
}
# Numbers no field can hold: a float() of the first overflows; str.isdigit() takes "²" and "①",
# which int() refuses, and int() takes Arabic-Indic and full-width digits.
HUGE_INTS = [10**400, -(10**400), 2**1024]
ODD_DIGITS = ["²", "①", "٣", "１２", "1" + "0" * 400, "9" * 5000, "1e400", "-1e400", "NaN", "Infinity"]
NASTY_VALUES = [*NASTY_STRINGS, None, True, False, 0, -1, 2**64, -(2**63), 1e308, -1e308, 1.5, [], {}, [None],
                {"": {"": []}}, ["x"] * 1000, *HUGE_INTS, *ODD_DIGITS]
WEEKLY = {"name": "weekly", "kind": "weekly", "weekdays": ["mon"], "start_time": "01:00", "duration_s": 3600}
# Fields holding a number that the templates above leave out (they are optional, or of another kind).
MORE_NUMBERS: dict[tuple[str, str], list[str]] = {
    ("POST", "/api/alerts/rules"): ["clear_threshold", "for_s", "repeat_s"],
    ("PUT", "/api/alerts/rules/<rule_id>"): ["clear_threshold", "for_s", "repeat_s"],
    ("PUT", "/api/settings"): [f.name for f in config.declared()
                               if str(f.type) in ("int", "float") and f.metadata["editable"]],
}
NOT_OBJECTS = ["[]", "1", '"text"', "null", "true", "[{}]", "{", '{"a": }', "{'a': 1}", "\ufeff[]", "",
               "[" * 50_000, '{"a":' * 20_000, "NaN", '{"\\ud800": 1}', "1" * 5000]


def make_client(data_dir: Path):
    # Loopback allowed: the templates' webhooks and connection tests aim at closed loopback ports.
    settings_ = config.load_settings(env={}, overrides={"data_dir": str(data_dir), "admin_password": INITIAL,
                                                        "allowed_device_networks": "127.0.0.0/8"})
    app = create_app(settings_)
    client = app.test_client()
    token = client.post("/api/login", json={"username": "admin", "password": INITIAL}).get_json()["csrf_token"]
    r = client.post("/api/change-password", json={"old_password": INITIAL, "new_password": NEW},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 200
    client.environ_base["HTTP_X_CSRFTOKEN"] = token
    return app, client


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything people edit: settings.json bytes and every config.db table but the login failures."""
    out: dict[str, Any] = {}
    settings_file = data_dir / config.SETTINGS_FILE
    out["settings.json"] = settings_file.read_bytes() if settings_file.exists() else None
    conn = sqlite3.connect(f"file:{data_dir / 'config.db'}?mode=ro", uri=True)
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in sorted(tables):
            if table == "login_failures":
                continue  # a refused login is counted on purpose (the throttle)
            rows = conn.execute(f"SELECT * FROM {table}")
            if table == "audit_log":  # and audited on purpose: who tried which name, from where
                rows = conn.execute("SELECT * FROM audit_log WHERE action != 'login.failed'")
            out[table] = sorted(map(repr, rows))
    finally:
        conn.close()
    return out


class Api:
    """One logged-in client over one data folder, with an object of each kind to edit."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.app, self.client = make_client(data_dir)
        self.rules = {(m, r.rule) for r in self.app.url_map.iter_rules() for m in r.methods & {"POST", "PUT"}}
        self.ids: dict[str, str] = {"alert_id": "no-such-alert", "user_id": "admin", "mac": "00:1b:17:00:00:01"}
        r = self.client.post("/api/devices", json={"name": "fw-1", "host": "192.0.2.1", "api_key": "k",
                                                   "tls": {"mode": "pin", "fingerprint_sha256": FP}})
        assert r.status_code == 201, r.get_json()
        self.ids["device_id"] = r.get_json()["id"]
        for var, rule in (("rule_id", "/api/alerts/rules"), ("channel_id", "/api/alerts/channels")):
            if ("POST", rule) in self.rules:
                r = self.client.post(rule, json=TEMPLATES[("POST", rule)]["body"])
                assert r.status_code == 201, (rule, r.get_json())
                self.ids[var] = r.get_json()["id"]

    def path(self, rule: str) -> str:
        return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: self.ids.get(m.group(1), "some-id"), rule)

    def send(self, method: str, rule: str, data: str | bytes, content_type: str = "application/json"):
        return self.client.open(self.path(rule), method=method, data=data, content_type=content_type)

    def endpoints(self) -> list[tuple[str, str]]:
        return sorted(k for k in self.rules if k in TEMPLATES)


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Api:
    return Api(tmp_path_factory.mktemp("data"))


def assert_refused(r, *statuses: int) -> None:
    """A refusal: the given 4xx (any 4xx when none given) with a JSON {"error", "message"} body."""
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data()[:300])
    if statuses:
        assert r.status_code in statuses, (r.status_code, r.get_data()[:300])
    body = r.get_json(silent=True)
    assert isinstance(body, dict), r.get_data()[:300]
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str) and body["message"]


def dumps(body: Any) -> str:
    # ensure_ascii keeps lone surrogates as \ud800 escapes, as a hostile client would send them.
    return json.dumps(body, ensure_ascii=True)


def test_it_covers_every_post_and_put_endpoint(api: Api) -> None:
    uncovered = sorted(k for k in api.rules if k not in TEMPLATES and k not in BODYLESS)
    assert not uncovered, f"add a template for these endpoints to {__file__}: {uncovered}"
    assert {("POST", "/api/devices"), ("PUT", "/api/settings"), ("POST", "/api/login")} <= api.rules


@pytest.mark.parametrize("body", NOT_OBJECTS, ids=range(len(NOT_OBJECTS)))
def test_it_refuses_bodies_that_are_not_a_json_object(api: Api, body: str) -> None:
    for method, rule in api.endpoints():
        before = snapshot(api.data_dir)
        assert_refused(api.send(method, rule, body), 400)
        assert snapshot(api.data_dir) == before, (method, rule)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ('{"name": "x"}', "text/plain"),
        ("name=x&host=192.0.2.9", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00{", "application/json"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        ("", "application/json"),
    ],
    ids=["text-plain", "form", "binary-json", "png", "empty"],
)
def test_it_refuses_bodies_of_the_wrong_kind(api: Api, data: str | bytes, content_type: str) -> None:
    for method, rule in api.endpoints():
        before = snapshot(api.data_dir)
        assert_refused(api.send(method, rule, data, content_type), 400, 415)
        assert snapshot(api.data_dir) == before, (method, rule)


def test_it_refuses_a_body_over_one_megabyte(api: Api) -> None:
    for method, rule in api.endpoints():
        body = dict(TEMPLATES[(method, rule)]["body"])
        first = next(iter(body))
        body[first] = "A" * MB
        before = snapshot(api.data_dir)
        assert_refused(api.send(method, rule, dumps(body)), 413)
        assert snapshot(api.data_dir) == before, (method, rule)


def test_it_refuses_each_missing_required_field(api: Api) -> None:
    for method, rule in api.endpoints():
        template = TEMPLATES[(method, rule)]
        for name in template["required"]:
            body = {k: v for k, v in template["body"].items() if k != name}
            before = snapshot(api.data_dir)
            assert_refused(api.send(method, rule, dumps(body)), 400, 404)
            assert snapshot(api.data_dir) == before, (method, rule, name)


def test_it_refuses_unknown_fields(api: Api) -> None:
    for method, rule in api.endpoints():
        template = TEMPLATES[(method, rule)]
        if not template["extra_refused"]:
            continue
        for extra in ("admin", "id_", "__proto__", "\u202eevil"):
            before = snapshot(api.data_dir)
            assert_refused(api.send(method, rule, dumps({**template["body"], extra: True})), 400)
            assert snapshot(api.data_dir) == before, (method, rule, extra)


def test_it_refuses_every_field_of_the_wrong_type(api: Api) -> None:
    for method, rule in api.endpoints():
        template = TEMPLATES[(method, rule)]
        for name, good in template["body"].items():
            for wrong in WRONG_TYPES[type(good)]:
                before = snapshot(api.data_dir)
                r = api.send(method, rule, dumps({**template["body"], name: wrong}))
                assert_refused(r, 400, 401, 404)
                assert snapshot(api.data_dir) == before, (method, rule, name, wrong)


def test_it_refuses_lone_surrogates_anywhere_with_a_400(api: Api) -> None:
    for method, rule in api.endpoints():
        body = TEMPLATES[(method, rule)]["body"]
        for name in body:
            before = snapshot(api.data_dir)
            assert_refused(api.send(method, rule, dumps({**body, name: "fw\ud800"})), 400)
            assert_refused(api.send(method, rule, dumps({**body, "\udc00": 1})), 400)
            assert snapshot(api.data_dir) == before, (method, rule, name)


def test_it_never_fails_on_unicode_edge_cases(api: Api) -> None:
    for method, rule in api.endpoints():
        body = TEMPLATES[(method, rule)]["body"]
        for name, good in body.items():
            if not isinstance(good, str) or rule == "/api/devices/test":
                continue  # the test endpoint would resolve a name that happens to be valid
            for text in NASTY_STRINGS:
                before = snapshot(api.data_dir)
                r = api.send(method, rule, dumps({**body, name: text}))
                assert r.status_code < 500, (method, rule, name, text[:20], r.get_data()[:200])
                if r.status_code >= 400:
                    assert_refused(r)
                    assert snapshot(api.data_dir) == before, (method, rule, name, text[:20])


def numeric_cases(api: Api):
    """Every (method, rule, body, field) whose field takes a number, from the templates and MORE_NUMBERS."""
    for method, rule in api.endpoints():
        body = TEMPLATES[(method, rule)]["body"]
        names = [k for k, v in body.items() if isinstance(v, int | float) and not isinstance(v, bool)]
        for name in dict.fromkeys(names + MORE_NUMBERS.get((method, rule), [])):
            yield method, rule, body, name
    if ("POST", "/api/alerts/maintenance") in api.rules:
        yield "POST", "/api/alerts/maintenance", WEEKLY, "duration_s"


def test_it_refuses_huge_integers_and_odd_digits_in_every_numeric_field_with_a_400(api: Api) -> None:
    checked = set()
    for method, rule, body, name in numeric_cases(api):
        checked.add((rule, name))
        for value in [*HUGE_INTS, *ODD_DIGITS]:
            before = snapshot(api.data_dir)
            r = api.send(method, rule, dumps({**body, name: value}))
            assert_refused(r, 400)
            assert snapshot(api.data_dir) == before, (method, rule, name, str(value)[:20])
        # 5000 digits are past what Python turns into an int at all: sent as raw JSON text.
        raw = dumps({**body, name: 0}).replace(f'"{name}": 0', f'"{name}": {"9" * 5000}')
        assert_refused(api.send(method, rule, raw), 400)
    assert {("/api/alerts/rules", "threshold"), ("/api/alerts/maintenance", "duration_s"),
            ("/api/settings", "request_timeout"), ("/api/devices", "port")} <= checked


def test_it_never_answers_huge_or_odd_numbers_in_query_strings_with_a_500(api: Api) -> None:
    """Every GET under /api, each parameter the API reads, fed numbers no parameter can hold."""
    params = ("limit", "since", "range", "start", "end", "device_id", "name")
    gets = sorted(r.rule for r in api.app.url_map.iter_rules() if "GET" in r.methods and r.rule.startswith("/api/"))
    assert "/api/alerts/history" in gets
    for rule in gets:
        for param in params:
            for value in [str(HUGE_INTS[0]), *ODD_DIGITS]:
                query = {param: value}
                if param != "device_id":
                    query["device_id"] = api.ids["device_id"]
                r = api.client.get(api.path(rule), query_string=query)
                assert r.status_code != 500, (rule, param, value[:20], r.get_data()[:200])  # 503: no samples yet
    for value in [str(HUGE_INTS[0]), *ODD_DIGITS, "0", "-1", "1001"]:
        assert_refused(api.client.get("/api/alerts/history", query_string={"limit": value}), 400)
    assert api.client.get("/api/alerts/history", query_string={"limit": "1000"}).status_code == 200


def test_it_refuses_control_characters_in_names(api: Api) -> None:
    for text in ("fw\x00-1", "fw\n1", "\x1b[31mred"):
        before = snapshot(api.data_dir)
        r = api.send("POST", "/api/devices", dumps({**TEMPLATES[("POST", "/api/devices")]["body"], "name": text}))
        assert_refused(r, 400)
        assert "name" in r.get_json()["fields"]
        assert snapshot(api.data_dir) == before


@st.composite
def mutated(draw: st.DrawFn, endpoints: list[tuple[str, str]]) -> tuple[str, str, Any]:
    """Pick an endpoint and break its valid body: drop, retype, add or nest fields, a few times."""
    method, rule = draw(st.sampled_from(endpoints))
    body: dict[str, Any] = json.loads(json.dumps(TEMPLATES[(method, rule)]["body"]))
    safe = rule == "/api/devices/test"  # only values that can never form a reachable host:port
    values = st.sampled_from(NASTY_VALUES)
    if not safe:
        values = values | st.text(max_size=30) | st.integers() | st.floats() | st.lists(st.integers(), max_size=3)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "retype", "extra", "nested"]))
        if op == "drop" and body:
            del body[draw(st.sampled_from(sorted(body)))]
        elif op == "retype" and body:
            body[draw(st.sampled_from(sorted(body)))] = draw(values)
        elif op == "extra":
            body[draw(st.sampled_from(["id", "extra", "", "__class__", "\u0000", "tls.mode"]))] = draw(values)
        elif op == "nested":
            inner = [k for k, v in body.items() if isinstance(v, dict)]
            if inner:
                key = draw(st.sampled_from(inner))
                field = draw(st.sampled_from(["mode", "fingerprint_sha256", "ca_pem", "x"]))
                body[key] = {**body[key], field: draw(values)}
    return method, rule, body


def test_it_answers_random_broken_bodies_with_a_4xx_or_a_success_and_never_a_500(api: Api) -> None:
    @settings(max_examples=250, deadline=timedelta(seconds=5), database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=mutated(api.endpoints()))
    def run(case: tuple[str, str, Any]) -> None:
        method, rule, body = case
        before = snapshot(api.data_dir)
        r = api.send(method, rule, dumps(body))
        assert r.status_code < 500, (method, rule, body, r.get_data()[:300])
        if r.status_code >= 400:
            assert_refused(r)
            assert snapshot(api.data_dir) == before, (method, rule, body)

    run()


def test_it_keeps_bodyless_endpoints_quiet_about_nonsense(tmp_path: Path) -> None:
    api = Api(tmp_path)
    for method, rule in sorted(BODYLESS & api.rules):
        for data in ('{"x": "\\ud800"}', "[" * 50_000, "A" * (MB + 1)):
            r = api.send(method, rule, data)
            assert r.status_code < 500, (method, rule, r.status_code)
            if r.status_code >= 400:
                assert_refused(r)
