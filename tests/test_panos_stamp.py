"""An answer's time is the kernel's arrival stamp, not the moment a busy worker got to read it."""

import select
import socket
import ssl
import threading
import time
from urllib.parse import urlencode

import pytest
from conftest import LOOPBACK, device_for, insecure_context, requires

import panfm.xmlapi.stamp as panos_stamp
from panfm.xmlapi.client import PanosClient

pytestmark = requires(
    panos_stamp.ENABLED, "kernel arrival stamps: SO_TIMESTAMPNS (Linux on an asm-generic architecture)"
)

LATE_S = 0.4  # how long the worker is kept from its answer in these tests


@pytest.fixture
def tcp_pair():
    """A connected loopback TCP pair: (client with SO_TIMESTAMPNS on, server side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        for level, name, value in panos_stamp.SOCKET_OPTIONS:
            client.setsockopt(level, name, value)
        server, _ = listener.accept()
    # The kernel turns packet stamping on for the whole machine a moment after the first socket
    # asks for it (a deferred static key): warm up until a byte arrives stamped.
    deadline = time.monotonic() + 5
    while True:
        server.sendall(b"w")
        stamped = panos_stamp.first_byte_time(client, timeout=1.0)
        client.recv(1)
        if stamped is not None or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def test_the_first_byte_keeps_its_arrival_time_however_late_it_is_read(tcp_pair):
    client, server = tcp_pair
    sent = time.time()
    server.sendall(b"HTTP/1.1 200 OK\r\n")
    time.sleep(LATE_S)
    stamp = panos_stamp.first_byte_time(client, timeout=1.0)
    assert stamp is not None
    assert sent - 0.01 <= stamp < sent + LATE_S / 2, stamp - sent  # not when it was read
    # Peeking consumed nothing: the reader still gets every byte.
    client.settimeout(1.0)
    assert client.recv(100) == b"HTTP/1.1 200 OK\r\n"


def test_no_answer_within_the_timeout_is_a_timeout(tcp_pair):
    client, _server = tcp_pair
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        panos_stamp.first_byte_time(client, timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_a_closed_connection_gives_no_stamp(tcp_pair):
    client, server = tcp_pair
    server.close()
    assert panos_stamp.first_byte_time(client, timeout=1.0) is None


def _ask(conn, entry):
    body = urlencode({"type": "op", "cmd": "<show><system><info></info></system></show>"})
    conn.request(
        "POST",
        "/api/",
        body=body,
        headers={"X-PAN-KEY": entry["api_key"], "Content-Type": "application/x-www-form-urlencoded"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    assert b"<serial>" in resp.data  # urllib3 preloads the body
    return conn.answer_time


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_only_answers_that_cannot_be_session_tickets_are_stamped(sim_fleet, tls_max):
    entry = sim_fleet.inventory[0]
    ctx = insecure_context()
    ctx.maximum_version = tls_max
    conn = panos_stamp.StampingHTTPSConnection(
        entry["host"], entry["port"], ssl_context=ctx, socket_options=panos_stamp.SOCKET_OPTIONS, timeout=10
    )
    try:
        first = _ask(conn, entry)
        assert conn.sock.version() == tls_max.name.replace("v1_", "v1.")
        before = time.time()
        second = _ask(conn, entry)
        after = time.time()
    finally:
        conn.close()
    # TLS 1.3 servers send session tickets after the handshake: the first answer on such a
    # connection may not be the first thing to arrive, so it carries no kernel stamp.
    assert (first is None) == (tls_max == ssl.TLSVersion.TLSv1_3)
    assert second is not None and before <= second <= after


@pytest.mark.parametrize("stamping", [True, False])
def test_a_busy_worker_does_not_move_the_answer_time(sim_fleet, monkeypatch, stamping):
    entry = sim_fleet.inventory[1]
    original = panos_stamp.StampingHTTPSConnection.getresponse
    busy = threading.Event()
    woke: list[float] = []

    def late(self):
        if busy.is_set():
            # The answer is there (however slow the simulator is on a loaded machine), and the
            # worker is doing something else for a while before it reads it.
            select.select([self.sock], [], [], 30)
            time.sleep(LATE_S)
            woke.append(time.time())
        return original(self)

    monkeypatch.setattr(panos_stamp.StampingHTTPSConnection, "getresponse", late)
    monkeypatch.setattr(panos_stamp, "ENABLED", stamping)
    with PanosClient(device_for(entry), policy=LOOPBACK) as fw:
        fw.system_info()  # opens the keep-alive connection
        busy.set()
        before = time.time()
        fw.system_info()
    assert len(woke) == 1
    if stamping:
        assert before <= fw.last_response_time <= woke[0] - LATE_S, (fw.last_response_time - before, woke[0] - before)
    else:  # stamped in Python when the worker got round to it: the error the stamp removes
        assert fw.last_response_time >= woke[0], (fw.last_response_time - before, woke[0] - before)
