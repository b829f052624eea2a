"""Answer /api/ requests for one device: authentication, op/log/version dispatch, faults and stats."""

from __future__ import annotations

import asyncio
import base64
import hmac
from typing import Any

# Element is only a type here; every parse goes through defusedxml.
from xml.etree.ElementTree import Element  # nosec B405

from defusedxml import ElementTree as SafeET

from panos_sim import hosts, reports, xml_logs, xml_net, xml_system
from panos_sim.device import Device
from panos_sim.traffic import rng_for

XML_TYPE = "application/xml; charset=UTF-8"
FORBIDDEN = b"<response status = 'error' code = '403'><result><msg>Invalid Credential</msg></result></response>"
# The op keyword tree the simulator knows; None marks a complete command.
KNOWN: dict[str, Any] = {
    "show": {
        "system": {"info": None, "resources": None, "state": None},
        "session": {"info": None},
        "running": {"resource-monitor": None},
        "counter": {"interface": None},
        "interface": None,
        "high-availability": {"state": None},
        "arp": {"entry": None},
        "global-protect-gateway": {"current-user": None},
        "dhcp": {"server": {"lease": None}},
        "user": {"ip-user-mapping": None},
    },
    "request": {"license": {"info": None}},
}


class Reply:
    """An HTTP answer independent of the web framework."""

    __slots__ = ("body", "reason", "status")

    def __init__(self, body: bytes, status: int = 200, reason: str | None = None) -> None:
        self.body = body
        self.status = status
        self.reason = reason


def xml(text: str) -> Reply:
    """Wrap an XML document."""
    return Reply(text.encode())


def error(code: int, line: str, status: str = "error") -> Reply:
    """Return an API error with a CDATA message line."""
    return xml(f'<response status="{status}" code="{code}"><msg><line><![CDATA[{line}]]></line></msg></response>')


def forbidden() -> Reply:
    """Return the real 403 answer: reason 'Invalid Credential' and the exact 97-byte body."""
    return Reply(FORBIDDEN, 403, "Invalid Credential")


def command_name(params: dict[str, str]) -> str:
    """Return the stats label of a request, e.g. 'op:show system info' or 'log:traffic'."""
    kind = params.get("type", "")
    if kind == "op":
        return "op:" + " ".join(t for t, _ in _chain_words(params.get("cmd", "")))
    if kind == "log":
        action = params.get("action")
        return f"log:{action}" if action else f"log:{params.get('log-type', '')}"
    if kind == "report":
        action = params.get("action")
        return f"report:{action}" if action else f"report:{params.get('reportname', '')}"
    return kind or "none"


def _chain(elem: Element) -> list[Element]:
    """Follow the first child down to the leaf: the op keywords in order."""
    out = [elem]
    while len(out[-1]):
        out.append(out[-1][0])
    return out


def _chain_words(cmd: str) -> list[tuple[str, str]]:
    """Return (tag, text) pairs of the cmd chain, or [] when it does not parse."""
    try:
        root = SafeET.fromstring(cmd)
    except Exception:  # any parse failure just means "no label"
        return []
    return [(e.tag, (e.text or "").strip()) for e in _chain(root)]


def authenticate(dev: Device, params: dict[str, str], headers: dict[str, str]) -> bool:
    """Check the key (X-PAN-KEY header, key= parameter) or HTTP Basic credentials."""
    if dev.key_revoked:
        return False
    key = headers.get("X-PAN-KEY") or params.get("key") or ""
    if key:
        return hmac.compare_digest(key.encode(), dev.api_key.encode())
    auth = headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return False
        return _creds_ok(dev, user, password)
    return False


def _creds_ok(dev: Device, user: str, password: str) -> bool:
    """Compare credentials in constant time."""
    return hmac.compare_digest(user.encode(), dev.username.encode()) & hmac.compare_digest(
        password.encode(), dev.password.encode()
    )


def answer(dev: Device, params: dict[str, str], headers: dict[str, str], now: float) -> Reply:
    """Return the device's answer to one API request (faults are applied by the caller)."""
    kind = params.get("type", "")
    if kind == "keygen":
        dev.stats.keygen += 1
        if not _creds_ok(dev, params.get("user", ""), params.get("password", "")):
            return forbidden()
        return xml(f'<response status="success"><result><key>{dev.keygen()}</key></result></response>')
    if not authenticate(dev, params, headers):
        return forbidden()
    if kind == "version":
        return xml(xml_system.version(dev))
    if kind == "op":
        return _op(dev, params.get("cmd", ""), now)
    if kind == "log":
        return _log(dev, params, now)
    if kind == "report":
        return _report(dev, params, now)
    return Reply(
        f"<response status = 'error' code = '400'><result><msg>Illegal value for parameter &quot;type&quot; "
        f"[{kind[:40]}].</msg></result></response>".encode(),
        400,
    )


def _int(value: str | None, default: int) -> int:
    """Parse an integer parameter."""
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return -1


