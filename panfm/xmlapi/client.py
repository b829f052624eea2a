"""The PAN-OS XML API client: one `PanosClient` per firewall, one typed method per command.

The transport (keep-alive session, TLS modes, deadlines, keygen) lives in `transport.py`, the
exception tree in `errors.py`; every name a caller needs is importable from here:

    PanosError
    ├── ConnectError (AddressNotAllowed), PanosTimeout, ServerError(.status)
    ├── TlsError
    │   └── FingerprintMismatch(.expected, .actual)
    ├── BadResponse
    └── ApiError(code, msg): AuthError, ObjectNotPresent, InterfaceNotFound, NoMatches
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable, Collection
from html import escape as xml_escape  # escapes & < > " ': enough for XML text

import panfm.xmlapi.parsers as panos_xml
from panfm.models import (
    ArpEntry,
    CounterSnapshot,
    DhcpLease,
    GpUser,
    HaState,
    InterfaceCounters,
    InterfaceInfo,
    License,
    LogJob,
    ReportJob,
    ResourceMonitor,
    SessionInfo,
    SystemInfo,
    SystemResources,
    UserMapping,
)
from panfm.xmlapi.errors import (
    AddressNotAllowed,
    ConnectError,
    FingerprintMismatch,
    PanosTimeout,
    ServerError,
    TlsError,
)
from panfm.xmlapi.parsers import (
    ApiError,
    AuthError,
    BadResponse,
    InterfaceNotFound,
    NoMatches,
    ObjectNotPresent,
    PanosError,
)
from panfm.xmlapi.transport import PanosTransport, fetch_fingerprint, log

__all__ = [
    "AddressNotAllowed",
    "ApiError",
    "AuthError",
    "BadResponse",
    "ConnectError",
    "FingerprintMismatch",
    "InterfaceNotFound",
    "NoMatches",
    "ObjectNotPresent",
    "PanosClient",
    "PanosError",
    "PanosTimeout",
    "PendingJob",
    "ServerError",
    "TlsError",
    "fetch_fingerprint",
]

_PERIODS = ("second", "minute", "hour", "day", "week")
_LOG_TYPE_RE = re.compile(r"[a-z][a-z-]{1,30}")
_REPORT_RE = re.compile(r"[a-z][a-z0-9-]{1,60}")


@dataclasses.dataclass(frozen=True, slots=True)
class PendingJob:
    """A log or report job enqueued on the firewall and not read yet (`PanosClient.job_entries`)."""

    kind: str  # "log" or "report"
    job_id: str | None  # None: the report was answered at once (`answer`)
    parse: Callable[[bytes], LogJob | ReportJob]
    enqueued: float  # monotonic
    answer: LogJob | ReportJob | None = None


class PanosClient(PanosTransport):
    """Talk to one firewall's XML API over one keep-alive session.

    `timeout` is the total time one call may take (keygen and one retry included) and the
    longest wait for any single read; `connect_timeout` bounds the TCP+TLS connect.
    """

    def op(self, cmd_xml: str, *, deadline: float | None = None) -> str:
        """Run an operational command; `deadline` is its total time in seconds (default `timeout`)."""
        end = time.monotonic() + (self.timeout if deadline is None else deadline)
        return self._call({"type": "op", "cmd": cmd_xml}, end).decode("utf-8")

    def _op_bytes(self, cmd_xml: str) -> bytes:
        return self._call({"type": "op", "cmd": cmd_xml}, time.monotonic() + self.timeout)

    def system_info(self) -> SystemInfo:
        """Return `show system info`."""
        return panos_xml.parse_system_info(self._op_bytes("<show><system><info></info></system></show>"))

    def system_resources(self) -> SystemResources:
        """Return `show system resources` (management-plane CPU and memory)."""
        return panos_xml.parse_system_resources(
            self._op_bytes("<show><system><resources></resources></system></show>")
        )

    def mp_cpu(self) -> float:
        """Return the management-plane CPU 1-minute average (NoMatches when the platform lacks it)."""
        cmd = "<show><system><state><filter>sys.monitor.s*.mp.exports</filter></state></system></show>"
        return panos_xml.parse_mp_cpu(self._op_bytes(cmd))

    def session_info(self) -> SessionInfo:
        """Return `show session info`."""
        return panos_xml.parse_session_info(self._op_bytes("<show><session><info></info></session></show>"))

    def resource_monitor(self, period: str = "minute", last: int | None = 1) -> ResourceMonitor:
        """Return `show running resource-monitor` for one period, trimmed to the `last` values."""
        if period not in _PERIODS:
            raise ValueError(f"period must be one of {', '.join(_PERIODS)}")
        inner = f"<last>{int(last)}</last>" if last else ""
        cmd = f"<show><running><resource-monitor><{period}>{inner}</{period}></resource-monitor></running></show>"
        return panos_xml.parse_resource_monitor(self._op_bytes(cmd))

    def counters(self) -> CounterSnapshot:
        """Return `show counter interface all`."""
        return panos_xml.parse_counter_interface(
            self._op_bytes("<show><counter><interface>all</interface></counter></show>")
        )

    def interfaces(self) -> tuple[InterfaceInfo, ...]:
        """Return `show interface all`."""
        return panos_xml.parse_interfaces(self._op_bytes("<show><interface>all</interface></show>"))

    def ha_state(self) -> HaState:
        """Return `show high-availability state`."""
        return panos_xml.parse_ha_state(
            self._op_bytes("<show><high-availability><state></state></high-availability></show>")
        )

    def licenses(self) -> tuple[License, ...]:
        """Return `request license info`."""
        return panos_xml.parse_licenses(self._op_bytes("<request><license><info></info></license></request>"))

    def gp_users(self) -> tuple[GpUser, ...]:
        """Return the GlobalProtect gateway's current users."""
        cmd = "<show><global-protect-gateway><current-user/></global-protect-gateway></show>"
        return panos_xml.parse_gp_users(self._op_bytes(cmd))

    def arp(self) -> tuple[ArpEntry, ...]:
        """Return the ARP table (`show arp entry name='all'`)."""
        return panos_xml.parse_arp(self._op_bytes("<show><arp><entry name='all'/></arp></show>"))

    def dhcp_leases(self) -> tuple[DhcpLease, ...]:
        """Return the DHCP server's leases on every interface (`show dhcp server lease interface all`)."""
        cmd = "<show><dhcp><server><lease><interface>all</interface></lease></server></dhcp></show>"
        return panos_xml.parse_dhcp_leases(self._op_bytes(cmd))

    def user_mappings(self) -> tuple[UserMapping, ...]:
        """Return the User-ID IP-to-user mappings (`show user ip-user-mapping all`)."""
        cmd = "<show><user><ip-user-mapping><all></all></ip-user-mapping></user></show>"
        return panos_xml.parse_user_mappings(self._op_bytes(cmd))

    def interface(self, name: str) -> tuple[InterfaceInfo, InterfaceCounters | None, InterfaceCounters | None]:
        """Return `show interface NAME`: info, hw counters, ifnet counters (InterfaceNotFound if unknown)."""
        cmd = f"<show><interface>{xml_escape(name)}</interface></show>"
        return panos_xml.parse_interface_detail(self._op_bytes(cmd))

    def version(self) -> dict[str, str]:
        """Return the light `type=version` answer (sw-version, model, serial, multi-vsys)."""
        return panos_xml.parse_version(self._call({"type": "version"}, time.monotonic() + self.timeout))

    def log_query(
        self, log_type: str, query: str | None = None, nlogs: int = 20, deadline_s: float = 30.0,
        fields: Collection[str] | None = None, first_wait_s: float = 0.0,
    ) -> tuple[dict[str, str], ...]:
        """Run a log query job to FIN within `deadline_s`; on timeout stop the job and raise PanosTimeout.

        `fields` keeps only those fields of each entry (all of them by default). `first_wait_s`:
        how long to leave the job alone before the first `get` (see `job_entries`).
        """
        end = time.monotonic() + deadline_s
        job = self.start_log_query(log_type, query, nlogs, fields=fields, deadline_s=deadline_s)
        return self.job_entries(job, end - time.monotonic(), first_wait_s)

    def start_log_query(
        self, log_type: str, query: str | None = None, nlogs: int = 20, *, fields: Collection[str] | None = None,
        deadline_s: float | None = None, skip: int = 0,
    ) -> PendingJob:
        """Enqueue a log query job and return it unread: `job_entries` reads it, `stop_job` stops it.

        Several jobs enqueued one after another run on the firewall at the same time, while this
        client makes other calls (the inventory's four log queries: one wait instead of four).
        `skip`: matching entries passed over first (the next page of a query whose newest end is fixed).
        """
        if not _LOG_TYPE_RE.fullmatch(log_type):
            raise ValueError("log_type must be a PAN-OS log type such as traffic, threat, url or system")
        if not 1 <= nlogs <= 5000:
            raise ValueError("nlogs must be between 1 and 5000")
        if not 0 <= skip <= 1_000_000:
            raise ValueError("skip must be between 0 and 1000000")
        form = {"type": "log", "log-type": log_type, "nlogs": str(nlogs)}
        if skip:
            form["skip"] = str(skip)
        if query:
            form["query"] = query
        parse = panos_xml.parse_log_job if fields is None else functools.partial(panos_xml.parse_log_job, fields=fields)
        return self._enqueue("log", form, parse, deadline_s)

    def report(
        self, name: str, *, start: str | None = None, end: str | None = None, period: str | None = None,
        topn: int = 25, deadline_s: float = 30.0, first_wait_s: float = 0.0,
    ) -> tuple[dict[str, str], ...]:
        """Run an ACC dynamic report (`type=report&reporttype=dynamic`) to FIN within `deadline_s`.

        `start`/`end` are firewall-local `YYYY/MM/DD HH:MM:SS` (or `period`, e.g. last-15-minutes).
        On timeout the job is stopped (`action=finish`) and PanosTimeout raised. `first_wait_s` as
        for `log_query`.
        """
        until = time.monotonic() + deadline_s
        job = self.start_report(name, start=start, end=end, period=period, topn=topn, deadline_s=deadline_s)
        return self.job_entries(job, until - time.monotonic(), first_wait_s)

    def start_report(
        self, name: str, *, start: str | None = None, end: str | None = None, period: str | None = None,
        topn: int = 25, deadline_s: float | None = None,
    ) -> PendingJob:
        """Enqueue an ACC dynamic report and return it unread (as `start_log_query`)."""
        if not _REPORT_RE.fullmatch(name):
            raise ValueError("name must be a dynamic report name such as top-app-summary")
        if not 1 <= topn <= 500:
            raise ValueError("topn must be between 1 and 500")
        form = {"type": "report", "reporttype": "dynamic", "reportname": name, "topn": str(topn)}
        if period:
            form["period"] = period
        else:
            if not (start and end):
                raise ValueError("give period, or start and end")
            form.update(starttime=start, endtime=end)
        return self._enqueue("report", form, panos_xml.parse_report_job, deadline_s)

    def _enqueue(self, kind: str, form: dict[str, str], parse: Callable[[bytes], LogJob | ReportJob],
                 deadline_s: float | None) -> PendingJob:
        """Ask for a log or report job (one call, at most `timeout` or `deadline_s`) and return it unread."""
        limit = self.timeout if deadline_s is None else min(self.timeout, max(deadline_s, 0.0))
        first = self._call(form, time.monotonic() + limit)
        if kind == "report":
            # Some releases (and `async=no`) answer a report at once, without a job.
            at_once = panos_xml.parse_report_at_once(first)
            if at_once is not None:
                return PendingJob(kind, None, parse, time.monotonic(), at_once)
        return PendingJob(kind, panos_xml.parse_job_enqueued(first), parse, time.monotonic())

    def job_entries(self, job: PendingJob, deadline_s: float, first_wait_s: float = 0.0) -> tuple[dict[str, str], ...]:
        """Poll an enqueued job to FIN within `deadline_s` and return its entries; on timeout stop it, PanosTimeout.

        `first_wait_s` (at most half the deadline) counts from the job's enqueue: a job asked at
        once is still running (ACT) and each `get` costs a call; a caller that knows how long such
        jobs take (the inventory) asks once, after that wait, and polls only if it is not done. A
        job enqueued a while ago (the inventory made other calls meanwhile) is asked at once.
        """
        if job.answer is not None:
            return job.answer.entries
        job_id, kind = job.job_id, job.kind
        assert job_id is not None  # nosec B101 (a job without an answer was enqueued with an id)
        end = time.monotonic() + deadline_s
        delay = 0.2
        if first_wait_s > 0:
            wait = min(job.enqueued + first_wait_s - time.monotonic(), (end - time.monotonic()) / 2)
            if wait > 0 and self._closed.wait(wait):
                self._finish_job(job_id, kind)
                raise PanosTimeout(f"{self._where}: {kind} job {job_id} not finished: the client was closed")
            delay = max(delay, first_wait_s)
        while True:
            # 1. Each poll gets at most `timeout`, and never more than what is left of the deadline.
            call_end = min(end, time.monotonic() + self.timeout)
            try:
                answer = job.parse(self._call({"type": kind, "action": "get", "job-id": job_id}, call_end))
            except PanosTimeout:
                self._finish_job(job_id, kind)
                raise
            if answer.status == "FIN":
                return answer.entries
            # 2. Back off (0.2 s, x1.5, at most 2 s: PAN-OS finishes jobs slower when polled hard).
            if time.monotonic() + delay >= end or self._closed.wait(delay):
                self._finish_job(job_id, kind)
                raise PanosTimeout(f"{self._where}: {kind} job {job_id} not finished within {deadline_s:g} s")
            delay = min(delay * 1.5, 2.0)

    def stop_job(self, job: PendingJob) -> None:
        """Stop a job that will not be read (its caller ran out of time); best effort, one short call."""
        if job.job_id is not None and job.answer is None:
            self._finish_job(job.job_id, job.kind)

    def _finish_job(self, job_id: str, kind: str = "log") -> None:
        """Stop a log or report job the caller gave up on (best effort: the device may be the reason)."""
        try:
            # Bounded tighter than a normal call: the device may be why the job timed out.
            end = time.monotonic() + min(self.timeout, 2.0)
            self._call({"type": kind, "action": "finish", "job-id": job_id}, end)
        except PanosError as exc:
            log.info("could not stop %s job %s on %s: %s", kind, job_id, self._where, exc)

    def peer_fingerprint(self) -> str:
        """Return the SHA-256 of the certificate the device presents now."""
        return fetch_fingerprint(self.device.host, self.device.port, timeout=self.connect_timeout, policy=self.policy)
