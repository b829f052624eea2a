"""The client's own HTTP/1.1 reading against a scripted TLS server: framings, limits, deadlines, odd answers."""

import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
from conftest import LOOPBACK

from panfm.models import DeviceConfig, TlsConfig
from panfm.xmlapi import http1
from panfm.xmlapi.client import AuthError, BadResponse, ConnectError, PanosClient, PanosTimeout
from panos_sim.certs import make_context

OK = b'<response status="success"><result>fine</result></response>'
SLACK = 1.0  # scheduling slack on a shared 2-core machine


def framed(body: bytes = OK, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n" + extra + \
        b"Content-Length: %d\r\n\r\n" % len(body) + body


class Scripted:
    """A TLS server on loopback that answers the n-th request with `answers[n](conn)` (it writes bytes)."""

    def __init__(self, answers: list[Callable[[ssl.SSLSocket], None]]) -> None:
        self.ctx, self.fingerprint, _ = make_context("scripted", "127.0.0.1")
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connection, args=(raw,), daemon=True).start()

    def _connection(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(10)
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                self.connections += 1
                buf = b""
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length:"))
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    buf = buf[length:]
                    answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                    answer(conn)
        except (OSError, ssl.SSLError):
            return

    def device(self, key: str = "k3y") -> DeviceConfig:
        return DeviceConfig(id="s", name="scripted", host="127.0.0.1", port=self.port, api_key=key,
                            tls=TlsConfig(mode="pin", fingerprint_sha256=self.fingerprint))

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@pytest.fixture
def serve():
    servers: list[Scripted] = []

    def start(*answers: Callable[[ssl.SSLSocket], None]) -> Scripted:
        servers.append(Scripted(list(answers)))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def send(data: bytes, close: bool = False) -> Callable[[ssl.SSLSocket], None]:
    def answer(conn: ssl.SSLSocket) -> None:
        conn.sendall(data)
        if close:
            conn.close()

    return answer


def test_it_reads_a_chunked_answer_with_extensions_and_trailers(serve):
    body = OK
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        b"%x;ext=1\r\n" % 10 + body[:10] + b"\r\n" + b"%X\r\n" % (len(body) - 10) + body[10:] + b"\r\n" + \
        b"0\r\nX-Trailer: yes\r\n\r\n"
    server = serve(send(chunked), send(framed()))
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw:
        assert "fine" in fw.op("<show/>")
        assert "fine" in fw.op("<show/>")  # the chunked answer left the connection in step
        assert fw.connections_made == 1


def test_it_reads_to_the_close_without_a_length_and_connects_again(serve):
    server = serve(send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + OK, close=True), send(framed()))
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw:
        assert "fine" in fw.op("<show/>")
        assert "fine" in fw.op("<show/>")
        assert fw.connections_made == 2 and server.connections == 2


def test_it_skips_an_interim_answer_and_reads_headers_split_over_writes(serve):
    def split(conn: ssl.SSLSocket) -> None:
        whole = b"HTTP/1.1 100 Continue\r\n\r\n" + framed(extra=b"Connection: keep-alive\r\n")
        for i in range(0, len(whole), 7):
            conn.sendall(whole[i:i + 7])

    server = serve(split)
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw:
        assert "fine" in fw.op("<show/>")


def test_it_holds_a_server_that_trickles_the_headers_to_the_call_deadline(serve):
    def trickle(conn: ssl.SSLSocket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    server = serve(trickle)
    with PanosClient(server.device(), timeout=5, policy=LOOPBACK) as fw:
        start = time.monotonic()
        with pytest.raises(PanosTimeout):
            fw.op("<show/>", deadline=0.6)
        assert time.monotonic() - start < 0.6 + SLACK  # each read waited less than 5 s, the total 0.6 s


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 20x OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["huge-headers", "not-http", "bad-status", "huge-length", "two-lengths", "negative-length", "bad-chunk"])
def test_it_refuses_a_malformed_or_oversized_answer(serve, answer):
    server = serve(send(answer, close=True))
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw, pytest.raises(BadResponse):
        fw.op("<show/>")


def test_it_reports_a_body_cut_short_and_a_connection_closed_before_any_answer(serve):
    server = serve(send(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + OK, close=True),
                   send(b"", close=True))
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw:
        with pytest.raises(BadResponse, match=r"cut short|complete"):
            fw.op("<show/>")
        with pytest.raises(ConnectError):
            fw.op("<show/>")


def test_it_sends_the_key_in_a_header_of_one_request_and_refuses_a_key_with_a_line_break(serve):
    server = serve(send(framed()))
    with PanosClient(server.device(), timeout=3, policy=LOOPBACK) as fw:
        fw.op("<show/>")
    request = server.requests[0]
    assert request.startswith(b"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
    assert b"\r\nX-PAN-KEY: k3y\r\n" in request and b"k3y" not in request.split(b"\r\n\r\n", 1)[1]
    with (
        PanosClient(server.device(key="k3y\r\nX-Evil: 1"), timeout=3, policy=LOOPBACK) as fw,
        pytest.raises(AuthError),
    ):
        fw.op("<show/>")
    assert len(server.requests) == 1, "nothing was sent with the bad key"


def test_clients_of_the_same_tls_mode_share_one_context():
    # One context per firewall cost ~13 KB ("pin") to ~1 MB ("verify", system store) each at 2,000 firewalls.
    assert http1.tls_context("pin", None) is http1.tls_context("insecure", None)
    pinned = http1.tls_context("pin", None)
    assert pinned.verify_mode == ssl.CERT_NONE and not pinned.check_hostname  # the leaf is checked after the handshake
    system = http1.tls_context("verify", None)
    assert system is http1.tls_context("verify", None) and system is not pinned
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    assert all(c.minimum_version == ssl.TLSVersion.TLSv1_2 for c in (pinned, system))


def test_a_changed_system_store_gets_a_new_shared_context_and_the_old_one_is_dropped(tmp_path, monkeypatch):
    before = http1.tls_context("verify", None)
    store = tmp_path / "ca.pem"
    store.write_text("")  # an empty store: no CA at all, enough to tell the contexts apart
    monkeypatch.setenv("SSL_CERT_FILE", str(store))  # what update-ca-certificates changes, as OpenSSL sees it
    after = http1.tls_context("verify", None)
    assert after is not before and after is http1.tls_context("verify", None)
    assert sum(1 for k in http1._CONTEXTS if k[:2] == ("verify", None)) == 1
