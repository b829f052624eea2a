"""The OpenAPI 3.1 description: every JSON route of `url_map` is described, every described route exists.

And schemathesis against the live app (gunicorn on a loopback port, one API token per role): no
500, every answer's status, content type and body match the description, for every operation,
with a bounded number of generated requests so `make test` stays fast.
"""

from __future__ import annotations

import re

import pytest
import requests
from conftest import require
from helpers.live import start_gunicorn
from helpers.web import add_token, add_user, bearer, make_client
from hypothesis import HealthCheck, Phase, given, settings

from panfm.web.openapi_spec import build_spec, openapi_path
from panfm.web.roles import ROLES, required_role
from throughput_storage import HISTORY_DB, SampleStore

try:
    import schemathesis
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )
except ImportError:  # named by require() below: a failure under CI=true
    schemathesis = None

EXAMPLES_PER_OPERATION = 4
# The one operation the fuzzer leaves alone: "test connection" makes the web call a firewall at
# any address the request names (that is its job); its validation is tested in test_web_devices.
NOT_FUZZED = {("POST", "/api/devices/test")}


def no_500(ctx, response, case):
    """No answer is a 500. (A 503 is a documented answer: /api/health while no clock runs.)"""
    if response.status_code == 500:
        raise AssertionError(f"500 from {case.method} {case.formatted_path}: {response.text[:200]}")
    return None


def api_routes(app):
    return {(rule.rule, m) for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
            for m in rule.methods - {"HEAD", "OPTIONS"}}


def described(spec):
    return {(path, method.upper()) for path, item in spec["paths"].items() for method in item}


def test_every_json_route_is_described_and_every_description_exists(tmp_path):
    app, admin = make_client(tmp_path)
    spec = admin.get("/api/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    routes = {(openapi_path(rule), method) for rule, method in api_routes(app)}
    assert routes - described(spec) == set(), "routes missing from panfm/web/openapi_spec.py"
    assert described(spec) - routes == set(), "described routes the app does not have"


def test_each_operation_names_the_role_of_the_access_table(tmp_path):
    spec = build_spec("test")
    for path, item in spec["paths"].items():
        rule = re.sub(r"\{([A-Za-z_]+)\}", r"<\1>", path)
        for method, op in item.items():
            assert op["x-panfm-role"] == required_role(rule, method.upper()), (path, method)
            assert "default" in op["responses"]


def test_the_description_is_valid_openapi_3_1():
    require(schemathesis is not None, "schemathesis (pip install -r requirements-dev.txt)")
    schema = schemathesis.openapi.from_dict(build_spec("test"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in build_spec("test")["paths"].values())


def test_the_reference_page_renders_the_description_locally(tmp_path):
    _app, admin = make_client(tmp_path)
    page = admin.get("/api-docs")
    assert page.status_code == 200
    assert b"/static/js/api_docs.js" in page.data
    assert b"http://" not in page.data and b"https://" not in page.data  # nothing from a CDN
    script = admin.get("/static/js/api_docs.js")
    assert script.status_code == 200 and b"/api/openapi.json" in script.data
    script.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """gunicorn over a data folder with one user and one API token per role."""
    work = tmp_path_factory.mktemp("fuzz")
    data = work / "data"
    app, admin = make_client(data)
    clients = {"admin": admin}
    for role in ("operator", "viewer"):
        clients[role] = add_user(app, admin, f"fuzz-{role}", role)
    tokens = {role: add_token(clients[role], role, name=f"fuzz-{role}")[1] for role in ROLES}
    SampleStore.open(data / HISTORY_DB).close()  # the sample database exists, as once the clock has run
    # Fixed by the environment: a fuzzed PUT /api/settings cannot lower the rate limit under the run.
    # (Timeouts below only guard against a hang: a loaded CI machine may take seconds per answer.)
    web, base = start_gunicorn(data, work / "web.log", api_token_rate_limit="100000")
    try:
        yield base, tokens
    finally:
        web.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("fuzz")
def test_schemathesis_finds_no_500_and_no_answer_outside_the_description(live):
    require(schemathesis is not None, "schemathesis (pip install -r requirements-dev.txt)")
    base, tokens = live
    spec = requests.get(base + "/api/openapi.json", headers=bearer(tokens["viewer"]), timeout=120)
    assert spec.status_code == 200
    schema = schemathesis.openapi.from_dict(spec.json())
    checks = [no_500, status_code_conformance, content_type_conformance, response_schema_conformance]
    ran, calls = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in NOT_FUZZED:
            continue

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            for role in ROLES:
                response = case.call_and_validate(base_url=base, headers=bearer(tokens[role]), checks=checks,
                                                  timeout=120)
                calls.append((case.operation.label, role, response.status_code))

        fuzz()
        ran.append(operation.label)
    assert len(ran) == len(described(spec.json())) - len(NOT_FUZZED)
    assert {label for label, _, _ in calls} == set(ran)  # every operation was called, with every role
    assert {(label, role) for label, role, _ in calls} == {(label, role) for label in ran for role in ROLES}
    # The tokens reached past the gate: each role got some 2xx answers, and the viewer some 403s.
    assert all(any(r == role and 200 <= s < 300 for _, r, s in calls) for role in ROLES)
    assert any(r == "viewer" and s == 403 for _, r, s in calls)
    print(f"schemathesis: {len(calls)} requests over {len(ran)} operations")
