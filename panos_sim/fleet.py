"""Run the fleet: one HTTPS listener per device, the aiohttp handlers, faults that touch sockets."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from panos_sim import api, history, hosts, reports
from panos_sim.certs import make_context
from panos_sim.device import EVENT_MODES, FAULT_MODES, Device
from panos_sim.platforms import PLATFORMS


@dataclass
class Endpoint:
    """The socket side of one device."""

    port: int
    ctx: ssl.SSLContext
    fingerprint: str
    cert_pem: str
    server: asyncio.AbstractServer | None = None
    reopen: asyncio.TimerHandle | None = None
    sem: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(5))


def parse_faults(spec: str | None, n: int, seed: int) -> dict[int, str]:
    """Map device index -> mode for SPEC like 'down:2%,slow:5%': exactly round(share*N) distinct devices each."""
    if not spec:
        return {}
    wanted: list[tuple[str, int]] = []
    for part in spec.split(","):
        mode, _, share = part.strip().partition(":")
        if mode not in FAULT_MODES or not share:
            raise ValueError(f"bad fault spec {part!r}: want MODE:PERCENT% with MODE in {', '.join(FAULT_MODES)}")
        value = float(share.rstrip("%")) / (100.0 if share.endswith("%") else 1.0)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"bad fault share {share!r}")
        wanted.append((mode, math.floor(value * n + 0.5)))
    # Seeded choice (not security): the same seed picks the same devices.
    if sum(c for _, c in wanted) > n:
        raise ValueError("fault shares add up to more than the fleet")
    order = random.Random(seed).sample(range(n), n)  # nosec B311
    out: dict[int, str] = {}
    pos = 0
    for mode, count in wanted:
        for idx in order[pos : pos + count]:
            out[idx] = mode
        pos += count
    return out


class Fleet:
    """N devices in one process, each on its own port with its own certificate."""

    def __init__(self, n: int, host: str, base_port: int, seed: int, models: list[str]) -> None:
        now = time.time()
        width = max(3, len(str(n)))
        self.host = host
        self.base_port = base_port
        self.devices = [Device(i, f"fw-{i + 1:0{width}d}", PLATFORMS[models[i % len(models)]], seed, now)
                        for i in range(n)]
        self.by_name = {d.name: d for d in self.devices}
        self.endpoints: dict[str, Endpoint] = {}
        self.by_port: dict[int, Device] = {}
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        app = web.Application(client_max_size=6 * 1024 * 1024)
        app.router.add_route("*", "/api/", self.handle_api)
        app.router.add_route("*", "/api", self.handle_api)
        app.router.add_get("/_sim/truth", self.handle_truth)
        app.router.add_get("/_sim/history", self.handle_history)
        app.router.add_post("/_sim/fault", self.handle_fault)
        app.router.add_get("/_sim/stats", self.handle_stats)
        app.router.add_get("/_sim/cert", self.handle_cert)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)

    async def start(self) -> None:
        """Create certificates and open every listener."""
        await self.runner.setup()
        for i, dev in enumerate(self.devices):
            ctx, fp, pem = make_context(dev.name, self.host)
            port = self.base_port + i if self.base_port else 0
            ep = Endpoint(port, ctx, fp, pem)
            self.endpoints[dev.name] = ep
            await self._listen(dev)
            if i % 50 == 49:
                await asyncio.sleep(0)  # let early listeners accept while the rest are being made

    async def _listen(self, dev: Device) -> None:
        """Open the device's listener on its port (the same port after down/replace)."""
        ep = self.endpoints[dev.name]
        loop = asyncio.get_running_loop()
        server = self._protocol_factory()
        ep.server = await loop.create_server(server, self.host, ep.port, ssl=ep.ctx, reuse_address=True, backlog=128)
        sock: socket.socket = ep.server.sockets[0]
        ep.port = sock.getsockname()[1]
        self.by_port[ep.port] = dev

    def _protocol_factory(self) -> web.Server:
        """Return the aiohttp low-level server shared by every listener."""
        server = self.runner.server
        if server is None:
            raise RuntimeError("the fleet is not started")
        return server

    def _drop(self, dev: Device) -> None:
        """Close the listener and every open connection of DEV: clients get 'connection refused'."""
        ep = self.endpoints[dev.name]
        if ep.server is not None:
            ep.server.close()
            ep.server = None
        server = self._protocol_factory()
        for handler in server.connections:
            transport = handler.transport
            if transport is not None and transport.get_extra_info("sockname")[1] == ep.port:
                transport.abort()

    def inventory(self) -> dict[str, Any]:
        """Return the inventory document."""
        return {
            "devices": [
                {
                    "name": d.name, "host": self.host, "port": self.endpoints[d.name].port, "serial": d.serial,
                    "model": d.platform.model, "sw_version": d.platform.sw_version, "username": d.username,
                    "password": d.password, "api_key": d.api_key,
                    "tls_fingerprint_sha256": self.endpoints[d.name].fingerprint,
                }
                for d in self.devices
            ]
        }

    async def apply_fault(self, dev: Device, mode: str, duration_s: float) -> dict[str, Any]:
        """Apply a fault mode to DEV now."""
        now = time.time()
        ep = self.endpoints[dev.name]
        if ep.reopen is not None:
            ep.reopen.cancel()
            ep.reopen = None
        if mode in EVENT_MODES:
            if mode == "reboot":
                dev.reboot(now)
            elif mode == "failover":
                dev.failover(now)
                if duration_s > 0:
                    loop = asyncio.get_running_loop()
                    # Dated when it happens, not when it was planned: counters already served
                    # between the two must not be rewritten.
                    loop.call_later(duration_s, lambda: dev.failover(time.time()))
            else:
                dev.replace(now)
                ep.ctx, ep.fingerprint, ep.cert_pem = make_context(dev.name, self.host)
                self._drop(dev)
                await self._listen(dev)
        else:
            was_down = ep.server is None
            dev.set_state_fault(mode, duration_s, now)
            if mode == "down":
                self._drop(dev)
                if duration_s > 0:
                    ep.reopen = asyncio.get_running_loop().call_later(duration_s, self._reopen, dev)
            elif was_down:
                await self._listen(dev)
        return {"device": dev.name, "mode": mode, "duration_s": duration_s, "serial": dev.serial,
                "port": ep.port, "tls_fingerprint_sha256": ep.fingerprint}

    def _reopen(self, dev: Device) -> None:
        """End a timed 'down' fault."""
        self.endpoints[dev.name].reopen = None
        if dev.fault(time.time()) == "none":
            self._tasks.add(task := asyncio.ensure_future(self._listen(dev)))
            task.add_done_callback(self._tasks.discard)

    # --- HTTP handlers ------------------------------------------------------------------------
    def _device(self, request: web.Request) -> Device:
        """Return the device whose port received REQUEST, or ?device=NAME."""
        name = request.query.get("device")
        if name:
            if name not in self.by_name:
                raise web.HTTPNotFound(text=f"no device {name[:40]}")
            return self.by_name[name]
        transport = request.transport
        port = transport.get_extra_info("sockname")[1] if transport is not None else 0
        return self.by_port[port]

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        """Serve /api/ with the device's faults, the 5-request limit and the stats."""
        dev = self._device(request)
        params: dict[str, str] = dict(request.query)
        if request.method == "POST" and request.content_type in ("application/x-www-form-urlencoded",
                                                                 "multipart/form-data"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        stats = dev.stats
        command = api.command_name(params)
        stats.requests[command] += 1
        if command == "op:show counter interface":
            stats.poll_times.append(time.time())
        if "key" in request.query:
            stats.key_in_url += 1
        ep = self.endpoints[dev.name]
        stats.inflight += 1
        stats.max_inflight = max(stats.max_inflight, stats.inflight)
        try:
            async with ep.sem:
                stats.active += 1
                stats.max_concurrency = max(stats.max_concurrency, stats.active)
                try:
                    return await self._serve(dev, params, request)
                finally:
                    stats.active -= 1
        finally:
            stats.inflight -= 1

    async def _serve(self, dev: Device, params: dict[str, str], request: web.Request) -> web.StreamResponse:
        """Apply the state fault, then answer."""
        mode = dev.fault(time.time())
        if mode == "blackhole":
            while not self.stopping.is_set() and dev.fault(time.time()) == "blackhole":
                await api.pause(0.2, self.stopping)
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        await api.delay_for(dev, mode, self.stopping)
        if mode == "http500":
            return web.Response(status=500, text="<html><body><h1>500 Internal Server Error</h1></body></html>",
                                content_type="text/html")
        # Header names are case-insensitive: look them up through aiohttp's CIMultiDict.
        headers = {k: request.headers[k] for k in ("X-PAN-KEY", "Authorization") if k in request.headers}
        reply = api.answer(dev, params, headers, time.time())
        body = reply.body
        if mode == "bad_xml" and reply.status == 200:
            body = body[: max(len(body) // 2, 10)]
        return web.Response(body=body, status=reply.status, reason=reply.reason,
                            headers={"Content-Type": api.XML_TYPE})

    async def handle_truth(self, request: web.Request) -> web.Response:
        """GET /_sim/truth?from=T1&to=T2: exact counter increase and true gauges."""
        dev = self._device(request)
        try:
            t1 = float(request.query["from"])
            t2 = float(request.query.get("to", time.time()))
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="want from=EPOCH&to=EPOCH") from None
        if not (math.isfinite(t1) and math.isfinite(t2)) or t2 < t1:
            raise web.HTTPBadRequest(text="want finite from <= to")
        return web.json_response({**dev.truth(t1, t2), "hosts": hosts.truth(dev, t2),
                                  "applications": reports.applications(dev, t1, t2),
                                  "app_categories": reports.categories(dev, t1, t2),
                                  "acc_threats": reports.threats(dev, t1, t2),
                                  "acc_url_categories": reports.url_categories(dev, t1, t2),
                                  "acc_sources": reports.sources(dev, t1, t2)[:100]})

    async def handle_history(self, request: web.Request) -> web.Response:
        """GET /_sim/history?from=T1&to=T2&step=S: what polls every S seconds would have read (panos_sim.history)."""
        dev = self._device(request)
        try:
            t1 = float(request.query["from"])
            t2 = float(request.query.get("to", time.time()))
            step = float(request.query.get("step", 30))
            body = history.history(dev, t1, t2, step)
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"want from=EPOCH&to=EPOCH&step=SECONDS ({exc})") from None
        return web.json_response(body)

    async def handle_fault(self, request: web.Request) -> web.Response:
        """POST /_sim/fault {"mode", "duration_s"[, "device", "latency_s"]}."""
        try:
            body = await request.json()
            mode = str(body.get("mode", "none"))
            duration = float(body.get("duration_s", 0) or 0)
            latency = body.get("latency_s")
        except (ValueError, AttributeError, TypeError):
            raise web.HTTPBadRequest(text="want JSON {mode, duration_s}") from None
        if mode not in FAULT_MODES or duration < 0:
            raise web.HTTPBadRequest(text=f"mode must be one of {', '.join(FAULT_MODES)}")
        name = body.get("device")
        dev = self.by_name.get(str(name)) if name else self._device(request)
        if dev is None:
            raise web.HTTPNotFound(text="no such device")
        if latency is not None:
            dev.latency_s = max(float(latency), 0.0)
        return web.json_response(await self.apply_fault(dev, mode, duration))

    async def handle_stats(self, request: web.Request) -> web.Response:
        """GET /_sim/stats: this device's stats, or every device's with ?all=1; ?calls=1 adds `poll_times`."""
        devices = self.devices if request.query.get("all") else [self._device(request)]
        calls = bool(request.query.get("calls"))
        return web.json_response({"devices": {d.name: d.stats.as_dict(calls) for d in devices}})

    async def handle_cert(self, request: web.Request) -> web.Response:
        """GET /_sim/cert: the device's current certificate in PEM (for CA-bundle tests)."""
        dev = self._device(request)
        return web.Response(text=self.endpoints[dev.name].cert_pem, content_type="application/x-pem-file")

    async def stop(self) -> None:
        """Close every listener and connection."""
        self.stopping.set()
        for ep in self.endpoints.values():
            if ep.reopen is not None:
                ep.reopen.cancel()
            if ep.server is not None:
                ep.server.close()
        await self.runner.cleanup()


def write_inventory(path: str, doc: dict[str, Any]) -> None:
    """Write PATH atomically (temp file in the same folder, fsync, rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
