"""ACC dynamic reports (`type=report&reporttype=dynamic`): enqueue (code 19), ACT, then FIN with entries.

Shape. The one public capture of a dynamic report answer (pan-python's `doc/panxapi.rst`,
`reportname=acc-summary`, answered at once) is `<response status="success"><report
logtype="appstat" reportname=...><result start= start-epoch= end= end-epoch= generated-at=
generated-at-epoch= range= name=...><entry>` with `name`, `risk-of-name`, `nbytes`, `nthreats`,
`nsess`, `npkts`; pan-python's live test of an asynchronous one (`top-applications-summary`)
finds `./result/report` with `name`, `start-epoch` and `end-epoch` once the job is FIN. This
module answers FIN with the job, then `<report reportname= logtype= name= start= start-epoch=
end= end-epoch= generated-at= generated-at-epoch=>` and the entries (the parser reads
`report/entry` and `report/result/entry` alike).

Reports and their fields (names as on PAN-OS; `top-threats-summary` and `top-sources-summary`
are not PAN-OS report names and get code 17 like any unknown one):
- `top-app-summary` (appstat): `name`, `category-of-name`, `risk-of-name`, `nbytes`, `nsess`,
  `nsrc`, `nthreats`; `top-application-categories-summary`: `category-of-name`, `nbytes`, `nsess`.
- `top-attacks-acc` (thsum, every threat type): `threatid` (the name), `tid`, `subtype`,
  `severity-of-threatid`, `count`, one row per threat and severity. Field names as in the
  predefined `top-attacks` report (bostonlink/pamalt: `threatid`, `tid`, `subtype`, `count`) and
  PAN-OS statsdump threat reports (`severity-of-threatid`, `category-of-threatid`).
- `top-blocked-url-categories-summary` (urlsum): `category`, `count` (**inferred**: no capture).
- `top-src-summary` (trsum): `src`, `resolved-src`, `srcuser`, `nbytes`, `nsess` (`src`,
  `resolved-src`, `srcuser` as in the predefined `top-attackers` report; bytes and sessions
  **inferred** from appstat's names).
The threat, URL and source rows are the simulator's own threat, URL and traffic log entries of
the window, so they agree with the log queries and `/_sim/truth` states them exactly.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from html import escape

from panos_sim import xml_logs
from panos_sim.device import Device
from panos_sim.traffic import rng_for

# (app, category, risk 1-5, share of the device's bytes, bytes per session)
APPS = (("ssl", "networking", 4, 0.42, 60_000), ("web-browsing", "general-internet", 4, 0.18, 40_000),
        ("ms-office365-base", "business-systems", 3, 0.12, 80_000), ("youtube-base", "media", 4, 0.10, 900_000),
        ("dns-base", "networking", 2, 0.02, 300), ("google-base", "general-internet", 4, 0.06, 30_000),
        ("ssh", "networking", 4, 0.04, 500_000), ("ntp-base", "networking", 1, 0.01, 200),
        ("bittorrent", "general-internet", 5, 0.05, 2_000_000))
LOGTYPE = {"top-app-summary": "appstat", "top-application-categories-summary": "appstat", "top-attacks-acc": "thsum",
           "top-blocked-url-categories-summary": "urlsum", "top-src-summary": "trsum"}
TITLE = {"top-app-summary": "Top applications", "top-application-categories-summary": "Top application categories",
         "top-attacks-acc": "Top attacks", "top-blocked-url-categories-summary": "Top blocked URL categories",
         "top-src-summary": "Top sources"}
REPORTS = tuple(LOGTYPE)
PERIODS = {"last-15-minutes": 900, "last-hour": 3600, "last-24-hrs": 86400}
STEP = 60.0  # the model integrates the device's rate per minute


@dataclass
class ReportJob:
    job_id: int
    name: str
    start: float
    end: float
    topn: int
    enqueued: float
    act_polls: int


def _bytes(dev: Device, t1: float, t2: float) -> float:
    """Bytes through the device in [t1, t2] (its ingress rate, integrated per minute)."""
    total, t = 0.0, t1
    while t < t2:
        step = min(STEP, t2 - t)
        total += dev.rate_bps(t + step / 2) / 8.0 * step
        t += step
    return total


def applications(dev: Device, t1: float, t2: float) -> list[dict[str, object]]:
    """Every application's bytes, sessions and sources in [t1, t2] (the truth and the report rows)."""
    total = _bytes(dev, t1, t2)
    out = []
    for name, category, risk, share, per_session in APPS:
        nbytes = int(total * share)
        sources = 1 + rng_for(dev.seed, dev.name, "sources", name).randrange(3, 40)
        out.append({"name": name, "category": category, "risk": risk, "bytes": nbytes,
                    "sessions": max(1, nbytes // per_session) if nbytes else 0, "sources": sources})
    return sorted(out, key=lambda a: -int(a["bytes"]))  # type: ignore[call-overload]


def categories(dev: Device, t1: float, t2: float) -> list[dict[str, object]]:
    """Bytes and sessions per application category in [t1, t2]."""
    out: dict[str, dict[str, object]] = {}
    for app in applications(dev, t1, t2):
        row = out.setdefault(str(app["category"]), {"name": app["category"], "bytes": 0, "sessions": 0})
        row["bytes"] = int(row["bytes"]) + int(app["bytes"])  # type: ignore[call-overload]
        row["sessions"] = int(row["sessions"]) + int(app["sessions"])  # type: ignore[call-overload]
    return sorted(out.values(), key=lambda c: -int(c["bytes"]))  # type: ignore[call-overload]


SEVERITY_RANK = {s: i for i, s in enumerate(xml_logs.SEVERITIES)}


def threats(dev: Device, t1: float, t2: float) -> list[dict[str, object]]:
    """Threat log entries received in [t1, t2] counted per threat and severity (`top-attacks-acc`)."""
    out: dict[tuple[str, str], dict[str, object]] = {}
    for k in xml_logs.ticks("threat", t1, t2):
        t = xml_logs.threat_at(dev, k)
        row = out.setdefault((t["tid"], t["severity"]), {"name": t["name"], "tid": t["tid"], "subtype": t["subtype"],
                                                         "severity": t["severity"], "count": 0})
        row["count"] = int(row["count"]) + 1  # type: ignore[call-overload]
    return sorted(out.values(), key=lambda r: (-int(r["count"]),  # type: ignore[call-overload]
                                               SEVERITY_RANK[str(r["severity"])], str(r["name"])))


def url_categories(dev: Device, t1: float, t2: float) -> list[dict[str, object]]:
    """Blocked URL log entries (`block-url`) received in [t1, t2] per category (the simulator's URLs share one)."""
    n = sum(xml_logs.url_blocked_at(dev, k) for k in xml_logs.ticks("url", t1, t2))
    return [{"name": xml_logs.URL_CATEGORY, "count": n}] if n else []


def sources(dev: Device, t1: float, t2: float) -> list[dict[str, object]]:
    """Traffic log entries received in [t1, t2] per source address: bytes and sessions (`top-src-summary`)."""
    out: dict[str, dict[str, object]] = {}
    for k in xml_logs.ticks("traffic", t1, t2):
        t = xml_logs.traffic_at(dev, k)
        row = out.setdefault(str(t["src"]), {"src": t["src"], "bytes": 0, "sessions": 0})
        row["bytes"] = int(row["bytes"]) + int(t["bytes"])  # type: ignore[call-overload]
        row["sessions"] = int(row["sessions"]) + 1  # type: ignore[call-overload]
    return sorted(out.values(), key=lambda r: (-int(r["bytes"]), str(r["src"])))  # type: ignore[call-overload]


def _when(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text.strip(), "%Y/%m/%d %H:%M:%S")))
    except ValueError:
        return None


def window(params: dict[str, str], now: float) -> tuple[float, float] | str:
    """The report's [start, end] from `period` or `starttime`/`endtime` (firewall time = UTC), or an error."""
    if params.get("period"):
        span = PERIODS.get(params["period"])
        return (now - span, now) if span else f"period {params['period'][:30]} is invalid"
    start, end = _when(params.get("starttime", "")), _when(params.get("endtime", ""))
    if start is None or end is None or end <= start:
        return "give period, or starttime and endtime as YYYY/MM/DD HH:MM:SS"
    return start, min(end, now)


def enqueue(dev: Device, params: dict[str, str], now: float) -> tuple[int, str]:
    """Start a report job: (0, job id) or (error code, message)."""
    name = params.get("reportname", "")
    if params.get("reporttype") != "dynamic" or name not in REPORTS:
        return 17, f"report {name[:40]} is not a dynamic report"
    span = window(params, now)
    if isinstance(span, str):
        return 400, span
    try:
        topn = int(params.get("topn") or 25)
    except ValueError:
        return 400, "topn must be a number"
    job_id = dev.next_job
    dev.next_job += 1
    jobs: dict[int, ReportJob] = dev.report_jobs
    jobs[job_id] = ReportJob(job_id, name, span[0], span[1], max(1, min(topn, 500)), now, 1)
    return 0, str(job_id)


def _ts(t: float) -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(t))


