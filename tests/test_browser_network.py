"""The Connected Devices page in a real headless Chromium over gunicorn: rows, search, filter, edit, escaping.

The data folder is seeded the way the clock writes it (network.db through `NetworkStore`), so
the page is tested without waiting for a 5-minute inventory; the clock's side is tested in
test_network_collect.py against the simulator.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import browser_marks, chromium, first_login, open_page, sync_api

import config
from panfm.collector.logs import LOG_CAP
from panfm.models import DeviceConfig, TlsConfig
from panfm.storage.network_store import NETWORK_DB, NetworkStore
from throughput_storage import open_stores

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "initial-password-1"
NEW_PASSWORD = "browser-test-password-3"
HOSTILE = "<img src=x onerror=window.__pwned=1>"
HOSTILE_VENDOR = "<b onmouseover=window.__pwned=2>Evil</b>"
HOSTILE_APP = "<img src=x onerror=window.__pwned=3>"
HOSTILE_THREAT = "<svg onload=window.__pwned=5>"
HOSTILE_LOG = "<iframe src=javascript:window.__pwned=6>"
HOSTILE_TOP_APP = "<svg onload=window.__pwned=7>zoom"

pytestmark = browser_marks(uplot=False)


def row(mac: str, ip: str, **kw: Any) -> dict[str, Any]:
    return {"mac": mac, "ip": ip, "interface": "ethernet1/2", "vlan": None, "zone": "trust", "user": None,
            "vendor": None, "dhcp_hostname": None, "dns_name": None, "static": False, "randomized_mac": False,
            "lease_expires": None, **kw}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    subprocess.run([sys.executable, "scripts/build_static.py"], cwd=ROOT, check=True, capture_output=True)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    settings = config.load_settings(env={}, overrides={"data_dir": str(data)})
    stores = open_stores(settings)
    fw = stores.devices.add(DeviceConfig(id="", name="branch-fw", host="192.0.2.50", api_key="k",
                                         tls=TlsConfig("pin", fingerprint_sha256="ab" * 32), enabled=False))
    store = NetworkStore.open(data / NETWORK_DB)
    now = time.time()
    store.record(fw, now - 60, [
        row("00:1b:17:00:00:01", "10.0.0.1", dhcp_hostname="laptop-ana", user="corp\\ana", vendor="Palo Alto Networks"),
        row("da:00:00:00:00:02", "10.0.0.2", dhcp_hostname=HOSTILE, vendor=HOSTILE_VENDOR, randomized_mac=True,
            interface="ethernet1/1.100", vlan=100, zone="guest"),
        row("3c:22:fb:00:00:03", "10.0.0.3", dns_name="printer.corp.example", vendor="Apple, Inc.", static=True),
    ])
    for age, nbytes in ((7200, 5_000_000), (60, 2_000_000)):
        store.record_apps(fw, now - age, [
            {"name": "ssl", "category": "networking", "risk": 4, "bytes": nbytes, "sessions": 100, "sources": 9},
            {"name": HOSTILE_APP, "category": "media", "risk": 5, "bytes": 1000, "sessions": 1, "sources": 1},
        ], [{"name": "networking", "bytes": nbytes, "sessions": 100}])
    store.record_security(fw, now - 60, {
        "counts": {"critical": 1, "high": 2, "medium": 0, "low": 0}, "blocked_urls": 1,
        "latest": [
            {"kind": "threat", "time": "2026/12/04 10:00:00", "severity": "critical", "name": HOSTILE_THREAT,
             "src": "10.0.0.5", "dst": "203.0.113.9", "user": None, "action": "reset-both", "category": "virus",
             "url": None},
            {"kind": "threat", "time": "2026/12/04 10:00:01", "severity": "high", "name": "SMB RCE", "src": "10.0.0.6",
             "dst": "203.0.113.9", "user": "corp\\ana", "action": "reset-both", "category": "code-execution",
             "url": None},
            {"kind": "url", "time": "2026/12/04 10:00:02", "severity": "informational", "name": None,
             "src": "10.0.0.7", "dst": "198.51.100.1", "user": None, "action": "block-url", "category": "malware",
             "url": "bad.example/x"},
        ],
        "top_threats": [{"name": HOSTILE_THREAT, "count": 1}], "top_url_categories": [{"name": "malware", "count": 1}],
    })
    store.record_acc(fw, now - 60, [{"name": HOSTILE_THREAT, "count": 1, "severity": "critical"}],
                     [{"name": "malware", "count": 1}],
                     [{"name": "10.0.0.1", "user": "corp\\ana", "bytes": 2_000_000, "sessions": 100}])
    # A second firewall (no hosts, no samples) for the overview's threat, URL and top-application columns.
    hq = stores.devices.add(DeviceConfig(id="", name="zz-hq-fw", host="192.0.2.51", api_key="k",
                                         tls=TlsConfig("pin", fingerprint_sha256="cd" * 32), enabled=False))
    store.record_apps(hq, now - 60, [
        {"name": HOSTILE_TOP_APP, "category": "media", "risk": 5, "bytes": 9_000_000, "sessions": 9, "sources": 2},
        {"name": "ssl", "category": "networking", "risk": 4, "bytes": 10, "sessions": 1, "sources": 1},
    ], [])
    store.record_security(hq, now - 60, {"counts": {"critical": 0, "high": 5, "medium": 5, "low": 2},
                                         "blocked_urls": 40, "latest": [], "top_threats": [], "top_url_categories": []})
    store.record_security(hq, now - 7200, {"counts": {"critical": 900, "high": 0, "medium": 0, "low": 0},
                                           "blocked_urls": 900, "latest": [], "top_threats": [],
                                           "top_url_categories": []})  # older than an hour: not counted
    store.record_logs(fw, now - 30, {
        "system": [{"id": "1", "epoch": now - 90, "receive_time": "x", "severity": "critical", "subtype": "ha",
                    "opaque": HOSTILE_LOG},
                   {"id": "2", "epoch": now - 120, "receive_time": "y", "severity": "informational",
                    "subtype": "general", "opaque": "User admin logged in"}],
        "traffic": [{"id": "7", "epoch": now - 60, "src": "10.0.0.1", "dst": "203.0.113.1", "app": "ssl",
                     "action": "allow"}],
    })
    store.close()
    env = {**os.environ, "PANFM_DATA_DIR": str(data), "PANFM_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
    env.pop("PANFM_PORT", None)
    log = tmp_path / "web.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0",
             "--workers", "1", "--no-control-socket", "app:create_app()"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        found = None
        while found is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            time.sleep(0.1)
        assert found, log.read_text(errors="replace")[-2000:]
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def login(page: Any, web: str, target: str) -> None:
    """The first login through the forced password change, then the page under test."""
    first_login(page, web, PASSWORD, NEW_PASSWORD, start=target)
    page.goto(web + target)


def test_it_shows_top_applications_per_range_and_keeps_hostile_names_as_text(web: str, browser: Any) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    try:
        login(page, web, "/applications")
        ssl = page.locator('#app-table tbody tr[data-app="ssl"]')
        sync_api.expect(ssl).to_contain_text("2.0 MB")  # the last hour: one run
        hostile = page.locator("#app-table tbody tr").nth(1)
        sync_api.expect(hostile.locator("td").first).to_have_text(HOSTILE_APP)
        assert page.locator("#app-table img").count() == 0 and page.evaluate("window.__pwned") is None
        page.click('#app-ranges [data-range="24h"]')
        sync_api.expect(ssl).to_contain_text("7.0 MB")  # both runs
        sync_api.expect(page.locator("#cat-table tbody")).to_contain_text("networking")
        sync_api.expect(page.locator("#src-table tbody")).to_contain_text("corp\\ana")  # the ACC's top sources
        assert problems == []
    finally:
        page.context.close()


def test_the_firewall_page_shows_its_top_applications_and_links_the_network_pages(web: str, browser: Any) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    try:
        login(page, web, "/")
        page.goto(web + "/devices")
        device_id = page.locator("#devices tbody tr", has_text="branch-fw").get_attribute("data-id")
        page.goto(web + f"/firewall/{device_id}")
        top = page.locator("#fw-top-apps li[data-app]")
        sync_api.expect(top).to_have_count(2)
        sync_api.expect(top.first).to_contain_text("ssl · 2.0 MB")
        sync_api.expect(top.nth(1).locator("span")).to_have_text(HOSTILE_APP)
        assert page.evaluate("window.__pwned") is None
        page.click("text=Connected devices")
        sync_api.expect(page.locator("#cd-table tbody tr[data-mac]")).to_have_count(3)
        assert page.locator("#cd-firewall").input_value() == device_id
        assert problems == []
    finally:
        page.context.close()


def test_it_shows_threat_tiles_that_filter_the_latest_events(web: str, browser: Any) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    try:
        login(page, web, "/threats")
        sync_api.expect(page.locator('[data-count="high"]')).to_have_text("2")
        sync_api.expect(page.locator('[data-count="blocked_urls"]')).to_have_text("1")
        events = page.locator("#thr-events tbody tr[data-kind]")
        sync_api.expect(events).to_have_count(3)
        sync_api.expect(events.first.locator(".thr-name")).to_have_text(HOSTILE_THREAT)
        assert page.locator("#thr-events svg, #thr-top svg").count() == 0
        assert page.evaluate("window.__pwned") is None
        page.click('#thr-tiles [data-filter="url"]')
        sync_api.expect(events).to_have_count(1)
        sync_api.expect(events.first).to_contain_text("bad.example/x")
        page.click('#thr-tiles [data-filter="critical"]')
        sync_api.expect(events).to_have_count(1)
        sync_api.expect(page.locator("#thr-top")).to_contain_text(HOSTILE_THREAT)
        sync_api.expect(page.locator("#thr-top .badge")).to_have_text("critical")
        sync_api.expect(page.locator("#thr-top-from")).to_contain_text("from the ACC")
        assert problems == []
    finally:
        page.context.close()


def test_it_shows_system_and_traffic_logs_with_a_text_filter(web: str, browser: Any) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    try:
        login(page, web, "/logs")
        rows = page.locator("#log-table tbody tr[data-id]")
        sync_api.expect(rows).to_have_count(2)
        sync_api.expect(rows.first).to_contain_text(HOSTILE_LOG)
        assert page.locator("#log-table iframe").count() == 0 and page.evaluate("window.__pwned") is None
        sync_api.expect(page.locator("#log-note")).to_contain_text(f"at most {LOG_CAP} entries per fetch")
        page.fill("#log-q", "admin")
        sync_api.expect(rows).to_have_count(1)
        page.fill("#log-q", "")
        page.select_option("#log-type", "traffic")
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(page.locator("#log-table thead")).to_contain_text("Destination")
        assert problems == []
    finally:
        page.context.close()


def test_it_lists_searches_filters_and_edits_connected_devices_and_keeps_hostile_names_as_text(
    web: str, browser: Any
) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1400, "height": 900})
    try:
        login(page, web, "/connected-devices")

        rows = page.locator("#cd-table tbody tr[data-mac]")
        sync_api.expect(rows).to_have_count(3)
        hostile = page.locator('#cd-table tbody tr[data-mac="da:00:00:00:00:02"]')
        # The hostname and vendor render as the text they are: no <img>/<b> element, no script ran.
        sync_api.expect(hostile.locator(".cd-hostname")).to_have_text(HOSTILE)
        sync_api.expect(hostile).to_contain_text(HOSTILE_VENDOR)
        assert page.locator("#cd-table img, #cd-table b").count() == 0
        assert page.evaluate("window.__pwned") is None
        sync_api.expect(hostile).to_contain_text("random")

        # Search and filter narrow the list.
        page.fill("#cd-q", "ana")
        sync_api.expect(rows).to_have_count(1)
        sync_api.expect(rows.first).to_contain_text("laptop-ana")
        page.fill("#cd-q", "")
        sync_api.expect(rows).to_have_count(3)
        page.fill("#cd-zone", "guest")
        page.dispatch_event("#cd-zone", "change")
        sync_api.expect(rows).to_have_count(1)
        page.fill("#cd-zone", "")
        page.dispatch_event("#cd-zone", "change")
        sync_api.expect(rows).to_have_count(3)

        # Sorting by hostname descending puts the reverse-DNS name first.
        page.click('#cd-table [data-sort="hostname"]')
        page.click('#cd-table [data-sort="hostname"]')
        sync_api.expect(rows.first).to_contain_text("printer.corp.example")

        # The admin names the printer; the name shows as the custom hostname and is searchable.
        printer = page.locator('#cd-table tbody tr[data-mac="3c:22:fb:00:00:03"]')
        printer.get_by_role("button", name="Edit").click()
        page.fill("#cd-form [name=name]", "Floor 2 <printer>")
        page.fill("#cd-form [name=tags]", "printer floor2")
        page.fill("#cd-form [name=location]", "Room 2.14")
        page.click("#cd-save")
        sync_api.expect(printer.locator(".cd-hostname")).to_have_text("Floor 2 <printer>")
        sync_api.expect(printer).to_contain_text("printer · floor2 · Room 2.14")
        page.fill("#cd-q", "floor2")
        sync_api.expect(rows).to_have_count(1)
        assert problems == []
    finally:
        page.context.close()


def test_the_overview_shows_threats_blocked_urls_and_the_top_application_per_firewall_and_sorts_them(
    web: str, browser: Any
) -> None:
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1600, "height": 900})
    try:
        login(page, web, "/")
        rows = page.locator("#fleet tbody tr")
        sync_api.expect(rows).to_have_count(2)
        branch = page.locator("#fleet tbody tr", has_text="branch-fw")
        hq = page.locator("#fleet tbody tr", has_text="zz-hq-fw")
        sync_api.expect(branch.locator('[data-field="threats"]')).to_have_text("3")
        sync_api.expect(branch.locator('[data-field="blocked_urls"]')).to_have_text("1")
        sync_api.expect(branch.locator('[data-field="top_app"]')).to_have_text("ssl")
        sync_api.expect(hq.locator('[data-field="threats"]')).to_have_text("12")  # the last hour only
        sync_api.expect(hq.locator('[data-field="blocked_urls"]')).to_have_text("40")
        sync_api.expect(hq.locator('[data-field="top_app"]')).to_have_text(HOSTILE_TOP_APP)
        assert page.locator("#fleet svg").count() == 0 and page.evaluate("window.__pwned") is None
        assert "critical 1" in (branch.locator('[data-field="threats"]').get_attribute("title") or "")
        assert branch.locator("a").count() == 1  # the firewall's name stays the row's one link

        def firewalls() -> list[str]:
            return [t.split("\n")[0].strip() for t in rows.locator("td:first-child").all_inner_texts()]

        page.click('#fleet th[data-sort="threats"] button')  # most threats first
        sync_api.expect(rows.first).to_contain_text("zz-hq-fw")
        page.click('#fleet th[data-sort="threats"] button')
        sync_api.expect(rows.first).to_contain_text("branch-fw")
        page.click('#fleet th[data-sort="blocked_urls"] button')
        assert firewalls() == ["zz-hq-fw", "branch-fw"]
        page.click('#fleet th[data-sort="top_app"] button')  # A to Z: "<svg..." sorts before "ssl"
        assert firewalls() == ["zz-hq-fw", "branch-fw"]
        page.click('#fleet th[data-sort="top_app"] button')
        assert firewalls() == ["branch-fw", "zz-hq-fw"]
        sync_api.expect(page.locator('#fleet th[data-sort="top_app"]')).to_have_attribute("aria-sort", "descending")
        assert problems == []
    finally:
        page.context.close()
