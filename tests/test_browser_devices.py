"""The devices form in a real headless Chromium against gunicorn: uplink zones that arrive after it opened.

A firewall's zones come with the clock's inventory, which may arrive after its interfaces (the
inventory is spread over its window). The edit form, opened before, lists the interfaces
without zones and shows the zones once they are stored, without being reopened and keeping
what the admin ticked meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import browser_marks, chromium, log_in, open_page, sync_api
from helpers.live import start_gunicorn
from helpers.web import NEW, add_device, make_client

from throughput_storage import HISTORY_DB, SampleStore

pytestmark = browser_marks()


def _inventory(zones: bool) -> dict[str, Any]:
    return {"interfaces": [{"name": "ethernet1/1", "zone": "untrust" if zones else None},
                           {"name": "ethernet1/2", "zone": "trust" if zones else None}]}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """gunicorn over a data folder with one disabled firewall whose inventory has no zone yet."""
    data = tmp_path / "data"
    _, admin = make_client(data)
    device_id = add_device(admin, "fw-zones", "192.0.2.80", enabled=False)  # the clock never polls it
    with SampleStore.open(data / HISTORY_DB) as store:
        store.write_inventory(device_id, time.time(), _inventory(zones=False))
    web, base = start_gunicorn(data, tmp_path / "web.log")
    try:
        yield {"base": base, "data": data, "device_id": device_id}
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_the_open_uplink_form_shows_zones_that_arrive_later_and_keeps_the_ticks(
    stack: dict[str, Any], browser: Any
) -> None:
    base = stack["base"]
    problems: list[str] = []
    page = open_page(browser, problems, timeout_ms=60_000, viewport={"width": 1280, "height": 900})
    try:
        log_in(page, base, "admin", NEW)
        page.wait_for_url(base + "/")
        page.goto(base + "/devices")
        row = page.locator("#devices tbody tr", has_text="fw-zones")
        row.get_by_role("button", name="Edit").click()
        uplinks = page.locator("#dev-uplinks")
        wan = page.locator('#dev-uplinks input[value="ethernet1/1"]')
        wan.wait_for()
        sync_api.expect(uplinks).not_to_contain_text("(untrust)")  # no inventory zone yet
        wan.check()
        # The clock's inventory brings the zones while the form stays open.
        with SampleStore.open(stack["data"] / HISTORY_DB) as store:
            store.write_inventory(stack["device_id"], time.time(), _inventory(zones=True))
        sync_api.expect(uplinks).to_contain_text("ethernet1/1 (untrust)", timeout=60_000)  # the form reloads every 5 s
        sync_api.expect(uplinks).to_contain_text("ethernet1/2 (trust)")
        assert wan.is_checked()  # the tick survived the refresh
        page.click("#dev-save")
        sync_api.expect(row).to_contain_text("WAN: ethernet1/1")
    finally:
        page.context.close()
    assert problems == []
