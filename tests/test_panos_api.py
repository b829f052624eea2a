"""The XML API client against the real simulator over HTTPS: TLS modes, keys, data, logs."""

import dataclasses
import ssl
import sys
import time

import pytest
from conftest import LOOPBACK, device_for

import panfm.xmlapi.http1 as http1
from panfm.xmlapi.client import (
    AuthError,
    FingerprintMismatch,
    InterfaceNotFound,
    PanosClient,
    TlsError,
    fetch_fingerprint,
)


def stats_of(fleet, entry):
    return fleet.stats(entry)[entry["name"]]


@pytest.fixture(scope="module")
def fleet(sim_fleet):
    return sim_fleet


@pytest.fixture
def dev(fleet):
    return fleet.inventory[0]


def test_it_accepts_the_pinned_certificate(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        info = fw.system_info()
    assert info.serial == dev["serial"]
    assert info.model == dev["model"]


def test_it_dates_an_answer_at_its_request_and_keeps_the_round_trip(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        before = time.time()
        fw.system_info()
        after = time.time()
    assert before <= fw.last_sent_time <= fw.last_sent_time + fw.last_round_trip <= after


def test_a_late_worker_widens_the_round_trip_but_does_not_move_the_date(dev, monkeypatch):
    late_s = 0.4
    original = http1.Connection._read_head
    slept_at: list[float] = []

    def late(self, *args):  # the answer is there, but this thread gets to it only later (a busy machine)
        slept_at.append(time.time())
        time.sleep(late_s)
        return original(self, *args)

    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        fw.system_info()  # connected and warm
        monkeypatch.setattr(http1.Connection, "_read_head", late)
        fw.system_info()
    assert fw.last_sent_time <= slept_at[-1]
    assert fw.last_round_trip >= late_s


def test_it_refuses_a_wrong_pin_before_sending_any_key(fleet, dev):
    before = stats_of(fleet, dev)
    wrong = "0" * 64
    with (
        PanosClient(device_for(dev, fingerprint_sha256=wrong), policy=LOOPBACK) as fw,
        pytest.raises(FingerprintMismatch) as err,
    ):
        fw.system_info()
    assert err.value.expected == wrong
    assert err.value.actual == dev["tls_fingerprint_sha256"]
    assert dev["api_key"] not in str(err.value)
    after = stats_of(fleet, dev)
    assert after["requests_total"] == before["requests_total"], "a request reached the device"
    assert after["keygen"] == before["keygen"]


def test_it_refuses_a_wrong_pin_before_keygen_too(fleet, dev):
    before = stats_of(fleet, dev)
    device = device_for(dev, key=False, creds=True, fingerprint_sha256="ab" * 32)
    with PanosClient(device, policy=LOOPBACK) as fw, pytest.raises(FingerprintMismatch):
        fw.keygen()
    assert stats_of(fleet, dev) == before


def test_it_reads_the_same_fingerprint_the_inventory_lists(dev):
    assert fetch_fingerprint(dev["host"], dev["port"], timeout=3, policy=LOOPBACK) == dev["tls_fingerprint_sha256"]
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        assert fw.peer_fingerprint() == dev["tls_fingerprint_sha256"]


def test_it_verifies_the_chain_against_a_ca_bundle(fleet, dev):
    # The simulator's self-signed certificate is its own CA.
    pem = ssl.get_server_certificate((dev["host"], dev["port"]), timeout=3)
    with PanosClient(device_for(dev, mode="verify", ca_pem=pem), policy=LOOPBACK) as fw:
        assert fw.system_info().serial == dev["serial"]
    other = ssl.get_server_certificate((fleet.inventory[1]["host"], fleet.inventory[1]["port"]), timeout=3)
    with (
        PanosClient(device_for(dev, mode="verify", ca_pem=other), policy=LOOPBACK) as fw,
        pytest.raises(TlsError, match="verif"),
    ):
        fw.system_info()  # another device's certificate is not this one's CA


def test_it_rejects_a_self_signed_certificate_against_the_system_cas(dev):
    with PanosClient(device_for(dev, mode="verify"), policy=LOOPBACK) as fw, pytest.raises(TlsError) as err:
        fw.system_info()
    assert not isinstance(err.value, FingerprintMismatch)
    assert "certificate" in str(err.value)


def test_it_trusts_the_operating_systems_ca_store_in_verify_mode(dev, tmp_path, monkeypatch):
    # "verify" without a bundle means the system CAs (README, docs/client.md), where an admin's
    # update-ca-certificates puts the company CA, not certifi's copy of Mozilla's list.
    # SSL_CERT_FILE is OpenSSL's own way to name the system store: make the sim's cert one of it.
    ca = tmp_path / "system-ca.pem"
    ca.write_text(ssl.get_server_certificate((dev["host"], dev["port"]), timeout=3))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with PanosClient(device_for(dev, mode="verify"), policy=LOOPBACK) as fw:
        assert fw.system_info().serial == dev["serial"]


def test_it_talks_without_checks_only_when_insecure_is_chosen(dev, caplog):
    with (
        caplog.at_level("WARNING", logger="panfm.xmlapi"),
        PanosClient(device_for(dev, mode="insecure"), policy=LOOPBACK) as fw,
    ):
        assert fw.insecure is True
        assert fw.system_info().serial == dev["serial"]
        fw.session_info()
    warnings = [r for r in caplog.records if r.name == "panfm.xmlapi" and "insecure" in r.getMessage()]
    assert len(warnings) == 1
    with PanosClient(device_for(dev), policy=LOOPBACK) as pinned:
        assert pinned.insecure is False


def test_it_refuses_a_pin_that_is_not_a_sha256(dev):
    with pytest.raises(TlsError):
        PanosClient(device_for(dev, fingerprint_sha256="abc"), policy=LOOPBACK)


def test_it_refuses_a_device_without_credentials(dev):
    with pytest.raises(AuthError):
        PanosClient(device_for(dev, key=False), policy=LOOPBACK)


def test_it_keeps_one_connection_alive_across_calls(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        for _ in range(4):
            fw.session_info()
        assert fw.connections_made == 1, "one TCP+TLS connection for all calls"


def test_it_reconnects_after_close_and_resumes_the_tls_session(fleet, dev):
    fw = PanosClient(device_for(dev), policy=LOOPBACK)
    fw.resume_sessions = True  # on every Python here, though the clock turns it off where it leaks
    try:
        first = fw.session_info()
        fw.system_info()
        assert fw.connections_made == 1
        before = stats_of(fleet, dev)["requests_total"]
        fw.close()
        again = fw.session_info()  # a closed client connects again on its next call
        assert type(again) is type(first) and again.max == first.max
        assert fw.connections_made == 2 and stats_of(fleet, dev)["requests_total"] > before
        assert fw.sessions_resumed == 1, "the second handshake resumed the first one's TLS session"
    finally:
        fw.close()


def test_a_resumed_session_still_checks_the_pin(fleet, dev):
    fw = PanosClient(device_for(dev), policy=LOOPBACK)
    fw.resume_sessions = True
    try:
        fw.session_info()
        fw.close()
        assert fw._tls_session is not None
        other = PanosClient(device_for(dev, fingerprint_sha256="0" * 64), policy=LOOPBACK)
        other._ctx, other._tls_session = fw._ctx, fw._tls_session  # even with a good session, the leaf is compared
        with pytest.raises(FingerprintMismatch):
            other.session_info()
    finally:
        fw.close()


def test_where_reading_the_session_leaks_it_is_never_read(dev, monkeypatch):
    # CPython before 3.12.8 leaks ~6 KB of native memory per read of SSLSocket.session
    # (gh-116810): one read per inventory connection was the clock's memory growth.
    reads = []
    real = http1.Connection.session
    monkeypatch.setattr(http1.Connection, "session", property(lambda c: reads.append(1) or real.fget(c)))
    assert http1.SESSION_GETTER_LEAKS or sys.version_info >= (3, 12)  # 3.11 never got the fix
    fw = PanosClient(device_for(dev), policy=LOOPBACK)
    assert fw.resume_sessions is not http1.SESSION_GETTER_LEAKS
    fw.resume_sessions = False
    try:
        for _ in range(3):
            fw.session_info()
            fw.close()
        assert fw.connections_made == 3 and fw.sessions_resumed == 0 and reads == []
        fw.resume_sessions = True
        fw.session_info()
        fw.close()
        fw.session_info()
        assert reads and fw.sessions_resumed == 1
    finally:
        fw.close()


def test_it_reconnects_when_the_device_closed_an_idle_connection(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        fw.session_info()
        fw._idle[0].sock.shutdown(2)  # what a device's keep-alive timeout does to an idle connection
        assert fw.session_info().max > 0
        assert fw.connections_made == 2


def test_it_never_puts_the_key_in_a_url(fleet, dev):
    with PanosClient(device_for(dev, key=False, creds=True), policy=LOOPBACK) as fw:
        fw.keygen()
        fw.counters()
        fw.op("<show><system><info></info></system></show>")
    assert stats_of(fleet, dev)["key_in_url"] == 0


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_it_generates_the_key_with_special_characters_in_the_password(fleet, index):
    entry = fleet.inventory[index]
    assert any(c in entry["password"] for c in "&<\"!")
    stored = []
    with PanosClient(device_for(entry, key=False, creds=True), on_key=stored.append, policy=LOOPBACK) as fw:
        assert fw.system_info().serial == entry["serial"]
        fw.session_info()
    assert stored == [entry["api_key"]], "one keygen, reused for the second call"


def test_it_raises_auth_error_for_a_wrong_password(dev):
    device = dataclasses.replace(device_for(dev, key=False, creds=True), password=dev["password"] + "x")
    with PanosClient(device, policy=LOOPBACK) as fw, pytest.raises(AuthError) as err:
        fw.system_info()
    assert dev["password"] not in str(err.value)


def test_it_returns_the_raw_xml_of_an_op_command(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        text = fw.op("<show><system><info></info></system></show>")
    assert text.lstrip().startswith("<response")
    assert dev["serial"] in text


def test_it_reads_every_monitoring_command(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        assert fw.system_resources().mem_total_bytes > 0
        assert 0 <= fw.mp_cpu() <= 100
        assert fw.session_info().max > 0
        rm = fw.resource_monitor("minute", last=5)
        assert rm.dataplanes and all(len(v) <= 5 for dp in rm.dataplanes for v in dp.cpu_average.values())
        assert fw.counters().hw
        assert any(i.kind == "physical" for i in fw.interfaces())
        assert fw.ha_state() is not None
        assert isinstance(fw.licenses(), tuple)
        assert isinstance(fw.gp_users(), tuple)


def test_it_reads_one_interface_the_arp_table_and_the_version(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        port = next(i.name for i in fw.interfaces() if i.kind == "physical")
        info, hw, _ = fw.interface(port)
        assert info.name == port
        assert hw is not None and hw.ibytes > 0
        with pytest.raises(InterfaceNotFound):
            fw.interface("ethernet1/99'<x>")
        assert all(e.ip and e.mac for e in fw.arp())
        assert fw.version()["serial"] == dev["serial"]


def test_it_runs_a_log_query_from_act_to_fin(fleet, dev):
    gets = stats_of(fleet, dev)["requests"].get("log:get", 0)
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        entries = fw.log_query("system", nlogs=5, deadline_s=20)
    assert 0 < len(entries) <= 5
    assert all(e.get("receive_time") for e in entries)
    requests = stats_of(fleet, dev)["requests"]
    assert requests["log:get"] - gets >= 2, "polled through ACT until FIN"
    assert "log:finish" not in requests


def test_it_counts_bytes_like_the_simulators_truth(fleet):
    entry = fleet.inventory[1]
    with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
        c1, t1, rtt1 = fw.counters(), fw.last_sent_time, fw.last_round_trip
        time.sleep(4)  # a real window of traffic: the counters move with wall-clock time
        c2, t2, rtt2 = fw.counters(), fw.last_sent_time, fw.last_round_trip
    truth = fleet.truth(entry["name"], t1, t2)["interfaces"]
    # Each answer is dated at its request; the device read its counters within the round trip.
    rel = 1e-3 + (rtt1 + rtt2) / (t2 - t1)
    compared = 0
    for name, true in truth.items():
        if name not in c2.hw or true["in_bytes"] < 1000:
            continue
        got_in = c2.hw[name].ibytes - c1.hw[name].ibytes
        got_out = c2.hw[name].obytes - c1.hw[name].obytes
        assert got_in == pytest.approx(true["in_bytes"], rel=rel), name
        assert got_out == pytest.approx(true["out_bytes"], rel=rel), name
        compared += 1
    assert compared >= 2


def test_a_connection_in_use_when_the_client_closes_is_not_kept(dev):
    with PanosClient(device_for(dev), policy=LOOPBACK) as fw:
        fw.session_info()
        in_use = fw._connection(5.0)  # what a call in another thread holds
        fw.close()
        fw._release(in_use, keep_alive=True)  # its answer arrives after the close
        assert fw._idle == [] and in_use.sock.fileno() == -1
