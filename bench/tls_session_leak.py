"""Native memory kept per new TLS connection to a firewall, with and without reading the session (issue 17).

    .venv/bin/python bench/tls_session_leak.py [--connections 300]

Starts `python -m panos_sim` with one device and, in this process, opens `--connections`
connections to it after a warm-up of 20, for each way below, and prints glibc's bytes in use
(`mallinfo2().uordblks`, after `gc.collect()`) gained per connection:

1. plain `ssl`: handshake, one request, close;
2. the same, reading `SSLSocket.session` after the request (what resuming needs);
3. the same, also passing the session read to the next handshake (resumed);
4. `PanosClient` as the clock runs it: a call, then `close()` (a new connection per call, as
   the inventory makes one per firewall every 5 minutes), with `resume_sessions` as this Python
   gets it (`http1.SESSION_GETTER_LEAKS`), then forced on.

With each: this process's CPU per connection (`time.process_time`: the client's handshake,
request and close; the simulator is another process), which is what resuming saves.

CPython before 3.12.8 leaks a copy of the session on every read of `SSLSocket.session`
(gh-116810): ways 2, 3 and 4 forced on gain ~6 KB per connection there, 1 and 4 as shipped
gain nothing. Linux with glibc only (mallinfo2).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reliability.harness import Procs, Sim  # noqa: E402


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


_LIBC = ctypes.CDLL("libc.so.6")
_LIBC.mallinfo2.restype = _Mallinfo2


def in_use() -> int:
    gc.collect()
    return int(_LIBC.mallinfo2().uordblks)


def per_connection(step: Callable[[], object], n: int) -> tuple[float, float]:
    """Bytes in use gained and ms of this process's CPU per call of `step`, over `n` calls after 20 of warm-up."""
    for _ in range(20):
        step()
    before = in_use()
    cpu = time.process_time()
    for _ in range(n):
        step()
    cpu = time.process_time() - cpu
    return (in_use() - before) / n, cpu * 1000 / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=300)
    args = ap.parse_args()
    from panfm.models import AddressPolicy, DeviceConfig, TlsConfig
    from panfm.xmlapi import PanosClient, http1

    print(f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}; "
          f"http1.SESSION_GETTER_LEAKS = {http1.SESSION_GETTER_LEAKS}", flush=True)
    with Procs(Path(tempfile.mkdtemp(prefix="tls-session-"))) as procs:
        sim = Sim.start(procs, 1, seed=1)
        entry = sim.inventory[0]
        host, port = entry["host"], int(entry["port"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kept: list[ssl.SSLSession | None] = [None]

        def raw(read_session: bool, resume: bool) -> Callable[[], None]:
            def step() -> None:
                with socket.create_connection((host, port)) as sock, \
                        ctx.wrap_socket(sock, server_hostname=host, session=kept[0] if resume else None) as tls:
                    tls.sendall(b"GET /api/?type=version HTTP/1.1\r\nHost: fw\r\nConnection: close\r\n\r\n")
                    while tls.recv(65536):
                        pass
                    if read_session:
                        kept[0] = tls.session
            return step

        device = DeviceConfig(id="bench", name=entry["name"], host=host, port=port, api_key=entry["api_key"],
                              tls=TlsConfig(mode="pin", fingerprint_sha256=entry["tls_fingerprint_sha256"]))
        policy = AddressPolicy.of(("127.0.0.0/8",))

        def client(resume: bool | None) -> Callable[[], None]:
            fw = PanosClient(device, policy=policy)
            if resume is not None:
                fw.resume_sessions = resume

            def step() -> None:
                fw.system_info()
                fw.close()
            return step

        ways = [
            ("ssl: handshake, request, close", raw(False, False)),
            ("ssl: + read SSLSocket.session", raw(True, False)),
            ("ssl: + read it and resume with it", raw(True, True)),
            (f"PanosClient as shipped (resume_sessions={not http1.SESSION_GETTER_LEAKS})", client(None)),
            ("PanosClient, resume_sessions forced on", client(True)),
        ]
        for name, step in ways:
            kept_bytes, cpu_ms = per_connection(step, args.connections)
            print(f"{name:62s} {kept_bytes:8.0f} B, {cpu_ms:5.2f} ms CPU per connection", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
