"""Playwright helpers shared by the browser tests: Chromium, the marks, a watched page, the login steps."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import requires

from helpers.live import ROOT

try:
    from playwright import sync_api
except ImportError:  # named by the `requires` mark of `browser_marks`: a failure under CI=true
    sync_api = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Canvas pixels that are clearly blue (the first series, light theme); axes and grid are grey.
BLUE_PIXELS = """(sel) => {
    const canvas = document.querySelector(sel);
    if (!canvas) return -1;
    const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && px[i + 2] - px[i] > 80) n++;
    return n;
}"""


def series_pixels(page: Any, selector: str) -> int:
    """How many of the chart canvas's pixels draw the first series (-1: no such canvas)."""
    return int(page.evaluate(BLUE_PIXELS, selector))


def browser_marks(*, uplot: bool = True) -> list[pytest.MarkDecorator]:
    """A browser test module's `pytestmark`: slow, one xdist group, and its prerequisites named."""
    marks = [
        pytest.mark.browser,
        pytest.mark.slow,
        pytest.mark.xdist_group("browser"),
        requires(Path(CHROMIUM).exists(), "Debian's chromium (apt-get install -y chromium)"),
    ]
    if uplot:
        uplot_dir = ROOT / "node_modules" / "uplot"
        marks.append(requires(uplot_dir.is_dir(), "node_modules/uplot: run `make node` (npm ci)"))
    marks.append(requires(sync_api is not None, "Playwright (pip install -r requirements-dev.txt)"))
    return marks


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, closed on the way out."""
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, problems: list[str], *, timeout_ms: int = 90_000, console: bool = False,
              dialogs: str = "record", **context_options: Any) -> Any:
    """A page in a new context whose script errors (and console errors, with `console`) land in `problems`.

    `dialogs`: "record" dismisses every dialog and notes it as a problem; "accept" accepts them
    (confirmations the test means to answer). Close it with `page.context.close()`. The waits are
    generous: the suite runs beside another xdist worker on 2 cores; it proves behaviour, not speed.
    """
    context = browser.new_context(**context_options)
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    if console:
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    if dialogs == "accept":
        page.on("dialog", lambda d: d.accept())
    else:
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    return page


def log_in(page: Any, base: str, username: str, password: str, start: str = "/login") -> None:
    """Open `start` (the login gate sends a stranger to /login) and submit the login form."""
    page.goto(base + start)
    page.wait_for_url(re.compile(r"/login"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")


def change_password(page: Any, base: str, old: str, new: str) -> None:
    """Make the password change the server insists on after a first login; land on the overview."""
    page.wait_for_url(base + "/change-password")
    page.fill("#old-password", old)
    page.fill("#new-password", new)
    page.fill("#new-password-2", new)
    page.click("#password-form button[type=submit]")
    page.wait_for_url(base + "/")


def first_login(page: Any, base: str, password: str, new_password: str, start: str = "/") -> None:
    """Log in as `admin` with the initial password and change it, as a new install asks."""
    log_in(page, base, "admin", password, start)
    change_password(page, base, password, new_password)