def get(dev: Device, job_id: int, now: float) -> str:
    """Answer action=get: ACT once, then FIN with the report (the job is deleted then)."""
    jobs: dict[int, ReportJob] = dev.report_jobs
    job = jobs.get(job_id)
    if job is None:
        return f'<response status="error"><msg><line>job {job_id} not found</line></msg></response>'
    head = f"<job><tenq>{_ts(job.enqueued)}</tenq><tdeq>{_ts(job.enqueued)}</tdeq><tlast>{_ts(now)}</tlast>"
    # ACT when asked at once, FIN once it ran (xml_logs.RUN_S_PER_ACT), unless stuck.
    running = job.act_polls > 0 and now - job.enqueued < xml_logs.RUN_S_PER_ACT * job.act_polls
    if running or dev.fault_mode == "report_stuck":
        job.act_polls -= 1
        return (f'<response status="success"><result>{head}<status>ACT</status><id>{job_id}</id></job>'
                "</result></response>")
    del jobs[job_id]
    attrs = (f'reportname="{job.name}" logtype="{LOGTYPE[job.name]}" name="{TITLE[job.name]}" '
             f'start="{_ts(job.start)}" start-epoch="{int(job.start)}" end="{_ts(job.end)}" end-epoch="{int(job.end)}" '
             f'generated-at="{_ts(now)}" generated-at-epoch="{int(now)}"')
    return (f'<response status="success"><result>{head}<status>FIN</status><id>{job_id}</id></job>'
            f'<report {attrs}>{"".join(_rows(dev, job))}</report></result></response>')


