"""The inventory's log query and report jobs: enqueued together, read one by one, log queries page by page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from panfm.models import LogJob

log = logging.getLogger("panfm.collector")

# Entries asked for per log answer; more are read page by page (`skip`). A real firewall's entry is
# ~3-4 kB of XML (a 10.x traffic entry has 101 fields), so 5,000 in one answer (15-20 MB) passed
# the client's 10 MB body limit (panfm.xmlapi MAX_BODY_BYTES) and lost the whole count; a page
# stays far below it, and its tree (~100,000 elements) is parsed and dropped before the next.
LOG_PAGE = 1000
# A log query or report job is left alone this long before its first `get` (then polled if still
# running): asked at once it is always ACT, and every `get` is a call (bench/bench_cpu.py).
JOB_WAIT_S = 0.25


class JobClient(Protocol):
    def start_log_query(self, log_type: str, query: str | None = None, nlogs: int = 20, *,
                        fields: Collection[str] | None = None, deadline_s: float | None = None,
                        skip: int = 0) -> Any: ...
    def job_entries(self, job: Any, deadline_s: float, first_wait_s: float = 0.0) -> Any: ...
    def stop_job(self, job: Any) -> None: ...


def _entries(result: Any) -> tuple[Mapping[str, str], ...]:
    if isinstance(result, LogJob):
        return result.entries
    return tuple(result or ())


class Jobs:
    """Log query or report jobs of one inventory: enqueued together (`start`), read one by one (`read`).

    Each is a part of the document by its name: an enqueue or a read that fails, or a read the
    deadline leaves no time for, puts the reason under that name in `errors`. A job not read
    (its read was cut by the deadline) is stopped on the firewall (`action=finish`). A log query
    of more than `LOG_PAGE` entries asks for its first page; `read` asks for the next ones while
    a page comes back full (one job at a time). A page that fails fails the part: a count of some
    pages only would read as a whole one.
    """

    def __init__(self, client: JobClient, part: Callable[..., Any]) -> None:
        self.client, self.part = client, part
        self.pending: dict[str, Any] = {}
        self.logs: dict[str, tuple[str, str, int, Collection[str]]] = {}

    def start(self, name: str, enqueue: Callable[[], Any]) -> None:
        job = self.part(name, enqueue, keep=False)
        if job is not None:
            self.pending[name] = job

    def start_log(self, name: str, log_type: str, query: str, nlogs: int, fields: Collection[str],
                  budget: Callable[[], float]) -> None:
        self.logs[name] = (log_type, query, nlogs, fields)
        self.start(name, lambda: self.client.start_log_query(log_type, query, min(nlogs, LOG_PAGE), fields=fields,
                                                             deadline_s=budget()))

    def read(self, name: str, budget: Callable[[], float],
             wrap: Callable[[Callable[[], Any]], Callable[[], Any]] = lambda fn: fn,
             ) -> tuple[Mapping[str, str], ...] | None:
        """The job's entries (None: failed, reason in `errors`); `wrap` wraps the read (`_optional`)."""
        job = self.pending.pop(name, None)
        if job is None:
            return None  # its enqueue failed or was cut: the reason is in `errors` already
        if job == ():
            return ()  # enqueued through `_optional`, which found the report missing (no job)
        asked = []

        def fetch() -> Any:
            asked.append(True)
            return _entries(self.client.job_entries(job, budget(), JOB_WAIT_S))

        got: tuple[Mapping[str, str], ...] | None = self.part(name, wrap(fetch), keep=False)
        if not asked:  # cut by the deadline before its read: still running on the firewall
            self.stop(job)
        if got is None or name not in self.logs:
            return got
        log_type, query, nlogs, fields = self.logs[name]
        entries, page = list(got), len(got)
        while page == LOG_PAGE and len(entries) < nlogs:
            skip = len(entries)

            def next_page(skip: int = skip) -> Any:
                more = self.client.start_log_query(log_type, query, min(LOG_PAGE, nlogs - skip), fields=fields,
                                                   deadline_s=budget(), skip=skip)
                return _entries(self.client.job_entries(more, budget(), JOB_WAIT_S))

            more: tuple[Mapping[str, str], ...] | None = self.part(name, next_page, keep=False)
            if more is None:
                return None  # the reason is in `errors`
            entries.extend(more)
            page = len(more)
        return tuple(entries)

    def stop(self, job: Any) -> None:
        try:
            self.client.stop_job(job)
        except Exception:  # best effort: the firewall may be why the deadline ran out
            log.debug("stopping an unread log job failed", exc_info=True)
