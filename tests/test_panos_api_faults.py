"""Each simulator fault maps to the documented client exception, within the call's deadline."""

import time

import pytest
from conftest import LOOPBACK, device_for

from panfm.xmlapi.client import (
    AuthError,
    BadResponse,
    ConnectError,
    PanosClient,
    PanosError,
    PanosTimeout,
    ServerError,
)

SLACK = 1.0  # scheduling slack on a shared 2-core machine




def stats_of(fleet, entry):
    return fleet.stats(entry)[entry["name"]]


@pytest.fixture
def faulty(private_fleet):
    """Return (fleet, entry, set_fault) for a device whose fault is cleared afterwards."""
    fleet = private_fleet
    entry = fleet.inventory[0]
    yield fleet, entry, lambda mode, duration_s=60: fleet.fault(entry["name"], mode, duration_s)
    fleet.fault(entry["name"], "none", 0)


def timed(fn):
    start = time.monotonic()
    try:
        fn()
    except PanosError as exc:
        return exc, time.monotonic() - start
    raise AssertionError("no PanosError raised")


def test_it_reports_a_refused_connection(faulty):
    _, entry, fault = faulty
    fault("down")
    with PanosClient(device_for(entry), timeout=2, connect_timeout=1, policy=LOOPBACK) as fw:
        exc, took = timed(fw.system_info)
    assert type(exc) is ConnectError
    assert took < 1 + SLACK
    assert entry["host"] in str(exc)


def test_it_times_out_on_a_device_that_never_answers(faulty):
    _, entry, fault = faulty
    fault("blackhole")
    with PanosClient(device_for(entry), timeout=1, connect_timeout=1, policy=LOOPBACK) as fw:
        exc, took = timed(fw.system_info)
    assert type(exc) is PanosTimeout
    assert took < 1 + SLACK


def test_it_times_out_on_a_slow_device_within_the_total_deadline(faulty):
    _, entry, fault = faulty
    fault("slow")
    with PanosClient(device_for(entry), timeout=5, connect_timeout=1, policy=LOOPBACK) as fw:
        exc, took = timed(lambda: fw.op("<show><system><info></info></system></show>", deadline=0.8))
    assert type(exc) is PanosTimeout
    assert took < 0.8 + SLACK


def test_it_maps_http_500_to_server_error(faulty):
    _, entry, fault = faulty
    fault("http500")
    with PanosClient(device_for(entry), timeout=2, policy=LOOPBACK) as fw:
        exc, _ = timed(fw.session_info)
    assert type(exc) is ServerError
    assert exc.status == 500


def test_it_maps_a_truncated_body_to_bad_response(faulty):
    _, entry, fault = faulty
    fault("bad_xml")
    with PanosClient(device_for(entry), timeout=2, policy=LOOPBACK) as fw:
        exc, _ = timed(fw.session_info)
    assert isinstance(exc, BadResponse)


def test_it_generates_a_new_key_after_a_revoked_one_when_it_has_credentials(faulty):
    fleet, entry, fault = faulty
    stored = []
    device = device_for(entry, key=True, creds=True)
    with PanosClient(device, timeout=3, on_key=stored.append, policy=LOOPBACK) as fw:
        fw.session_info()
        keygens = stats_of(fleet, entry)["keygen"]
        fault("revoke_key")
        assert fw.session_info().max > 0  # 403, keygen, retry: invisible to the caller
        fw.session_info()
    assert stats_of(fleet, entry)["keygen"] == keygens + 1
    assert len(stored) == 1 and stored[0] != entry["api_key"], "PAN-OS issues a new key after a revocation"
    entry["api_key"] = stored[0]  # this private fleet's device now answers to the new key


def test_it_raises_auth_error_after_a_revoked_key_without_credentials(faulty):
    fleet, entry, fault = faulty
    fault("revoke_key")
    keygens = stats_of(fleet, entry)["keygen"]
    with PanosClient(device_for(entry), timeout=3, policy=LOOPBACK) as fw:
        exc, _ = timed(fw.session_info)
    assert type(exc) is AuthError
    assert entry["api_key"] not in str(exc)
    assert stats_of(fleet, entry)["keygen"] == keygens


def test_it_stops_a_log_job_that_misses_its_deadline(faulty):
    fleet, entry, _ = faulty
    with PanosClient(device_for(entry), timeout=3, policy=LOOPBACK) as fw:
        fw.session_info()  # connected already: the deadline below is for the job alone
        start = time.monotonic()
        # The simulator answers ACT at least once; the next poll would come after the deadline.
        with pytest.raises(PanosTimeout, match="log job"):
            fw.log_query("traffic", nlogs=5, deadline_s=0.15)
        took = time.monotonic() - start
    assert took < 0.15 + SLACK
    requests = stats_of(fleet, entry)["requests"]
    assert requests.get("log:finish") == 1, requests
