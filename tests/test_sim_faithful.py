"""The simulator's responses have the element structure of the real PAN-OS samples.

For each real sample the set of element paths (tags from the root, dpN normalised) the simulator
sends must cover the sample's, except for the documented version- or platform-specific extras below.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "panos"

# Elements a real sample has that the simulated device legitimately lacks (with the reason).
EXTRAS = {
    # only 7000-series chassis have high-speed log forwarding
    "show-system-info__pan-os-upgrade-assurance-pa7050.xml": {"high-speed-log-forwarding-mode"},
}

def op(cmd: str) -> dict[str, str]:
    """Return the parameters of an op command."""
    return {"type": "op", "cmd": cmd}


CASES = [
    ("keygen-success__panos-docs-9.1.xml", {"type": "keygen"}),
    ("version__pan-os-ansible-pavm-10.0.2.xml", {"type": "version"}),
    ("error-17-invalid-command__pan-os-upgrade-assurance.xml",
     op("<show><redistribution><status/></redistribution></show>")),
    ("show-system-info__pan-os-upgrade-assurance-pa7050.xml", op("<show><system><info/></system></show>")),
    ("show-system-info__device-firewall-paloalto-pavm-8.1.3.xml", op("<show><system><info/></system></show>")),
    ("show-system-resources__pan-os-upgrade-assurance.xml",
     op("<show><system><resources/></system></show>")),
    ("show-system-state-filter-sys-monitor-mp-exports__pan-os-upgrade-assurance.xml",
     op("<show><system><state><filter>sys.monitor.s*.mp.exports</filter></state></system></show>")),
    ("show-system-state-filter-no-matches__pan-os-upgrade-assurance.xml",
     op("<show><system><state><filter>sys.monitor.s9.mp.exports</filter></state></system></show>")),
    ("show-session-info__pan-os-upgrade-assurance.xml", op("<show><session><info/></session></show>")),
    ("show-session-info__irom77-go-public-pa5000.xml", op("<show><session><info/></session></show>")),
    ("show-running-resource-monitor-minute-last-5__pan-os-upgrade-assurance.xml",
     op("<show><running><resource-monitor><minute><last>5</last></minute></resource-monitor>"
                           "</running></show>")),
    ("show-running-resource-monitor-second__irom77-go-public-pa5000.xml",
     op("<show><running><resource-monitor><second></second></resource-monitor></running></show>")),
    ("show-interface-all__device-firewall-paloalto-pavm-8.1.3.xml",
     op("<show><interface>all</interface></show>")),
    ("show-interface-ethernet1-1__cbt4all-netaut.xml", op("<show><interface>ethernet1/1</interface></show>")),
    ("show-interface-ethernet1-6.123__pan-os-upgrade-assurance.xml",
     op("<show><interface>ethernet1/1.100</interface></show>")),
    ("show-interface-not-found__pan-os-upgrade-assurance.xml",
     op("<show><interface>ethernet1/123</interface></show>")),
    ("show-counter-interface-all-doubled__SYNTHETIC.xml",
     op("<show><counter><interface>all</interface></counter></show>")),
    ("show-high-availability-state-enabled-passive__demisto-content-pavm-10.0.9.xml",
     op("<show><high-availability><state/></high-availability></show>")),
    ("request-license-info__pan-os-upgrade-assurance.xml", op("<request><license><info/></license></request>")),
    ("show-arp-all__device-firewall-paloalto-pavm-8.1.3.xml",
     op("<show><arp><entry name='all'/></arp></show>")),
    ("show-arp-all__pan-os-upgrade-assurance.xml", op("<show><arp><entry name='all'/></arp></show>")),
    ("show-global-protect-gateway-current-user-user__forescout-eyeextend-panos-8.1.xml",
     op("<show><global-protect-gateway><current-user/></global-protect-gateway></show>")),
    ("log-enqueue-traffic__panos-docs-9.1.xml", {"type": "log", "log-type": "traffic"}),
]


def paths(root: ET.Element) -> set[str]:
    """Return every element path below (and including) ROOT, with dp0/dp1/... written dpN."""
    out: set[str] = set()

    def walk(e: ET.Element, prefix: str) -> None:
        tag = re.sub(r"^dp\d+$", "dpN", e.tag)
        here = f"{prefix}/{tag}"
        out.add(here)
        for child in e:
            walk(child, here)

    walk(root, "")
    return out


def fetch(fleet, entry, params):
    params = dict(params)
    if params["type"] == "keygen":
        params.update(user=entry["username"], password=entry["password"])
    body = urlencode(params).encode()
    status, _, headers, data = fleet.request(entry, "POST", "/api/", body, {
        "X-PAN-KEY": entry["api_key"], "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200 and headers["Content-Type"] == "application/xml; charset=UTF-8"
    return ET.fromstring(data)


def entry_for(fleet, sample):
    """Pick the simulated model closest to the sample's device."""
    model = "PA-5450" if "pa5000" in sample or "resource-monitor" in sample else "PA-VM"
    if "high-availability-state-enabled" in sample:
        return next(e for i, e in enumerate(fleet.inventory) if i % 4 != 0 and e["model"] == "PA-VM")
    return next(e for e in fleet.inventory if e["model"] == model)


