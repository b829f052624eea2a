"""The clock's own process metrics (`clock_metrics_port`): poll latency, errors, breakers, jobs.

`ClockMetrics` holds a `CollectorRegistry` of its own (never prometheus_client's global one)
and hands plain callbacks to the collector (`poll_observer()`), so `panfm/collector/` never
imports prometheus_client. `serve(host, port, token=..., public=...)` serves that registry
(prometheus_client's WSGI app behind the same access rule as the web's `/metrics`: a bearer
token, or open when public) from a daemon thread; a port in use raises `MetricsPortUnavailable`.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from panfm.models import LeaseRound
from panfm.ops.lease_keeper import LeaseKeeper
from throughput_collector import PollObserver

# One XML API call: a healthy firewall answers in tens of ms; the timeout is request_timeout (≤ 120 s).
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One fast cycle: bounded by deadline_for(interval) (≤ 14 s) plus the commit.
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)
BREAKER_STATES = ("up", "down", "breaker_open", "unknown")


class MetricsPortUnavailable(Exception):
    """The clock_metrics_port could not be bound (in use, or no permission)."""


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def bearer_matches(header: str, token: str) -> bool:
    """Tell whether an `Authorization` header carries TOKEN as a bearer token (constant time).

    An empty TOKEN never matches. The digests are compared, not the strings: compare_digest
    returns early on a length mismatch, which would tell the token's length.
    """
    scheme, _, given = header.partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    given_digest = hashlib.sha256(given.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(given_digest, hashlib.sha256(token.encode("utf-8")).digest())


def guarded(app: WsgiApp, token: str, public: bool) -> WsgiApp:
    """APP behind the web's `/metrics` rule: open when PUBLIC, else only with the bearer TOKEN (401)."""

    def guard(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if public or bearer_matches(str(environ.get("HTTP_AUTHORIZATION", "")), token):
            return app(environ, start_response)
        # The given token is never logged or echoed: it may be a real one with a typo.
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                            ("WWW-Authenticate", 'Bearer realm="panfm-clock-metrics"')])
        return [b"a bearer token (setting metrics_token) is needed for the clock's metrics\n"]

    return guard


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request, threads never joined (the process exits with them)."""

    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scrape every few seconds is not news."""


