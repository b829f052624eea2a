"""The dashboard in a real headless Chromium against the real simulator, clock and gunicorn.

One journey, as an admin would make it: log in, change the initial password, add a simulated
firewall after checking its certificate fingerprint, watch throughput arrive on the overview,
open the firewall page, see the charts drawn, switch ranges, choose counted interfaces. A
hostile hostname from a firewall stays text. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import browser as pw_helpers
from helpers.browser import browser_marks, chromium, open_page, series_pixels, sync_api
from helpers.live import Proc

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
REFRESH_S = 5
PASSWORD = "initial-password-1"
NEW_PASSWORD = "browser-test-password-2"
XSS = "<script>alert(1)</script>"

pytestmark = browser_marks()

if sync_api is not None:
    sync_api.expect.set_options(timeout=30_000)


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory, sim_fleet: Any) -> Iterator[dict[str, Any]]:
    """Start the clock and the web (gunicorn, 2 workers, ephemeral port) over a fresh data folder.

    One per test: no test depends on another having changed the password first.
    """
    subprocess.run([sys.executable, "scripts/build_static.py"], cwd=ROOT, check=True, capture_output=True)
    work = tmp_path_factory.mktemp("browser")
    data = work / "data"
    data.mkdir(mode=0o700)
    env = {
        **os.environ,
        "PANFM_DATA_DIR": str(data),
        "PANFM_REFRESH_INTERVAL": str(REFRESH_S),
        "PANFM_ADMIN_PASSWORD": PASSWORD,
        "PANFM_ALLOWED_DEVICE_NETWORKS": "127.0.0.0/8",  # the simulator's loopback
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PANFM_PORT", None)
    clock = Proc([sys.executable, "clock.py"], env, work / "clock.log")
    web = Proc(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
         "--workers", "2", "--no-control-socket", "app:create_app()"],
        env,
        work / "web.log",
    )
    try:
        port = web.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        web.wait_for(r"Booting worker", timeout=15)
        web.wait_answering(f"http://127.0.0.1:{port}/api/health")
        yield {"base": f"http://127.0.0.1:{port}", "data": data, "clock": clock, "web": web, "sim": sim_fleet}
    finally:
        web.stop()
        clock.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def first_login(page: Any, base: str) -> None:
    """Log in with the initial password and make the change the server insists on."""
    pw_helpers.first_login(page, base, PASSWORD, NEW_PASSWORD)


def add_disabled_device(page: Any, name: str) -> str:
    """Add a disabled, pinned device through the API as the logged-in page would; return its id."""
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    status, doc = page.evaluate(
        """async ([token, name]) => {
            const r = await fetch('/api/devices', {method: 'POST', headers: {'Content-Type': 'application/json',
              'X-CSRFToken': token}, body: JSON.stringify({name, host: '192.0.2.77', api_key: 'k', enabled: false,
              tls: {mode: 'pin', fingerprint_sha256: 'ab'.repeat(32)}})});
            return [r.status, await r.json()];
        }""",
        [token, name],
    )
    assert status == 201, doc
    return str(doc["id"])


def test_it_walks_an_admin_from_first_login_to_a_drawn_chart(stack: dict[str, Any], browser: Any) -> None:
    base = stack["base"]
    sim_device = stack["sim"].devices[0]
    problems: list[str] = []
    page = open_page(browser, problems, console=True, viewport={"width": 1280, "height": 900}, color_scheme="light")
    context = page.context
    try:
        # 1. Log in with the initial password: the server forces a password change first.
        first_login(page, base)
        page.wait_for_selector("#empty:not([hidden])")

        # 2. Add the simulated firewall: test connection, compare the fingerprint, confirm.
        page.goto(base + "/devices")
        page.click("#add-device")
        page.fill("#dev-name", "sim-fw-1")
        page.fill("#dev-host", sim_device["host"])
        page.fill("#dev-port", str(sim_device["port"]))
        page.fill("#dev-api-key", sim_device["api_key"])
        page.click("#dev-save")
        sync_api.expect(page.locator("#device-message")).to_contain_text("Test the connection first")
        page.click("#dev-test")
        fingerprint = page.locator("#test-fingerprint")
        sync_api.expect(fingerprint).to_have_text(sim_device["tls_fingerprint_sha256"], timeout=15_000)
        sync_api.expect(page.locator("#test-hostname")).to_have_text(sim_device["name"])
        shot(page, "1-test-connection")
        page.check("#dev-trust")
        page.click("#dev-save")
        row = page.locator("#devices tbody tr", has_text="sim-fw-1")
        sync_api.expect(row).to_be_visible()
        device_id = row.get_attribute("data-id")
        assert device_id

        # 3. Throughput arrives on the overview within two clock cycles (the first poll only sets the baseline).
        page.goto(base + "/")
        fleet_row = page.locator(f'#fleet tbody tr[data-id="{device_id}"]')
        inbound = fleet_row.locator('td[data-field="through_mbps"]')
        # Timeline: next cycle polls once (no rate yet), the cycle after gives a rate, the page refreshes.
        sync_api.expect(inbound).to_have_text(re.compile(r"^[\d,]+\.\d$"), timeout=4 * REFRESH_S * 1000 + 5_000)
        assert float(inbound.inner_text().replace(",", "")) > 0
        sync_api.expect(fleet_row).to_have_class(re.compile(r"state-up"))
        shot(page, "2-overview")

        # 4. The firewall page draws its charts from history.
        fleet_row.locator("a").click()
        page.wait_for_url(base + f"/firewall/{device_id}")
        root = page.locator("#firewall")
        # The first stored sample has no rate yet: wait for three, i.e. two throughput points.
        deadline = time.monotonic() + 4 * REFRESH_S + 10
        while time.monotonic() < deadline and int(root.get_attribute("data-history-points") or 0) < 3:
            page.wait_for_timeout(500)
        assert int(root.get_attribute("data-history-points") or 0) >= 3
        sync_api.expect(page.locator("#fw-name")).to_have_text("sim-fw-1")
        sync_api.expect(page.locator("#live [data-field=through_mbps]")).not_to_have_text("—")
        # The busiest dataplane core of the latest sample, as stored by the clock (issue 3).
        sync_api.expect(page.locator("#live [data-field=cpu_busiest_core]")).to_have_text(
            re.compile(r"^% · \S+ core \d+$"))
        shot(page, "3-firewall")

        # 5. Every range answers; long ranges have no rollups yet and say so instead of drawing zeros.
        for rng in ("6h", "24h", "7d", "30d", "90d", "1h"):
            page.click(f'#ranges button[data-range="{rng}"]')
            sync_api.expect(root).to_have_attribute("data-history-range", rng)
        # A custom window of the last few minutes spreads the few samples across the chart.
        page.click('#ranges button[data-range="custom"]')
        page.fill("#range-start", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 3 * REFRESH_S)))
        page.fill("#range-end", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 2)))
        page.click("#custom-range button[type=submit]")
        sync_api.expect(root).to_have_attribute("data-history-range", "custom")
        assert int(root.get_attribute("data-history-points") or 0) >= 2
        page.wait_for_timeout(200)  # uPlot paints on the next animation frame
        assert series_pixels(page, "#chart-throughput canvas") > 50, "throughput chart has no line"
        assert series_pixels(page, "#chart-sessions canvas") > 50, "sessions chart has no line"
        shot(page, "4-custom-range")

        # 6. Choose counted interfaces on the edit dialog (listed once the firewall was polled).
        page.goto(base + "/devices")
        page.locator("#devices tbody tr", has_text="sim-fw-1").get_by_role("button", name="Edit").click()
        first_port = page.locator("#dev-interfaces input[type=checkbox]").first
        first_port.wait_for(timeout=10_000)
        port_name = first_port.get_attribute("value")
        first_port.check()
        page.click("#dev-save")
        sync_api.expect(page.locator("#devices tbody tr", has_text="sim-fw-1")).to_contain_text(str(port_name))
    finally:
        shot(page, "9-last")
        context.close()
    assert problems == []


def test_it_keeps_a_hostile_hostname_inert(stack: dict[str, Any], browser: Any) -> None:
    from panfm.storage.samples import HISTORY_DB, SampleStore

    base = stack["base"]
    problems: list[str] = []
    page = open_page(browser, problems, viewport={"width": 1024, "height": 768}, color_scheme="dark")
    context = page.context
    try:
        first_login(page, base)
        # A disabled device, so the clock never overwrites the inventory this test plants.
        device_id = add_disabled_device(page, 'fw <img src=x onerror="window.__xss=1">')
        with SampleStore.open(stack["data"] / HISTORY_DB) as store:
            store.write_inventory(
                device_id,
                time.time(),
                {"system": {"hostname": XSS, "model": "PA-440", "app_version": '<img src=x onerror="window.__xss=2">'},
                 "licenses": [{"feature": XSS, "expires": None, "expired": False}], "errors": {}},
            )
        for path in ("/", "/devices", f"/firewall/{device_id}"):
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
        sync_api.expect(page.locator("#system")).to_contain_text(XSS)
        sync_api.expect(page.locator("#fw-name")).to_have_text('fw <img src=x onerror="window.__xss=1">')
        sync_api.expect(page.locator("#licenses")).to_contain_text(XSS)
        assert page.evaluate("window.__xss") is None
        assert page.locator("#system script, #fw-name img, #system-extra img").count() == 0
        shot(page, "5-hostile-hostname-dark")
    finally:
        context.close()
    assert problems == []


# The elements that stick out of the page (not counting those inside a scrolling .table-wrap).
WIDER_THAN_THE_PAGE = """() => [...document.querySelectorAll('body *')]
    .filter(e => !e.closest('.table-wrap')
                 && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .slice(0, 5).map(e => `${e.tagName.toLowerCase()}#${e.id}: ${Math.round(e.getBoundingClientRect().width)} px`)"""


@pytest.mark.parametrize("viewport", [{"width": 768, "height": 1024}, {"width": 390, "height": 844}],
                         ids=["tablet", "phone"])
def test_every_page_fits_a_tablet_and_a_phone_without_sideways_scrolling(
    stack: dict[str, Any], browser: Any, viewport: dict[str, int]
) -> None:
    base = stack["base"]
    problems: list[str] = []
    page = open_page(browser, problems, viewport=viewport, color_scheme="light")
    context = page.context
    try:
        first_login(page, base)
        device_id = add_disabled_device(page, "fw-branch-office-with-a-long-name-01")
        wide: dict[str, list[str]] = {}
        for path in ("/", "/devices", f"/firewall/{device_id}", "/alerts", "/settings", "/clock"):
            page.goto(base + path)
            page.wait_for_load_state("networkidle")
            assert page.locator("nav").first.is_visible(), path
            # Wide tables scroll inside their own box (.table-wrap); the page itself must not.
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 1:
                wide[path] = page.evaluate(WIDER_THAN_THE_PAGE)
        shot(page, f"6-{viewport['width']}px-clock")
    finally:
        context.close()
    assert wide == {}, f"pages wider than {viewport['width']} px: {wide}"
    assert problems == []
