"""Screenshots of the overview and a firewall page (light, dark, phone) from a fresh `make demo`.

    .venv/bin/python scripts/screenshots.py [--out docs/img]      # what `make screenshots` runs

Starts the demo's own program (`python -m panfm.ops.demo`) on a free port over a temporary data
folder, so the pictures show its backfilled week; logs in through the forced password change in
Debian's Chromium (Playwright), waits for live samples, writes the PNGs and stops the demo.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "screenshot-initial-1"  # noqa: S105 (a throwaway demo folder's login)
NEW_PASSWORD = "screenshot-password-2"  # noqa: S105
SHOTS = (  # name, path kind, viewport, colour scheme
    ("overview-light", "overview", (1280, 900), "light"),
    ("overview-dark", "overview", (1280, 900), "dark"),
    ("overview-phone", "overview", (390, 844), "light"),
    ("firewall-light", "firewall", (1280, 900), "light"),
    ("firewall-dark", "firewall", (1280, 900), "dark"),
    ("firewall-phone", "firewall", (390, 844), "dark"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text(errors="replace")):
            return
        if proc.poll() is not None:
            sys.exit(f"screenshots: the demo exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    sys.exit(f"screenshots: no {pattern!r} in the demo's output within {timeout} s")


def take(base: str, out: Path, range_: str) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.goto(base + "/login")
            page.fill("#username", "admin")
            page.fill("#password", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_url(base + "/change-password")
            page.fill("#old-password", PASSWORD)
            page.fill("#new-password", NEW_PASSWORD)
            page.fill("#new-password-2", NEW_PASSWORD)
            page.click("#password-form button[type=submit]")
            page.wait_for_url(base + "/")
            # Wait for live rates (the clock's second poll) on every firewall.
            page.wait_for_function("""() => {
                const cells = [...document.querySelectorAll('#fleet td[data-field=through_mbps]')];
                return cells.length >= 3 && cells.every(c => /\\d/.test(c.textContent));
            }""", timeout=120_000)
            device = page.locator("#fleet tbody tr").first.get_attribute("data-id")
            state = ctx.storage_state()
            ctx.close()
            for name, kind, (w, h), scheme in SHOTS:
                c = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme,
                                        storage_state=state, device_scale_factor=1)
                p = c.new_page()
                path = f"/?range={range_}" if kind == "overview" else f"/firewall/{device}?range={range_}"
                p.goto(base + path)
                p.wait_for_load_state("networkidle")
                p.wait_for_timeout(1500)  # uPlot and the sparklines paint on animation frames
                p.screenshot(path=str(out / f"{name}.png"), full_page=kind == "overview")
                print(f"screenshots: {out / (name + '.png')}", flush=True)
                c.close()
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--range", default="7d", choices=("1h", "24h", "7d", "30d"))
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit("screenshots: needs Debian's Chromium: apt-get install -y chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "demo.log"
        env = {**os.environ, "PANFM_ADMIN_PASSWORD": PASSWORD, "PANFM_REFRESH_INTERVAL": "10"}
        with log.open("wb") as fh:
            demo = subprocess.Popen(  # noqa: S603  # nosec B603 (fixed argv)
                [sys.executable, "-m", "panfm.ops.demo", "--data-dir", str(Path(tmp) / "demo"), "--port", str(port)],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
            )
        try:
            wait_for(log, r"Listening at: http://", demo, 180)
            take(f"http://127.0.0.1:{port}", args.out, args.range)
        finally:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                demo.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