def _rows(dev: Device, job: ReportJob) -> list[str]:
    """The report's `<entry>` elements, at most `topn`."""
    rows = []
    if job.name == "top-app-summary":
        for a in applications(dev, job.start, job.end)[: job.topn]:
            rows.append(f"<entry><name>{a['name']}</name><category-of-name>{a['category']}</category-of-name>"
                        f"<risk-of-name>{a['risk']}</risk-of-name><nbytes>{a['bytes']}</nbytes>"
                        f"<nsess>{a['sessions']}</nsess><nsrc>{a['sources']}</nsrc><nthreats>0</nthreats></entry>")
    elif job.name == "top-application-categories-summary":
        for c in categories(dev, job.start, job.end)[: job.topn]:
            rows.append(f"<entry><category-of-name>{c['name']}</category-of-name><nbytes>{c['bytes']}</nbytes>"
                        f"<nsess>{c['sessions']}</nsess></entry>")
    elif job.name == "top-attacks-acc":
        for t in threats(dev, job.start, job.end)[: job.topn]:
            rows.append(f"<entry><threatid>{escape(str(t['name']))}</threatid><tid>{t['tid']}</tid>"
                        f"<subtype>{t['subtype']}</subtype><severity-of-threatid>{t['severity']}</severity-of-threatid>"
                        f"<count>{t['count']}</count></entry>")
    elif job.name == "top-blocked-url-categories-summary":
        for u in url_categories(dev, job.start, job.end)[: job.topn]:
            rows.append(f"<entry><category>{u['name']}</category><count>{u['count']}</count></entry>")
    else:
        for s in sources(dev, job.start, job.end)[: job.topn]:
            rows.append(f"<entry><src>{s['src']}</src><resolved-src>{s['src']}</resolved-src><srcuser></srcuser>"
                        f"<nbytes>{s['bytes']}</nbytes><nsess>{s['sessions']}</nsess></entry>")
    return rows


def finish(dev: Device, job_id: int) -> str:
    """Answer action=finish: stop and forget the job."""
    jobs: dict[int, ReportJob] = dev.report_jobs
    if jobs.pop(job_id, None) is None:
        return f'<response status="error"><msg><line>job {job_id} not found</line></msg></response>'
    return '<response status="success"><result>Job stopped</result></response>'
