"""The first look, in a real Chromium: `make demo`'s program with its backfilled week.

Runs `python -m panfm.ops.demo` over a temporary folder (simulator, backfill, clock, gunicorn),
logs in, and checks what a newcomer sees: the "demo data" badge, status counts that match
/api/overview, 7-day fleet and firewall charts that draw, sparklines, the range and chosen series
kept in the URL across a reload, and the new elements in dark mode at phone width. Screenshots
land in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import browser_marks, chromium, first_login, open_page, series_pixels, sync_api

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "demo-browser-initial-1"
NEW_PASSWORD = "demo-browser-password-2"

pytestmark = browser_marks()

INKED_PIXELS = """(canvas) => {
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
}"""
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m panfm.ops.demo` on a free port over a new folder; yields its base URL."""
    subprocess.run([sys.executable, "scripts/build_static.py"], cwd=ROOT, check=True, capture_output=True)
    work = tmp_path_factory.mktemp("demo-browser")
    port = _free_port()
    log = work / "demo.log"
    env = {**os.environ, "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_REFRESH_INTERVAL": "5", "PYTHONUNBUFFERED": "1"}
    env.pop("PANFM_PORT", None)
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "panfm.ops.demo", "--data-dir", str(work / "data"),
                                 "--port", str(port)], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not re.search(r"Booting worker", log.read_text(errors="replace")):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        assert "samples of 3 firewalls written" in log.read_text(errors="replace")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends: the demo stops its whole tree
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def logged_in(demo: str, browser: Any) -> dict[str, Any]:
    """Log in once through the forced password change; later contexts reuse the session cookie."""
    page = open_page(browser, [], viewport={"width": 1280, "height": 900})
    first_login(page, demo, PASSWORD, NEW_PASSWORD, start="/login")
    state = page.context.storage_state()
    page.context.close()
    return {"base": demo, "state": state}


def _page(browser: Any, logged_in: dict[str, Any], problems: list[str], **options: Any) -> Any:
    return open_page(browser, problems, console=True, storage_state=logged_in["state"], **options)


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"demo-{name}.png"), full_page=True)


def test_the_overview_shows_the_backfilled_week_as_a_picture(browser: Any, logged_in: dict[str, Any]) -> None:
    base = logged_in["base"]
    problems: list[str] = []
    page = _page(browser, logged_in, problems, viewport={"width": 1280, "height": 900}, color_scheme="light")
    try:
        page.goto(base + "/")
        sync_api.expect(page.locator("#demo-badge")).to_have_text("demo data")
        # Every simulated firewall shows a live rate once the clock polled twice.
        page.wait_for_function("""() => {
            const cells = [...document.querySelectorAll('#fleet td[data-field=through_mbps]')];
            return cells.length === 3 && cells.every(c => /\\d/.test(c.textContent));
        }""")
        api = page.evaluate("async () => (await fetch('/api/overview')).json()")
        assert api["demo_data"] is True
        page.wait_for_timeout(300)
        for key, count in api["counts"].items():
            cell = page.locator(f'#status-counts li[data-health="{key}"] .n')
            if cell.count():
                assert cell.inner_text() == str(count), key
        assert page.locator("#attention li").count() >= 1

        page.click('#ranges button[data-range="7d"]')
        assert page.url.endswith("/?range=7d")
        sync_api.expect(page.locator("#fleet-picture")).to_have_attribute("data-range", "7d")
        page.wait_for_timeout(300)  # uPlot paints on the next animation frame
        assert series_pixels(page, "#chart-fleet-throughput canvas") > 500, "fleet throughput has no area"
        assert series_pixels(page, "#chart-fleet-sessions canvas") > 500, "fleet sessions have no area"
        # Sparklines: a last-hour line per firewall from the backfilled samples.
        page.wait_for_function("""() => [...document.querySelectorAll('canvas.sparkline')].length === 3""")
        page.wait_for_timeout(1000)
        inked = [page.evaluate(INKED_PIXELS, c) for c in page.locator("canvas.sparkline").element_handles()]
        assert len(inked) == 3 and min(inked) > 20, inked
        _shot(page, "overview-7d")

        page.reload()
        sync_api.expect(page.locator('#ranges button[data-range="7d"]')).to_have_attribute("aria-pressed", "true")
        sync_api.expect(page.locator("#fleet-picture")).to_have_attribute("data-range", "7d")
    finally:
        page.context.close()
    assert problems == []