@pytest.mark.parametrize(("sample", "params"), CASES, ids=[c[0].split("__")[0] for c in CASES])
def test_it_covers_the_element_paths_of_the_real_sample(sim_fleet, sample, params):
    real = paths(ET.parse(FIXTURES / sample).getroot())
    sim = paths(fetch(sim_fleet, entry_for(sim_fleet, sample), params))
    extras = EXTRAS.get(sample, set())
    missing = {p for p in real - sim if p.rsplit("/", 1)[-1] not in extras}
    assert not missing, sorted(missing)


def test_it_covers_a_real_traffic_log_fin_with_an_act_first(sim_fleet):
    entry = sim_fleet.inventory[0]
    job = fetch(sim_fleet, entry, {"type": "log", "log-type": "traffic", "nlogs": "3"}).findtext("result/job")
    act = fetch(sim_fleet, entry, {"type": "log", "action": "get", "job-id": job})
    assert act.findtext("result/job/status") == "ACT" and act.find("result/log") is None
    for _ in range(5):
        fin = fetch(sim_fleet, entry, {"type": "log", "action": "get", "job-id": job})
        if fin.findtext("result/job/status") == "FIN":
            break
        time.sleep(0.05)
    real = ET.parse(FIXTURES / "log-get-traffic-fin__demisto-content.xml").getroot()
    missing = paths(real) - paths(fin)
    assert not missing, sorted(missing)
    # Every field of the real 10.x entry, in its order (the simulator adds `srcloc`): what a parser
    # reads, and what an inventory parses per entry (its CPU per inventory is measured on these).
    entries = fin.findall("result/log/logs/entry")
    assert len(entries) == 3
    for got in entries:
        assert [c.tag for c in got if c.tag != "srcloc"] == [c.tag for c in real.find("result/log/logs/entry")]


def test_it_keeps_the_quirks_of_real_devices(sim_fleet):
    entry = sim_fleet.inventory[3]
    info = fetch(sim_fleet, entry, op("<show><system><info/></system></show>"))
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n", info.findtext("result/system/time"))
    arp = fetch(sim_fleet, entry, op("<show><arp><entry name='all'/></arp></show>"))
    assert {e.findtext("status") for e in arp.findall("result/entries/entry")} <= {"  c  ", "  s  "}
    sess = fetch(sim_fleet, entry, op("<show><session><info/></session></show>"))
    assert sess.findtext("result/hw-offload") in ("True", "False")
    res = fetch(sim_fleet, entry, op("<show><system><resources/></system></show>")).findtext("result")
    assert "MiB Mem :" in res and "MiB Swap:" in res
