"""An answer's time is the kernel's arrival stamp, not the moment a busy worker got to read it."""

import contextlib
import select
import socket
import ssl
import threading
import time
from urllib.parse import urlencode

import pytest
from conftest import device_for, insecure_context

import panos_stamp
from panos_api import PanosClient

pytestmark = pytest.mark.skipif(
    not panos_stamp.ENABLED, reason="kernel arrival stamps need SO_TIMESTAMPNS (Linux, asm-generic architectures)"
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


def _two_answers(entry, tls_max=ssl.TLSVersion.TLSv1_3):
    """Ask twice on one new connection; return ((first, before, after), (second, before, after), ticket?)."""
    ctx = insecure_context()
    ctx.maximum_version = tls_max
    conn = panos_stamp.StampingHTTPSConnection(
        entry["host"], entry["port"], ssl_context=ctx, socket_options=panos_stamp.SOCKET_OPTIONS, timeout=10
    )
    try:
        answers = []
        for _ in range(2):
            before = time.time()
            stamp = _ask(conn, entry)
            answers.append((stamp, before, time.time()))
        assert conn.sock.version() == tls_max.name.replace("v1_", "v1.")
        has_ticket = conn.sock.session.has_ticket
    finally:
        conn.close()
    return answers[0], answers[1], has_ticket


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_every_answer_is_stamped_once_the_session_tickets_are_read(sim_fleet, tls_max):
    first, second, has_ticket = _two_answers(sim_fleet.inventory[0], tls_max)
    if tls_max == ssl.TLSVersion.TLSv1_3:
        assert has_ticket  # the simulator's TLS 1.3 server sends tickets after the handshake
    for stamp, before, after in (first, second):
        assert stamp is not None and before <= stamp <= after


def test_an_answer_read_together_with_a_session_ticket_keeps_the_python_time(sim_fleet, monkeypatch):
    # Tickets that come after the post-handshake wait arrive ahead of the first answer in the
    # stream: the byte peeked at may be a ticket's, so that answer carries no kernel stamp.
    monkeypatch.setattr(panos_stamp.StampingHTTPSConnection, "_read_tickets", staticmethod(lambda sock, wait: None))
    first, second, has_ticket = _two_answers(sim_fleet.inventory[0])
    assert has_ticket
    assert first[0] is None
    stamp, before, after = second
    assert stamp is not None and before <= stamp <= after


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
    with PanosClient(device_for(entry)) as fw:
        fw.system_info()  # opens the keep-alive connection
        busy.set()
        before = time.time()
        fw.system_info()
    assert len(woke) == 1
    if stamping:
        assert before <= fw.last_response_time <= woke[0] - LATE_S, (fw.last_response_time - before, woke[0] - before)
    else:  # stamped in Python when the worker got round to it: the error the stamp removes
        assert fw.last_response_time >= woke[0], (fw.last_response_time - before, woke[0] - before)


@pytest.fixture
def server_without_tickets():
    """A TLS 1.3 HTTP server that issues no session tickets (address, stopped afterwards)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from panos_sim.certs import make_context

    ctx, _fingerprint, _pem = make_context("no-tickets", "127.0.0.1")
    ctx.num_tickets = 0

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<response status='success'><result><serial>1</serial></result></response>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address
    finally:
        server.shutdown()
        server.server_close()


def test_the_first_answer_of_a_server_without_tickets_is_stamped(server_without_tickets):
    host, port = server_without_tickets
    conn = panos_stamp.StampingHTTPSConnection(
        host, port, ssl_context=insecure_context(), socket_options=panos_stamp.SOCKET_OPTIONS, timeout=10
    )
    try:
        before = time.time()
        first = _ask(conn, {"api_key": "k"})
        after = time.time()
        assert conn.sock.version() == "TLSv1.3"
        assert not conn.sock.session.has_ticket
    finally:
        conn.close()
    assert first is not None and before <= first <= after


def test_a_server_that_speaks_before_any_request_is_refused():
    from panos_sim.certs import make_context

    ctx, _fingerprint, _pem = make_context("talker", "127.0.0.1")
    ctx.num_tickets = 0  # its greeting is the first thing after the handshake
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def talk():
            raw, _ = listener.accept()
            with contextlib.suppress(OSError), ctx.wrap_socket(raw, server_side=True) as tls:
                tls.sendall(b"220 hello\r\n")  # not HTTP: nothing was asked yet
                time.sleep(1.0)

        threading.Thread(target=talk, daemon=True).start()
        conn = panos_stamp.StampingHTTPSConnection(
            *listener.getsockname(),
            ssl_context=insecure_context(),
            socket_options=panos_stamp.SOCKET_OPTIONS,
            timeout=5,
        )
        try:
            with pytest.raises(ConnectionError, match="before any request"):
                conn.connect()
        finally:
            conn.close()