def test_the_firewall_page_keeps_range_and_series_in_the_url(browser: Any, logged_in: dict[str, Any]) -> None:
    base = logged_in["base"]
    problems: list[str] = []
    page = _page(browser, logged_in, problems, viewport={"width": 1280, "height": 900}, color_scheme="light")
    try:
        page.goto(base + "/")
        link = page.locator("#fleet tbody tr a").first
        link.wait_for()
        device_path = link.get_attribute("href")
        page.goto(base + device_path + "?range=7d")
        root = page.locator("#firewall")
        sync_api.expect(root).to_have_attribute("data-history-range", "7d")
        assert int(root.get_attribute("data-history-points") or 0) > 500  # a week of 5-minute buckets, grouped
        sync_api.expect(page.locator("#demo-badge")).to_be_visible()
        # The demo marks ethernet1/1 as the uplink: WAN in/out tiles are shown, with a rate.
        sync_api.expect(page.locator("#live [data-field=uplink_in_mbps]")).to_have_text(re.compile(r"\d"))
        sync_api.expect(page.locator("#uplink-names")).to_have_text("ethernet1/1")
        assert page.locator("#live .how").count() >= 9  # every tile says how it is measured
        page.wait_for_timeout(300)
        assert series_pixels(page, "#chart-throughput canvas") > 200, "7-day throughput has no line"
        # Hide "WAN in" (series 3) in the throughput legend; the URL remembers it.
        page.locator("#chart-throughput .u-legend .u-series").nth(3).click()
        assert "hide=throughput.3" in page.url and "range=7d" in page.url
        page.click('#ranges button[data-range="24h"]')
        assert "range=24h" in page.url and "hide=throughput.3" in page.url
        page.reload()
        sync_api.expect(page.locator('#ranges button[data-range="24h"]')).to_have_attribute("aria-pressed", "true")
        sync_api.expect(root).to_have_attribute("data-history-range", "24h")
        sync_api.expect(page.locator("#chart-throughput .u-legend .u-series").nth(3)).to_have_class(
            re.compile(r"u-off"))
        _shot(page, "firewall-24h")
        # A custom window survives a reload too, and shows in the form.
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3 * 86400))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))
        page.goto(base + device_path + f"?range=custom&start={start}&end={end}")
        sync_api.expect(root).to_have_attribute("data-history-range", "custom")
        assert int(root.get_attribute("data-history-points") or 0) > 100  # a day of the backfilled week
        assert page.locator("#custom-range").is_visible() and page.input_value("#range-start")
    finally:
        page.context.close()
    assert problems == []


@pytest.mark.parametrize("width", [390, 768])
def test_the_new_elements_fit_a_phone_in_dark_mode(browser: Any, logged_in: dict[str, Any], width: int) -> None:
    base = logged_in["base"]
    problems: list[str] = []
    page = _page(browser, logged_in, problems, viewport={"width": width, "height": 844}, color_scheme="dark")
    try:
        page.goto(base + "/?range=7d")
        sync_api.expect(page.locator("#fleet-picture")).to_have_attribute("data-range", "7d")
        assert page.evaluate(OVERFLOW) <= 1, "the overview scrolls sideways"
        assert page.locator("#status-counts").is_visible() and page.locator("#attention").is_visible()
        _shot(page, f"overview-dark-{width}px")
        device_path = page.locator("#fleet tbody tr a").first.get_attribute("href")
        page.goto(base + device_path + "?range=7d")
        sync_api.expect(page.locator("#firewall")).to_have_attribute("data-history-range", "7d")
        assert page.evaluate(OVERFLOW) <= 1, "the firewall page scrolls sideways"
        _shot(page, f"firewall-dark-{width}px")
    finally:
        page.context.close()
    assert problems == []


def test_the_devices_form_marks_uplinks_from_the_interfaces_and_their_zones(
    browser: Any, logged_in: dict[str, Any]
) -> None:
    base = logged_in["base"]
    problems: list[str] = []
    page = _page(browser, logged_in, problems, viewport={"width": 1280, "height": 900}, color_scheme="light")
    try:
        page.goto(base + "/devices")
        row = page.locator("#devices tbody tr", has_text="fw-003")
        sync_api.expect(row).to_contain_text("WAN: ethernet1/1")  # the demo's mark
        row.get_by_role("button", name="Edit").click()
        marked = page.locator('#dev-uplinks input[value="ethernet1/1"]')
        marked.wait_for()
        # The form lists the interfaces with their zones, so the one facing untrust is easy to find.
        # Zones come from the clock's inventory of the firewall (spread over its window, or right
        # after the first cycle): the open form reloads them until they are there. A new device's
        # interfaces are stored as soon as they are in (`partial`), before its log queries and
        # ACC reports, so this waits for two calls of the first inventory, not for all of it.
        sync_api.expect(page.locator("#dev-uplinks")).to_contain_text("ethernet1/1 (untrust)", timeout=120_000)
        assert marked.is_checked()
        marked.uncheck()
        page.locator('#dev-uplinks input[value="ethernet1/2"]').check()
        page.click("#dev-save")
        sync_api.expect(row).to_contain_text("WAN: ethernet1/2")
        device_id = row.get_attribute("data-id")
        doc = page.evaluate("async (id) => (await fetch('/api/devices/' + id)).json()", device_id)
        assert doc["uplinks"] == ["ethernet1/2"]
    finally:
        page.context.close()
    assert problems == []
