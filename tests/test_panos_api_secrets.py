"""No API key or password in any log line or exception text, with every library logging at DEBUG."""

import dataclasses
import io
import logging
import traceback
from urllib.parse import quote, quote_plus

import pytest
from conftest import LOOPBACK, device_for

import panfm.redact as logsafe
from panfm.xmlapi.client import PanosClient, PanosError


@pytest.fixture
def debug_capture():
    """Capture every record of the process at DEBUG on a root handler; restore levels afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    names = ["", "urllib3", "urllib3.connectionpool", "requests", "panfm.xmlapi"]
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield stream
    logging.getLogger().removeHandler(handler)
    for n, level in old.items():
        logging.getLogger(n).setLevel(level)
    logsafe.uninstall_redaction()


def exercise(fleet, entry, new_keys):
    """Run successful and failing calls; return the text of every exception raised."""
    texts = []

    def attempt(fn):
        try:
            fn()
        except PanosError as exc:
            texts.append(str(exc))
            texts.append(repr(exc))
            texts.append("".join(traceback.format_exception(exc)))
            logging.getLogger("panfm.test").exception("call failed")

    with_creds = device_for(entry, key=False, creds=True)
    with PanosClient(with_creds, timeout=3, on_key=new_keys.append, policy=LOOPBACK) as fw:
        attempt(fw.system_info)
        attempt(fw.counters)
        fleet.fault(entry["name"], "revoke_key", 60)
        attempt(fw.session_info)  # 403, re-keygen, retry
        for mode in ("http500", "bad_xml"):
            fleet.fault(entry["name"], mode, 60)
            attempt(fw.session_info)
        fleet.fault(entry["name"], "none", 0)
    fleet.fault(entry["name"], "revoke_key", 60)
    with PanosClient(device_for(entry), timeout=3, policy=LOOPBACK) as fw:
        attempt(fw.session_info)  # AuthError: key only
    fleet.fault(entry["name"], "none", 0)
    wrong_password = dataclasses.replace(with_creds, password=entry["password"] + "!x")
    with PanosClient(wrong_password, timeout=3, policy=LOOPBACK) as fw:
        attempt(fw.keygen)
    with PanosClient(device_for(entry, fingerprint_sha256="0" * 64), timeout=3, policy=LOOPBACK) as fw:
        attempt(fw.system_info)
    with PanosClient(device_for(entry, mode="verify"), timeout=3, policy=LOOPBACK) as fw:
        attempt(fw.system_info)
    return texts


def secrets_of(entry, new_keys):
    forms = set()
    for secret in (entry["api_key"], entry["password"], *new_keys):
        forms |= {secret, quote(secret, safe=""), quote_plus(secret)}
    return forms


@pytest.mark.parametrize("redaction", [False, True], ids=["client-alone", "with-filter"])
def test_it_never_logs_or_raises_a_secret(private_fleet, debug_capture, redaction):
    entry = private_fleet.inventory[redaction]
    if redaction:
        logsafe.install_redaction()
    new_keys = []
    texts = exercise(private_fleet, entry, new_keys)
    assert len(new_keys) == 2, "keygen at first use and after the revocation"
    logged = debug_capture.getvalue()
    assert "POST /api/ type=keygen" in logged, "the client's DEBUG lines were captured"
    assert len(texts) >= 5 * 3, "the failing calls raised"
    everything = logged + "\n".join(texts)
    for secret in secrets_of(entry, new_keys):
        assert secret not in everything
