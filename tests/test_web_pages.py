"""The page shells: rendering, CSP-compatible markup, escaping, theme and the static build."""

from __future__ import annotations

import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import require

import panfm.web.pages as web_pages
from app import create_app
from config import load_settings, save_settings
from panfm.storage.samples import HISTORY_DB, SampleStore

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "initial-password-1"
NEW_PASSWORD = "a-much-better-password-2"
PAGES = ("/", "/devices", "/settings", "/clock", "/alerts", "/change-password")
XSS = "<script>alert(1)</script>"


class Markup(HTMLParser):
    """Collect what CSP cares about: scripts, inline styles, links and the CSRF meta."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.style_attrs: list[str] = []
        self.style_elements = 0
        self.inline_handlers: list[str] = []
        self.urls: list[str] = []
        self.csrf: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
        if tag == "style":
            self.style_elements += 1
        if "style" in a:
            self.style_attrs.append(tag)
        self.inline_handlers += [k for k in a if k.startswith("on")]
        for key in ("src", "href"):
            if a.get(key, "") and str(a[key]).startswith("/static/"):
                self.urls.append(str(a[key]))
        if tag == "meta" and a.get("name") == "csrf-token":
            self.csrf = a.get("content")


def parse(html: str) -> Markup:
    m = Markup()
    m.feed(html)
    return m


@pytest.fixture(scope="module")
def vendor() -> None:
    """Make sure uPlot is in static/vendor (what `make node` does)."""
    require((ROOT / "node_modules" / "uplot").is_dir(), "node_modules/uplot (the uPlot vendor build): run `make node`")
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_static", ROOT / "scripts" / "build_static.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build()


@pytest.fixture
def app(tmp_path: Path):
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path), "admin_password": PASSWORD})
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


def login(client, password: str = PASSWORD) -> str:
    r = client.post("/api/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["csrf_token"])


@pytest.fixture
def client(app):
    c = app.test_client()
    token = login(c)
    r = c.post(
        "/api/change-password",
        json={"old_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers={"X-CSRFToken": token},
    )
    assert r.status_code == 200, r.get_json()
    return c


def add_device(client, name: str = "fw-a") -> str:
    page = parse(client.get("/devices").get_data(as_text=True))
    body = {
        "name": name,
        "host": "192.0.2.10",
        "port": 443,
        "api_key": "not-a-real-key",
        "tls": {"mode": "pin", "fingerprint_sha256": "ab" * 32},
    }
    r = client.post("/api/devices", json=body, headers={"X-CSRFToken": page.csrf or ""})
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def test_it_serves_the_login_page_with_a_csrf_token_and_a_module_script(app):
    r = app.test_client().get("/login?next=/devices")
    assert r.status_code == 200
    m = parse(r.get_data(as_text=True))
    assert m.csrf and len(m.csrf) > 20
    assert m.scripts == [{"type": "module", "src": "/static/js/login.js"}]
    assert 'data-next="/devices"' in r.get_data(as_text=True)


def test_it_refuses_to_carry_an_offsite_next_target_into_the_login_page(app):
    html = app.test_client().get("/login?next=//evil.example/x").get_data(as_text=True)
    assert 'data-next="/"' in html
    assert "evil.example" not in html


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/firewall/abc?x=1", "/firewall/abc?x=1"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/ok\nSet-Cookie: x", "/"),
        (None, "/"),
    ],
)
def test_it_keeps_only_local_next_targets(target, expected):
    assert web_pages.safe_next(target) == expected


def test_it_sends_logged_out_visitors_of_a_page_to_login(app):
    r = app.test_client().get("/devices")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login")


def test_it_renders_every_page_as_a_shell_that_a_strict_csp_allows(client, vendor):
    device_id = add_device(client)
    for path in (*PAGES, f"/firewall/{device_id}"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in r.headers["Content-Security-Policy"]
        m = parse(r.get_data(as_text=True))
        assert m.csrf, path
        assert m.style_attrs == [] and m.style_elements == 0, f"{path}: inline style would be blocked by CSP"
        assert m.inline_handlers == [], f"{path}: inline event handler would be blocked by CSP"
        assert len(m.scripts) == 1 and m.scripts[0].get("type") == "module", path
        for url in m.urls:  # every referenced asset exists and is served
            asset = client.get(url)
            asset.close()  # static files are streamed from an open file
            assert asset.status_code == 200, f"{path} references missing {url}"


def test_it_answers_404_for_an_unknown_or_malformed_firewall_id(client):
    assert client.get("/firewall/no-such-device").status_code == 404
    assert client.get("/firewall/a%20b").status_code == 404


def test_it_tells_plainly_that_there_is_no_inventory_yet(client):
    device_id = add_device(client)
    html = client.get(f"/firewall/{device_id}").get_data(as_text=True)
    assert "No inventory yet" in html
    assert f'data-device-id="{device_id}"' in html


def test_it_shows_inventory_with_every_firewall_string_escaped(client, app, tmp_path):
    device_id = add_device(client)
    now = time.time()
    doc = {
        "system": {"hostname": XSS, "app_version": XSS, "threat_version": "8790-8000"},
        "licenses": [
            {"feature": XSS, "description": "d", "issued": None, "expires": "2000-01-01", "expired": True},
            {"feature": "GlobalProtect Gateway", "description": None, "expires": None, "expired": False},
        ],
        "gp_users": 42,
        "threats": {"critical": 3, "high": 2, "medium": 1},
        "window_s": 3600,
        "errors": {"blocked_urls": XSS},
    }
    with SampleStore.open(tmp_path / HISTORY_DB) as store:
        store.write_inventory(device_id, now, doc)
    html = client.get(f"/firewall/{device_id}").get_data(as_text=True)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "8790-8000" in html
    assert "critical 3, high 2, medium 1" in html
    assert re.search(r'<tr class="down"><td>&lt;script&gt;.*?<td>expired</td>', html)
    assert "<td>GlobalProtect Gateway</td><td>—</td><td>never</td><td>valid</td>" in html


def test_it_classifies_licences_by_days_left():
    now = 1_700_000_000.0  # 2023-11-14
    view = web_pages.inventory_view(
        {
            "licenses": [
                {"feature": "a", "expires": "2023-11-30", "expired": False},
                {"feature": "b", "expires": "2023-11-01", "expired": False},
                {"feature": "c", "expires": "2025-01-01", "expired": False},
            ]
        },
        now=now,
    )
    assert view is not None
    assert [lic["state"] for lic in view["licenses"]] == ["expires in 16 days", "expired", "valid"]
    assert web_pages.inventory_view(None, now=now) is None


def test_it_renders_the_theme_setting_on_the_root_element(client, tmp_path):
    assert "data-theme" not in client.get("/").get_data(as_text=True).split(">", 2)[1]
    save_settings(tmp_path, {"theme": "dark", "refresh_interval": 15})
    html = client.get("/").get_data(as_text=True)
    assert '<html lang="en" data-theme="dark">' in html
    assert '<meta name="refresh-interval" content="15">' in html


def test_it_never_parses_strings_as_html_in_page_scripts():
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc")
    scripts = sorted((ROOT / "static" / "js").glob("*.js"))
    assert len(scripts) >= 8
    for path in scripts:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not forbidden.search(line.split("//")[0]), f"{path.name}:{n}: {line.strip()}"


def test_it_builds_the_vendor_folder_from_node_modules(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_static", ROOT / "scripts" / "build_static.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match="npm ci"):
        module.build(tmp_path)
    require((ROOT / "node_modules" / "uplot").is_dir(), "node_modules/uplot (the uPlot vendor build): run `make node`")
    shutil.copytree(ROOT / "node_modules" / "uplot", tmp_path / "node_modules" / "uplot")
    written = module.build(tmp_path)
    assert {p.name for p in written} == {"uPlot.esm.js", "uPlot.min.css", "uPlot.LICENSE"}
    assert "export { uPlot as default }" in (tmp_path / "static" / "vendor" / "uPlot.esm.js").read_text()


def test_no_form_can_send_a_password_or_secret_in_a_url(client, app):
    # A form a page script has not taken over yet (slow network, script error) must not fall
    # back to a native GET, which would put the password or channel URL in the address bar,
    # the browser history and every proxy log.
    device_id = add_device(client)
    pages = {"/login": app.test_client().get("/login").get_data(as_text=True)}
    for path in (*PAGES, f"/firewall/{device_id}"):
        pages[path] = client.get(path).get_data(as_text=True)
    forms = 0
    for path, html in pages.items():
        for form in re.findall(r"<form\b[^>]*>", html):
            forms += 1
            method = re.search(r'method="(\w+)"', form)
            assert method and method.group(1) in ("post", "dialog"), f"{path}: {form}"
    assert forms >= 5
    for path, form_id in (("/login", "login-form"), ("/settings", "password-form")):
        body = pages[path].split(f'id="{form_id}"', 1)[1].split("</form>", 1)[0]
        assert re.search(r'<button type="submit"[^>]*\bdisabled\b', body), f"{path}: submit enabled before its script"


@pytest.mark.parametrize(("seconds", "label"), [
    (300, "last 5 minutes"), (60, "last minute"), (30, "last 30 seconds"), (3600, "last hour"),
    (5400, "last 90 minutes"), (7200, "last 2 hours"), (86400, "last 24 hours"), (172800, "last 2 days"),
    (None, None), (0, None), ("300", None),
])
def test_it_says_the_threat_window_as_people_say_it(seconds, label):
    from panfm.web.pages import window_label

    assert window_label(seconds) == label
