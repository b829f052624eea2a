"""The web's own request metrics: `panfm_web_requests_total` and `panfm_web_request_duration_seconds`.

Recorded in an after_request hook, served on the same `/metrics` answer as the database's
series. Under gunicorn (`gunicorn.conf.py` sets `PROMETHEUS_MULTIPROC_DIR` to a private folder
before the workers start) prometheus_client's multiprocess mode writes each worker's values to
files there and a `MultiProcessCollector` sums every worker's at scrape time; without it (Flask's
test client, `python app.py`) the metrics live on the app's own registry.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def multiproc_dir() -> str | None:
    """The multiprocess folder when gunicorn set one up, else None."""
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


def init_request_metrics(app: Flask, registry: CollectorRegistry) -> None:
    """Record every request of `app`; expose the values through `registry` (the /metrics one)."""
    shared = multiproc_dir()
    # Multiprocess mode: the metric objects write to the folder's files and are registered
    # nowhere; the collector reads every worker's files at scrape time.
    own = None if shared else registry
    requests = Counter(
        "panfm_web_requests", "HTTP requests answered by the web, by method, Flask endpoint and status.",
        ["method", "endpoint", "status"], registry=own,
    )
    duration = Histogram(
        "panfm_web_request_duration_seconds", "Time to answer one HTTP request, by Flask endpoint.",
        ["endpoint"], buckets=BUCKETS, registry=own,
    )
    if shared:
        MultiProcessCollector(registry, path=shared)  # type: ignore[no-untyped-call]

    @app.before_request
    def _start_timer() -> None:
        g.panfm_request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        # Endpoint names are the app's own (bounded); a path no route matches is "none".
        endpoint = request.endpoint or "none"
        method = request.method if request.method in METHODS else "other"
        requests.labels(method=method, endpoint=endpoint, status=str(response.status_code)).inc()
        started = g.get("panfm_request_started")
        if started is not None:
            duration.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        return response