def _log(dev: Device, params: dict[str, str], now: float) -> Reply:
    """Handle type=log: enqueue, action=get, action=finish."""
    action = params.get("action")
    if action in ("get", "finish"):
        job = _int(params.get("job-id"), -1)
        if job < 0:
            return error(400, "Missing or invalid job-id")
        return xml(xml_logs.get(dev, job, now) if action == "get" else xml_logs.finish(dev, job))
    log_type = params.get("log-type", "")
    if log_type not in xml_logs.LOG_TYPES:
        return error(17, f" log-type {log_type[:40]} is invalid")
    nlogs = _int(params.get("nlogs"), 20)
    skip = _int(params.get("skip"), 0)
    direction = params.get("dir", "backward")
    if not 1 <= nlogs <= 5000 or skip < 0 or direction not in ("backward", "forward"):
        return Reply(b"<response status = 'error' code = '400'><result><msg>Illegal value for parameter "
                     b"&quot;nlogs&quot;, &quot;skip&quot; or &quot;dir&quot;.</msg></result></response>", 400)
    return xml(xml_logs.enqueue(dev, log_type, nlogs, skip, direction, params.get("query", ""), now))


def _report(dev: Device, params: dict[str, str], now: float) -> Reply:
    """Handle type=report: a dynamic report enqueue, action=get, action=finish."""
    action = params.get("action")
    if action in ("get", "finish"):
        job = _int(params.get("job-id"), -1)
        if job < 0:
            return error(400, "Missing or invalid job-id")
        return xml(reports.get(dev, job, now) if action == "get" else reports.finish(dev, job))
    code, text = reports.enqueue(dev, params, now)
    if code:
        return error(code, text)
    return xml(f'<response status="success" code="19"><result><msg><line>Report job enqueued with jobid {text}'
               f"</line></msg><job>{text}</job></result></response>")


def _op(dev: Device, cmd: str, now: float) -> Reply:
    """Dispatch an op command by its keyword chain (structural, whitespace-insensitive)."""
    try:
        root = SafeET.fromstring(cmd)
    except Exception:  # malformed cmd XML is the client's error, answered like PAN-OS
        return error(18, "Malformed Request")
    chain = _chain(root)
    node: Any = KNOWN
    prev = ""
    for depth, elem in enumerate(chain):
        if not isinstance(node, dict) or elem.tag not in node:
            where = f" {prev} -> {elem.tag} " if prev else f" {elem.tag} "
            return error(17, where + " is unexpected")
        node = node[elem.tag]
        prev = elem.tag
        if node is None:
            return _run(dev, [e.tag for e in chain[: depth + 1]], chain[depth:], now)
    return error(17, f" {prev} -> (end)  is unexpected")


def _run(dev: Device, path: list[str], rest: list[Element], now: float) -> Reply:
    """Run a recognised command; REST starts at its last keyword."""
    leaf = rest[0]
    text = (leaf.text or "").strip()
    key = " ".join(path)
    if key == "show system info":
        return xml(xml_system.system_info(dev, now))
    if key == "show system resources":
        return xml(xml_system.system_resources(dev, now))
    if key == "show system state":
        flt = leaf.find("filter")
        if flt is None:
            return error(17, " state -> (end)  is unexpected")
        return xml(xml_system.system_state(dev, (flt.text or "").strip(), now))
    if key == "show session info":
        return xml(xml_system.session_info(dev, now))
    if key == "show running resource-monitor":
        return _resource_monitor(dev, leaf, now)
    if key == "show counter interface":
        if text != "all":
            return error(17, f" interface -> {text[:40]}  is unexpected")
        return xml(xml_net.counter_interface_all(dev, now))
    if key == "show interface":
        if text == "all":
            return xml(xml_net.interface_all(dev))
        return xml(xml_net.interface_one(dev, text, now))
    if key == "show high-availability state":
        return xml(xml_system.ha_state(dev, now))
    if key == "request license info":
        return xml(xml_system.license_info(dev, now))
    if key == "show arp entry":
        if leaf.get("name") != "all":
            return error(17, " arp -> entry is invalid")
        return xml(xml_net.arp_all(dev, now))
    if key == "show dhcp server lease":
        where = leaf.find("interface")
        if where is None or (where.text or "").strip() != "all":
            return error(17, " lease -> (end)  is unexpected")
        return xml(hosts.dhcp_leases(dev, now))
    if key == "show user ip-user-mapping":
        if leaf.find("all") is None:
            return error(17, " ip-user-mapping -> (end)  is unexpected")
        return xml(hosts.user_mappings(dev, now, xml_net.gp_mappings(dev, now)))
    return xml(xml_net.gp_current_users(dev, now))


def _resource_monitor(dev: Device, leaf: Element, now: float) -> Reply:
    """Handle show running resource-monitor <period>[<last>N</last>]."""
    if len(leaf) == 0:
        return error(17, " resource-monitor -> (end)  is unexpected")
    period = leaf[0]
    if period.tag not in xml_system.RM_SPAN:
        return error(17, f" resource-monitor -> {period.tag}  is unexpected")
    last = None
    last_el = period.find("last")
    if last_el is not None:
        last = _int((last_el.text or "").strip(), -1)
        limit = xml_system.RM_SPAN[period.tag][1]
        if not 1 <= last <= limit:
            return error(17, f" last -> {last_el.text}  is invalid")
    return xml(xml_system.resource_monitor(dev, period.tag, last, now))


async def delay_for(dev: Device, mode: str, stopping: asyncio.Event) -> None:
    """Sleep for the slow fault (8-12 s) or the configured service latency, whichever applies."""
    if mode == "slow":
        rng = rng_for(dev.seed, dev.name, "slow", dev.stats.requests.total())
        await pause(rng.uniform(8.0, 12.0), stopping)
    elif dev.latency_s > 0:
        await pause(dev.latency_s, stopping)


async def pause(seconds: float, stopping: asyncio.Event) -> None:
    """Sleep, cut short when the fleet stops."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return
