"""Roles in a real headless Chromium against gunicorn: what a viewer sees and may do, and an operator's acknowledgement.

1. A viewer sees no edit controls (devices, alert rules, channels, windows, settings, users)
   and a direct POST from their own page session gets 403 naming the role that would allow it.
2. An admin creates an operator on the Users page; the operator logs in, changes the password
   and acknowledges an alert; the admin's Audit page shows both actions by name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import browser_marks, change_password, chromium, log_in, open_page, sync_api
from helpers.live import start_gunicorn
from helpers.web import FP, NEW, add_user, make_client

from panfm.alerting.run import run_evaluation
from panfm.models import CycleResult, DeviceSample, DeviceStatus

OPERATOR_FIRST = "operator-first-password"
OPERATOR_NEW = "operator-own-password-2"

pytestmark = browser_marks()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """gunicorn over a data folder with an admin, a viewer `vera`, a device and one firing alert."""
    data = tmp_path / "data"
    app, admin = make_client(data)
    add_user(app, admin, "vera", "viewer")
    r = admin.post("/api/devices", json={"name": "fw-roles", "host": "192.0.2.77", "api_key": "k", "enabled": False,
                                         "tls": {"mode": "pin", "fingerprint_sha256": FP}})
    device_id = r.get_json()["id"]
    rule = admin.post("/api/alerts/rules", json={"name": "CPU high", "metric": "cpu_dataplane_pct", "operator": ">",
                                                 "threshold": 90, "for_s": 0}).get_json()
    now = time.time()
    cycle = CycleResult(started=now - 1, finished=now, samples=(DeviceSample(device_id, now, cpu_dataplane_pct=97.0),),
                        interfaces=(), baselines=(), statuses=(DeviceStatus(device_id, "up"),))
    run_evaluation(data / "alerts.db", [rule], [], [], cycle, {}, now)
    web, base = start_gunicorn(data, tmp_path / "web.log")
    try:
        yield {"base": base, "web": web}
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def new_page(browser: Any, problems: list[str]) -> Any:
    return open_page(browser, problems, timeout_ms=60_000, dialogs="accept", viewport={"width": 1280, "height": 900})


def post_from_page(page: Any, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST with the page's own session cookie and CSRF token, as a hand-made request from devtools would."""
    return tuple(page.evaluate(
        """async ([path, body]) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json',
              'X-CSRFToken': token}, body: JSON.stringify(body)});
            return [r.status, await r.json()];
        }""",
        [path, body],
    ))


def test_a_viewer_sees_no_edit_controls_and_a_direct_post_gets_403(stack: dict[str, Any], browser: Any) -> None:
    base = stack["base"]
    problems: list[str] = []
    page = new_page(browser, problems)
    log_in(page, base, "vera", NEW)
    page.wait_for_url(base + "/")
    expect = sync_api.expect
    expect(page.locator("#who")).to_have_text("vera (viewer)")
    expect(page.locator("nav a", has_text="Users")).to_have_count(0)
    expect(page.locator("nav a", has_text="Audit")).to_have_count(0)

    page.goto(base + "/devices")
    expect(page.locator("#devices tbody tr")).to_have_count(1)
    expect(page.locator("#add-device")).to_be_hidden()
    expect(page.locator("#devices td.actions").first).to_be_hidden()

    page.goto(base + "/alerts")
    expect(page.locator("#alerts tbody tr")).to_have_count(1)
    expect(page.locator("#alerts button", has_text="Acknowledge")).to_be_hidden()
    for selector in ("#add-rule", "#template-form", "#channel-form", "#window-form"):
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator("#rules tbody tr")).to_have_count(1)
    expect(page.locator("#rules td.actions").first).to_be_hidden()

    page.goto(base + "/settings")
    expect(page.locator("#settings-form button[type=submit]")).to_be_hidden()
    expect(page.locator("#password-form button[type=submit]")).to_be_visible()  # her own password stays hers

    status, body = post_from_page(page, "/api/alerts/rules", {"name": "sneaky", "metric": "cpu_dataplane_pct",
                                                              "operator": ">", "threshold": 1})
    assert (status, body["error"], body["required_role"], body["role"]) == (403, "forbidden", "operator", "viewer")
    status, body = post_from_page(page, "/api/devices", {"name": "x", "host": "192.0.2.9"})
    assert (status, body["required_role"]) == (403, "admin")
    page.goto(base + "/users")
    expect(page.locator("body")).to_contain_text("This needs the admin role; you are viewer.")

    page.goto(base + "/tokens")
    expect(page.locator("#token-role option")).to_have_count(1)  # no role above her own is offered
    page.fill("#token-name", "noc-screen")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-value")).to_have_text(re.compile(r"^pfm_[A-Za-z0-9_-]{43}$"))
    expect(page.locator("#tokens tbody tr")).to_have_count(1)
    expect(page.locator("#tokens tbody tr").first).not_to_contain_text("pfm_")  # the list never shows it

    page.goto(base + "/api-docs")
    expect(page.locator(".api-op h3", has_text="/api/users")).to_have_count(4)  # GET, POST; PUT, DELETE <id>
    expect(page.locator("#post_api_tokens")).to_contain_text("Role: viewer")
    assert problems == []


def test_an_admin_creates_an_operator_who_acknowledges_and_the_audit_shows_both(stack: dict[str, Any],
                                                                                 browser: Any) -> None:
    base = stack["base"]
    expect = sync_api.expect
    problems: list[str] = []
    admin = new_page(browser, problems)
    log_in(admin, base, "admin", NEW)
    admin.wait_for_url(base + "/")
    admin.click("nav a:has-text('Users')")
    admin.wait_for_url(base + "/users")
    admin.fill("#user-name", "oscar")
    admin.select_option("#user-role", "operator")
    admin.fill("#user-password", OPERATOR_FIRST)
    admin.click("#user-add")
    expect(admin.locator("#users-message")).to_contain_text("oscar added as operator")
    expect(admin.locator("#users tr[data-user='oscar'] select")).to_have_value("operator")

    operator = new_page(browser, problems)
    log_in(operator, base, "oscar", OPERATOR_FIRST)
    change_password(operator, base, OPERATOR_FIRST, OPERATOR_NEW)
    operator.goto(base + "/alerts")
    expect(operator.locator("#add-rule")).to_be_visible()  # an operator edits rules
    operator.click("#alerts button:has-text('Acknowledge')")
    expect(operator.locator("#alerts tbody tr").first).to_contain_text("oscar")
    operator.goto(base + "/devices")
    expect(operator.locator("#add-device")).to_be_hidden()  # but not devices

    admin.click("nav a:has-text('Audit')")
    admin.wait_for_url(base + "/audit")
    rows = admin.locator("#audit tbody tr")
    expect(rows.filter(has_text="alert.acknowledge")).to_have_count(1)
    expect(rows.filter(has_text="alert.acknowledge").first).to_contain_text("oscar")
    created = rows.filter(has_text="user.create").filter(has_text="oscar")
    expect(created).to_have_count(1)
    expect(created.first.locator("td").nth(1)).to_have_text("admin")
    expect(created.first).to_contain_text("role=operator")
    expect(created.first).not_to_contain_text(OPERATOR_FIRST)
    assert problems == []