class ClockMetrics:
    """The clock's metric objects on a registry of their own; thread-safe (prometheus_client's)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.poll_duration = Histogram(
            "panfm_clock_poll_duration_seconds", "Duration of one XML API call of the fast cycle, answered or failed.",
            ["command"], buckets=CALL_BUCKETS, registry=r,
        )
        self.poll_errors = Counter(
            "panfm_clock_poll_errors", "Failed XML API calls of the fast cycle, by exception class.",
            ["kind"], registry=r,
        )
        self.breaker_state = Gauge(
            "panfm_clock_breaker_state", "Enabled devices by state after the last collection cycle.",
            ["state"], registry=r,
        )
        self.cycle_duration = Histogram(
            "panfm_clock_cycle_duration_seconds", "Duration of one collection cycle (poll and commit).",
            buckets=CYCLE_BUCKETS, registry=r,
        )
        self.job_executions = Counter(
            "panfm_clock_job_executions", "Job runs of the clock (succeeded or failed), by job.", ["job"], registry=r,
        )
        self.job_errors = Counter("panfm_clock_job_errors", "Job runs that failed, by job.", ["job"], registry=r)
        self.missed_runs = Counter("panfm_clock_missed_runs", "Job runs the scheduler missed.", registry=r)
        for state in BREAKER_STATES:
            self.breaker_state.labels(state=state).set(0)
        self._leases: _LeaseCollector | None = None  # on PostgreSQL, from the first lease round

    def poll_observer(self) -> PollObserver:
        """The callbacks the collector calls from its poll workers."""

        def call(command: str, seconds: float) -> None:
            self.poll_duration.labels(command=command).observe(seconds)

        def error(kind: str) -> None:
            self.poll_errors.labels(kind=kind).inc()

        return PollObserver(call=call, error=error)

    def cycle_done(self, seconds: float, states: Iterable[str]) -> None:
        """Record one collection cycle and the devices' states after it."""
        self.cycle_duration.observe(seconds)
        counts = dict.fromkeys(BREAKER_STATES, 0)
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        for state, n in counts.items():
            self.breaker_state.labels(state=state).set(n)

    def job_ran(self, job: str, failed: bool) -> None:
        self.job_executions.labels(job=job).inc()
        if failed:
            self.job_errors.labels(job=job).inc()

    def job_missed(self) -> None:
        self.missed_runs.inc()

    def lease_round(self, keeper: LeaseKeeper, result: LeaseRound | None) -> None:
        """Count one lease round's grants and takeovers (PostgreSQL only: on SQLite one clock holds all).

        The first call registers the lease series, read from `keeper` at each scrape: leases
        held now (valid by this process's clock), leader or not, fenced writes rejected.
        """
        if not keeper.fenced:
            return
        if self._leases is None:
            self._leases = _LeaseCollector(keeper)
            self.registry.register(self._leases)
        if result is not None:
            self._leases.count(result)

    def serve(self, host: str, port: int, *, token: str = "", public: bool = False) -> WSGIServer:
        """Serve the registry at http://host:port/ (any path) from a daemon thread; return the server.

        Access as the web's `/metrics`: `Authorization: Bearer TOKEN`, or anyone when PUBLIC;
        with neither, every scrape gets 401 (the clock logs a warning at start).
        """
        server_class = _Server6 if ":" in host else _Server
        try:
            httpd = make_server(host, port, guarded(make_wsgi_app(self.registry), token, public),
                                server_class, handler_class=_Quiet)
        except OSError as exc:
            raise MetricsPortUnavailable(
                f"setting clock_metrics_port: cannot listen on {host}:{port} ({exc.strerror or exc})"
            ) from None
        threading.Thread(target=httpd.serve_forever, name="clock-metrics", daemon=True).start()
        return httpd


class _LeaseCollector:
    """The clock's lease series, read from its `LeaseKeeper` when scraped; grants and takeovers counted here.

    A grant is a device this clock claimed in a round (free, expired or released); a takeover
    is a grant of a device that had been leased before (its fence was past 1: another clock's
    lease ran out or was given back, or this clock's own lapsed), the sign of a clock that died
    or a rebalance.
    """

    def __init__(self, keeper: LeaseKeeper) -> None:
        self._keeper = keeper
        self._lock = threading.Lock()
        self._grants = 0
        self._takeovers = 0

    def count(self, result: LeaseRound) -> None:
        taken = sum(1 for d in result.granted if (result.held.get(d) or 0) > 1)
        with self._lock:
            self._grants += len(result.granted)
            self._takeovers += taken

    def collect(self) -> Iterator[Metric]:
        keeper = self._keeper
        with self._lock:
            grants, takeovers = self._grants, self._takeovers
        yield GaugeMetricFamily("panfm_clock_leases_held", "Device leases this clock holds now (valid by its clock).",
                                value=len(keeper.held()))
        yield GaugeMetricFamily("panfm_clock_leader", "1 while this clock holds the leader lease, else 0.",
                                value=1 if keeper.is_leader() else 0)
        yield CounterMetricFamily("panfm_clock_lease_grants", "Device leases this clock claimed since it started.",
                                  value=grants)
        yield CounterMetricFamily("panfm_clock_lease_takeovers",
                                  "Device leases this clock claimed that had been leased before (fence past 1).",
                                  value=takeovers)
        yield CounterMetricFamily("panfm_clock_fenced_writes_rejected",
                                  "Samples of this clock the database rejected: their lease's fence had moved on.",
                                  value=keeper.rejected_writes)
