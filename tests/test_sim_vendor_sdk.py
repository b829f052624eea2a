"""The simulator's keys and form bodies as PAN-OS has them, proven with the vendor's own SDK (pan-python)."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pan.xapi
from conftest import insecure_context

# A PAN-OS 10.x/11.x key: base64 of "-AQ==" + base64(20 bytes) + base64(32 bytes).
KEY_RE = re.compile(r"LUFRPT[A-Za-z0-9]{97}=")


def _xapi(entry, **creds) -> pan.xapi.PanXapi:
    return pan.xapi.PanXapi(hostname=entry["host"], port=entry["port"], ssl_context=insecure_context(),
                            timeout=15, **creds)


def test_the_vendor_sdk_generates_a_key_then_runs_an_op_command(sim_fleet):
    for entry in sim_fleet.inventory:  # one device of each model, passwords with & < " !
        xapi = _xapi(entry, api_username=entry["username"], api_password=entry["password"])
        assert xapi.keygen() == entry["api_key"]
        xapi.op(cmd="<show><system><info/></system></show>")  # sends key= unencoded in the form body
        assert xapi.status == "success"
        assert ET.fromstring(xapi.xml_root()).findtext("result/system/serial") == entry["serial"]


def test_the_vendor_sdk_works_with_a_stored_key(sim_fleet):
    entry = sim_fleet.inventory[2]
    xapi = _xapi(entry, api_key=entry["api_key"])
    xapi.op(cmd="show session info", cmd_xml=True)
    assert xapi.status == "success"
    assert ET.fromstring(xapi.xml_root()).find("result/num-installed") is not None


def test_keys_are_base64_of_ascii_and_never_hold_plus_or_slash(sim_fleet):
    for entry in sim_fleet.inventory:
        key = entry["api_key"]
        assert KEY_RE.fullmatch(key), key
        inner = base64.b64decode(key, validate=True).decode("ascii")
        assert inner.startswith("-AQ==")
        assert len(base64.b64decode(inner[5:33], validate=True)) == 20


def test_it_decodes_a_literal_plus_in_a_form_body_as_a_space_like_pan_os(sim_fleet):
    entry = sim_fleet.inventory[0]
    headers = {"X-PAN-KEY": entry["api_key"], "Content-Type": "application/x-www-form-urlencoded"}
    body = b"type=op&cmd=<show><interface>ethernet1/1+</interface></show>"  # '+' sent as is
    status, _, _, data = sim_fleet.request(entry, "POST", "/api/", body, headers)
    assert status == 200
    root = ET.fromstring(data)
    assert root.get("status") == "success" and root.find("result/error") is None
    assert root.findtext("result/ifnet/name") == "ethernet1/1"
