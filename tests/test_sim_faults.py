"""Every fault mode on a private fleet, the --faults choice, the 5-request queue and SIGTERM."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest

from tests.conftest import start_sim

INFO = "<show><system><info/></system></show>"

COUNTERS = "<show><counter><interface>all</interface></counter></show>"


def call(fleet, entry, params=None, timeout=15.0, key=None):
    params = params or {"type": "op", "cmd": INFO}
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-PAN-KEY": key or entry["api_key"]}
    return fleet.request(entry, "POST", "/api/", urlencode(params).encode(), headers, timeout)


def peer_fingerprint(entry):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((entry["host"], entry["port"]), timeout=5) as raw, \
            ctx.wrap_socket(raw) as tls:
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with start_sim(tmp_path_factory.mktemp("faults"), devices=4, seed=11) as f:
        yield f


def test_it_matches_the_inventory_fingerprint(fleet):
    for entry in fleet.inventory:
        assert peer_fingerprint(entry) == entry["tls_fingerprint_sha256"]


def test_it_refuses_connections_while_down_and_comes_back(fleet):
    entry = fleet.inventory[0]
    fleet.fault(entry, "down", 0)
    with pytest.raises(ConnectionRefusedError):
        call(fleet, entry)
    fleet.fault(entry, "none", 0)
    assert call(fleet, entry)[0] == 200


def test_it_ends_a_timed_down_fault_by_itself(fleet):
    entry = fleet.inventory[0]
    fleet.fault(entry, "down", 0.5)
    with pytest.raises(ConnectionRefusedError):
        call(fleet, entry)
    deadline = time.monotonic() + 5
    while True:
        try:
            assert call(fleet, entry)[0] == 200
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_it_accepts_but_never_answers_in_blackhole(fleet):
    entry = fleet.inventory[1]
    fleet.fault(entry, "blackhole", 30)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        call(fleet, entry, timeout=1.0)
    assert time.monotonic() - start >= 0.9
    fleet.fault(entry, "none", 0)
    assert call(fleet, entry)[0] == 200


def test_it_answers_slowly_in_slow_mode(fleet):
    entry = fleet.inventory[1]
    fleet.fault(entry, "slow", 30)
    with pytest.raises(TimeoutError):
        call(fleet, entry, timeout=2.0)
    fleet.fault(entry, "none", 0)


@pytest.mark.slow
def test_it_answers_after_8_to_12_seconds_when_slow(fleet):
    entry = fleet.inventory[3]
    fleet.fault(entry, "slow", 60)
    start = time.monotonic()
    status = call(fleet, entry, timeout=20)[0]
    took = time.monotonic() - start
    fleet.fault(entry, "none", 0)
    assert status == 200 and 8.0 <= took <= 12.5


def test_it_answers_500_and_truncated_xml(fleet):
    entry = fleet.inventory[2]
    fleet.fault(entry, "http500", 30)
    assert call(fleet, entry)[0] == 500
    fleet.fault(entry, "bad_xml", 30)
    status, _, _, body = call(fleet, entry)
    assert status == 200 and body.startswith(b"<response")
    with pytest.raises(ET.ParseError):
        ET.fromstring(body)
    fleet.fault(entry, "none", 0)
    ET.fromstring(call(fleet, entry)[3])


def test_it_revokes_the_key_until_a_new_keygen_which_returns_a_new_key(fleet):
    entry = fleet.inventory[3]
    fleet.fault(entry, "revoke_key", 0)
    assert call(fleet, entry)[0] == 403
    assert call(fleet, entry)[0] == 403
    creds = {"type": "keygen", "user": entry["username"], "password": entry["password"]}
    status, _, _, body = call(fleet, entry, creds)
    new_key = ET.fromstring(body).findtext("result/key")
    assert status == 200 and new_key and new_key != entry["api_key"]
    assert call(fleet, entry)[0] == 403
    assert call(fleet, entry, key=new_key)[0] == 200
    assert ET.fromstring(call(fleet, entry, creds)[3]).findtext("result/key") == new_key
    entry["api_key"] = new_key


def test_it_restarts_uptime_and_counters_on_reboot(fleet):
    entry = fleet.inventory[0]
    fleet.fault(entry, "reboot", 0)
    root = ET.fromstring(call(fleet, entry)[3])
    assert root.findtext("result/system/uptime").startswith("0 days, 0:00:0")
    assert root.findtext("result/system/serial") == entry["serial"]
    counters = ET.fromstring(call(fleet, entry, {"type": "op", "cmd": COUNTERS})[3])
    ibytes = [int(e.text) for e in counters.iter("ibytes")]
    assert ibytes and max(ibytes) < 10**10  # from 0 again (they start above 2^40)
    # The truth still covers the hour before the reboot: both boots' counting adds up.
    truth = fleet.truth(entry, time.time() - 3600, time.time())
    assert truth["interfaces"]["ethernet1/1"]["in_bytes"] > 10**6


def test_it_flips_ha_state_on_failover(fleet):
    entry = fleet.inventory[1]
    ha = "<show><high-availability><state/></high-availability></show>"
    state = ET.fromstring(call(fleet, entry, {"type": "op", "cmd": ha})[3]).findtext("result/group/local-info/state")
    fleet.fault(entry, "failover", 0)
    after = ET.fromstring(call(fleet, entry, {"type": "op", "cmd": ha})[3])
    assert after.findtext("result/group/local-info/state") != state
    assert after.findtext("result/group/peer-info/state") == state
    fleet.fault(entry, "failover", 0)


def test_it_swaps_serial_and_certificate_on_replace_at_the_same_port(fleet):
    entry = fleet.inventory[2]
    answer = fleet.fault(entry, "replace", 0)
    assert answer["port"] == entry["port"]
    assert answer["serial"] != entry["serial"]
    assert peer_fingerprint(entry) == answer["tls_fingerprint_sha256"] != entry["tls_fingerprint_sha256"]
    root = ET.fromstring(call(fleet, entry)[3])
    assert root.findtext("result/system/serial") == answer["serial"]
    assert root.findtext("result/system/uptime").startswith("0 days, 0:00:")


def test_it_queues_more_than_five_concurrent_requests(fleet):
    entry = fleet.inventory[3]
    fleet.fault(entry, "none", 0, latency_s=0.3)
    results = []

    def worker():
        results.append(call(fleet, entry, {"type": "version"})[0])

    threads = [threading.Thread(target=worker) for _ in range(12)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - start
    fleet.fault(entry, "none", 0, latency_s=0)
    stats = fleet.stats(entry)[entry["name"]]
    assert results == [200] * 12
    assert stats["max_concurrency"] == 5
    assert stats["max_inflight"] >= 6
    assert took >= 0.85  # 12 requests of 0.3 s through 5 slots take three rounds


def test_it_rejects_an_unknown_fault_mode(fleet):
    entry = fleet.inventory[0]
    status, _, _, _ = fleet.request(entry, "POST", "/_sim/fault", json.dumps({"mode": "explode"}).encode(),
                                    {"Content-Type": "application/json"})
    assert status == 400


def test_it_applies_start_faults_to_exactly_round_share_of_distinct_devices(tmp_path):
    with start_sim(tmp_path, devices=20, models="PA-VM", faults="down:10%,http500:5%,slow:12%", seed=3) as f:
        modes = {}
        for entry in f.inventory:
            try:
                status = call(f, entry, timeout=1.5)[0]
                modes[entry["name"]] = "http500" if status == 500 else "ok"
            except ConnectionRefusedError:
                modes[entry["name"]] = "down"
            except TimeoutError:
                modes[entry["name"]] = "slow"
        counts = {m: list(modes.values()).count(m) for m in ("down", "http500", "slow", "ok")}
        assert counts == {"down": 2, "http500": 1, "slow": 2, "ok": 15}  # round(0.12 * 20) = 2
        out = f.stdout_path.read_text()
        assert "20 devices listening" in out
        assert f.stop() == 0


def _free_consecutive_ports(n):
    """A base port whose next n-1 ports are free right now (checked by binding them all)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no run of free ports found")


def test_it_exits_zero_on_sigint_and_listens_on_base_port(tmp_path):
    # Another test's ephemeral socket may take a port between our check and the simulator's
    # bind: retry with another base rather than fail on a busy machine.
    for attempt in range(3):
        base = _free_consecutive_ports(3)
        try:
            fleet = start_sim(tmp_path / str(attempt), devices=3, extra=["--base-port", str(base)])
            f = fleet.__enter__()
        except RuntimeError:
            continue
        try:
            assert [e["port"] for e in f.inventory] == [base, base + 1, base + 2]
            f.proc.send_signal(signal.SIGINT)
            assert f.proc.wait(timeout=15) == 0
        finally:
            fleet.__exit__(None, None, None)
        return
    pytest.fail("the simulator could not listen on a free base port three times")
