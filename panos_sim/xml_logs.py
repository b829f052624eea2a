"""Log query jobs: enqueue (code 19), ACT without <log>, then FIN with entries; the job goes after FIN."""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Callable, Mapping
from html import escape

from panos_sim.device import Device, LogJob
from panos_sim.traffic import rng_for

LOG_TYPES = ("traffic", "threat", "url", "system")
SEVERITIES = ("critical", "high", "medium", "low", "informational")
INTERVAL = {"traffic": 2.0, "threat": 30.0, "url": 6.0, "system": 120.0}
# A job runs this long per ACT answer it may give: asked at once it is ACT (once or twice), asked
# after it ran (0.1-0.2 s after the enqueue) it is FIN, as a real log daemon's job is.
RUN_S_PER_ACT = 0.1
GEQ = re.compile(r"receive_time\s+geq\s+'(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})'")
LEQ = re.compile(r"receive_time\s+leq\s+'(\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})'")
APPS = ("ssl", "web-browsing", "dns-base", "ms-office365-base", "google-base", "ntp-base", "ssh")
THREATS = (("Microsoft Windows SMB Remote Code Execution Vulnerability", "91820", "code-execution", "vulnerability"),
           ("Suspicious DNS Query (generic:evil.example)", "109001001", "spyware", "dns"),
           ("HTTP Directory Traversal Request Attempt", "30844", "info-leak", "vulnerability"),
           ("Eicar File Detected", "39040", "virus", "virus"))
SYS_EVENTS = (("general", "general", "informational", "User admin logged in via Web from 10.0.0.5 using https"),
              ("auth", "auth-success", "informational", "authenticated for user 'monitor'. auth profile ''"),
              ("ha", "state-change", "critical", "HA Group 1: Moved from state Active to state Passive"),
              ("routing", "routed-bgp-peer-state", "high", "BGP peer session with 192.0.2.1 went down"),
              ("general", "general", "medium", "Connection to Update server: updates.paloaltonetworks.com failed"),
              ("ras", "globalprotect", "low", "GlobalProtect gateway client configuration generated."))


def receive_time_bound(query: str, pattern: re.Pattern[str] = GEQ) -> float | None:
    """Return the epoch of a ( receive_time geq 'YYYY/MM/DD HH:MM:SS' ) filter (firewall time = UTC here).

    `pattern` LEQ: of a ( receive_time leq '…' ) filter instead (the newest entry's time).
    """
    m = pattern.search(query or "")
    if not m:
        return None
    return float(calendar.timegm(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S")))


_TOKEN = re.compile(r"""\s*(?:(?P<open>\()|(?P<close>\))|(?P<word>and|or|not)(?![\w-])"""
                    r"""|(?P<term>[\w.-]+\s+(?:eq|neq|geq|leq|gt|lt|contains)\s+(?:'[^']*'|"[^"]*"|[^\s()]+)))""")
_TERM = re.compile(r"""([\w.-]+)\s+(eq|neq|geq|leq|gt|lt|contains)\s+('[^']*'|"[^"]*"|[^\s()]+)""")
Where = Callable[[Mapping[str, str]], bool]


def _always(entry: Mapping[str, str]) -> bool:
    return True


def _term(text: str) -> Where:
    field, op, value = _TERM.fullmatch(text).groups()  # type: ignore[union-attr]
    value = value[1:-1] if value[:1] in "'\"" else value
    if field == "receive_time" and op in ("geq", "leq"):
        return _always  # the job's tick range already starts and ends there (receive_time_bound)
    if op == "eq":
        return lambda e: field not in e or e[field] == value
    if op == "neq":
        return lambda e: field not in e or e[field] != value
    return _always  # other comparisons: not evaluated by the simulator (every entry matches)


def compile_filter(query: str) -> Where | None:
    """The log query filter as a predicate over an entry's fields, or None (no filter, or one it cannot read).

    Reads what PAN-OS's filter syntax offers for equality: `( field eq value )` and `neq`, combined
    with `and`, `or`, `not` and parentheses (`and` binds tighter). A field the entry has not is not
    filtered on; comparisons other than eq/neq and `receive_time geq` match every entry, and a query
    it cannot read filters nothing (the simulator's limits; a real firewall answers an error there).
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = query.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            return None
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    if not tokens:
        return None
    at = [0]

    def peek() -> tuple[str, str] | None:
        return tokens[at[0]] if at[0] < len(tokens) else None

    def atom() -> Where:
        tok = peek()
        if tok is None:
            raise ValueError("query ends early")
        at[0] += 1
        if tok[0] == "open":
            inner = either()
            if peek() != ("close", ")"):
                raise ValueError("unbalanced parentheses")
            at[0] += 1
            return inner
        if tok == ("word", "not"):
            negated = atom()
            return _always if negated is _always else (lambda e: not negated(e))
        if tok[0] == "term":
            return _term(tok[1])
        raise ValueError(f"unexpected {tok[1]!r}")

    def both() -> Where:
        parts = [atom()]
        while peek() == ("word", "and"):
            at[0] += 1
            parts.append(atom())
        parts = [p for p in parts if p is not _always] or [_always]
        return parts[0] if len(parts) == 1 else (lambda e: all(p(e) for p in parts))

    def either() -> Where:
        parts = [both()]
        while peek() == ("word", "or"):
            at[0] += 1
            parts.append(both())
        if _always in parts:
            return _always
        return parts[0] if len(parts) == 1 else (lambda e: any(p(e) for p in parts))

    try:
        where = either()
    except (ValueError, RecursionError):  # a filter nested past the interpreter's depth is not read either
        return None
    return where if at[0] == len(tokens) and where is not _always else None


def enqueue(dev: Device, log_type: str, nlogs: int, skip: int, direction: str, query: str, now: float) -> str:
    """Start a log job and answer with code 19 and its id."""
    job_id = dev.next_job
    dev.next_job += 1
    act = 1 + (job_id + dev.index) % 2  # one or two ACT answers before FIN, as a busy log daemon does
    dev.jobs[job_id] = LogJob(job_id, log_type, nlogs, skip, direction, receive_time_bound(query), now, act,
                              compile_filter(query), receive_time_bound(query, LEQ))
    return (f'<response status="success" code="19"><result><msg><line>query job enqueued with jobid {job_id}'
            f"</line></msg><job>{job_id}</job></result></response>")


def _hms(t: float) -> str:
    """Return a time of day as the job element shows it."""
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _ts(t: float) -> str:
    """Return a log timestamp."""
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime(t))


def get(dev: Device, job_id: int, now: float) -> str:
    """Answer action=get: ACT while running, FIN with the entries once (then the job is deleted)."""
    job = dev.jobs.get(job_id)
    if job is None:
        return f'<response status="error"><msg><line>job {job_id} not found</line></msg></response>'
    head = (f"<job><tenq>{_hms(job.enqueued)}</tenq><tdeq>{_hms(job.enqueued)}</tdeq><tlast>{_hms(now)}</tlast>")
    if job.act_polls > 0 and now - job.enqueued < RUN_S_PER_ACT * job.act_polls:
        job.act_polls -= 1
        return (f'<response status="success"><result>{head}<status>ACT</status><id>{job_id}</id></job>'
                "</result></response>")
    del dev.jobs[job_id]
    entries = _entries(dev, job, now)
    return (f'<response status="success"><result>{head}<status>FIN</status><id>{job_id}</id></job>'
            f'<log><logs count="{len(entries)}" progress="100">{"".join(entries)}</logs></log></result></response>')


def finish(dev: Device, job_id: int) -> str:
    """Answer action=finish: stop and forget the job."""
    if dev.jobs.pop(job_id, None) is None:
        return f'<response status="error"><msg><line>job {job_id} not found</line></msg></response>'
    return '<response status="success"><result>Job stopped</result></response>'


# Ticks a job without a `receive_time geq` bound may look back through for entries matching its filter.
SCAN_LIMIT = 20_000


def _entries(dev: Device, job: LogJob, now: float) -> list[str]:
    """Return the entry elements matching the job's filter: newest first unless dir=forward.

    One entry is logged every INTERVAL seconds; `nlogs` and `skip` count matching entries, as the
    firewall's log daemon does (a filtered query is not the last N entries filtered afterwards).
    """
    step = INTERVAL[job.log_type]
    newest = math.floor((job.enqueued if job.until is None else min(job.enqueued, job.until)) / step)
    oldest = math.ceil(job.since / step) if job.since is not None else newest - 100_000
    available = max(newest - oldest + 1, 0)
    if job.where is None:
        n = max(min(job.nlogs, available - job.skip), 0)
        if job.direction == "forward":
            ticks = [oldest + job.skip + i for i in range(n)]
        else:
            ticks = [newest - job.skip - i for i in range(n)]
        return [_render(_fields(dev, job.log_type, k * step, k)) for k in ticks]
    scan = range(oldest, oldest + min(available, SCAN_LIMIT)) if job.direction == "forward" \
        else range(newest, newest - min(available, SCAN_LIMIT), -1)
    out: list[str] = []
    skip = job.skip
    for k in scan:
        fields = _fields(dev, job.log_type, k * step, k)
        if not job.where(dict(fields)):
            continue
        if skip:
            skip -= 1
            continue
        out.append(_render(fields))
        if len(out) >= job.nlogs:
            break
    return out


def _common(dev: Device, t: float, k: int, kind: str, subtype: str) -> list[tuple[str, str]]:
    """Return the fields every log type starts with."""
    ts = _ts(t)
    return [("domain", "1"), ("receive_time", ts), ("serial", dev.serial), ("seqno", str(k)), ("actionflags", "0x0"),
            ("is-logging-service", "no"), ("type", kind), ("subtype", subtype), ("config_ver", "2562"),
            ("time_generated", ts),
            ("high_res_timestamp", f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.000+00:00")]


# dst, app, session id, sport, natsport: drawn by `_fields` after the source, in this order.
_FLOW_DRAWS = ((1, 250), (0, len(APPS)), (1, 2**20), (1024, 65535), (1024, 65535))


def threat_at(dev: Device, k: int) -> dict[str, str]:
    """The threat log entry of tick K as the ACC's threat summary counts it (the same draws as `_fields`)."""
    rng = rng_for(dev.seed, dev.name, "threat", k)
    src = f"10.{dev.index % 250}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    for low, high in _FLOW_DRAWS:
        rng.randrange(low, high)
    name, tid, _thr_cat, subtype = THREATS[rng.randrange(len(THREATS))]
    return {"name": name, "tid": tid, "subtype": subtype, "severity": SEVERITIES[rng.randrange(4)], "src": src}


def traffic_at(dev: Device, k: int) -> dict[str, object]:
    """The traffic log entry of tick K as the ACC's traffic summary counts it (the same draws as `_fields`)."""
    rng = rng_for(dev.seed, dev.name, "traffic", k)
    src = f"10.{dev.index % 250}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    for low, high in _FLOW_DRAWS:
        rng.randrange(low, high)
    sent, recv = rng.randrange(200, 20000), rng.randrange(200, 900000)
    return {"src": src, "bytes": sent + recv}


def ticks(log_type: str, t1: float, t2: float) -> range:
    """The ticks whose entries were received in [t1, t2] (one entry every INTERVAL seconds)."""
    step = INTERVAL[log_type]
    return range(math.ceil(t1 / step), math.floor(t2 / step) + 1)


URL_CATEGORY = "computer-and-internet-info"
# A URL log entry's action: one in URL_BLOCK_EVERY is blocked (`block-url`), the others `alert`.
URL_BLOCK_EVERY = 3

# A traffic log entry's fields after the common ones, in PAN-OS's order, with the values this simulator does
# not vary: the `end` entry of log-get-traffic-fin__demisto-content.xml (PAN-OS 10.x, 101 fields), with the
# simulator's `srcloc` before `dstloc`. None: drawn or computed per entry by `_fields`.
TRAFFIC_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("src", None), ("dst", None), ("natsrc", "198.51.100.1"),
    ("natdst", "0.0.0.0"),  # noqa: S104  # nosec B104
    ("rule", "allow-outbound"),
    ("srcloc", "10.0.0.0-10.255.255.255"), ("dstloc", "United States"), ("app", None), ("vsys", "vsys1"),
    ("from", "trust"), ("to", "untrust"), ("inbound_if", "ethernet1/2"), ("outbound_if", "ethernet1/1"),
    ("logset", "default"), ("time_received", None), ("sessionid", None), ("repeatcnt", "1"), ("sport", None),
    ("dport", "443"), ("natsport", None), ("natdport", "443"), ("flags", "0x400000"), ("flag-pcap", "no"),
    ("flag-flagged", "no"), ("flag-proxy", "no"), ("flag-url-denied", "no"), ("flag-nat", "yes"),
    ("captive-portal", "no"), ("non-std-dport", "no"), ("transaction", "no"), ("pbf-c2s", "no"), ("pbf-s2c", "no"),
    ("temporary-match", "no"), ("sym-return", "no"), ("decrypt-mirror", "no"), ("credential-detected", "no"),
    ("flag-mptcp-set", "no"), ("flag-tunnel-inspected", "no"), ("flag-recon-excluded", "no"),
    ("flag-wf-channel", "no"), ("proto", "tcp"), ("action", "allow"), ("tunnel", "N/A"), ("tpadding", "0"),
    ("cpadding", "0"), ("rule_uuid", "5b1d2c64-8f5c-4b8e-9d2e-1e6f0c3a7b90"), ("s_decrypted", "0"),
    ("s_encrypted", "0"), ("vpadding", "0"), ("category_of_app", "networking"),
    ("subcategory_of_app", "encrypted-tunnel"), ("technology_of_app", "browser-based"), ("tunneled_app", None),
    ("risk_of_app", "4"), ("is_saas_of_app", "no"), ("sanctioned_state_of_app", "no"), ("bpadding", "0"),
    ("dg_hier_level_1", "0"), ("dg_hier_level_2", "0"), ("dg_hier_level_3", "0"), ("dg_hier_level_4", "0"),
    ("device_name", None), ("vsys_id", "1"), ("tunnelid_imsi", "0"), ("parent_session_id", "0"), ("bytes", None),
    ("bytes_sent", None), ("bytes_received", None), ("packets", None), ("start", None), ("elapsed", "12"),
    ("category", "computer-and-internet-info"), ("traffic_flags", "0x0"), ("flag-decrypt-forwarded", "no"),
    ("flag-l7-skipped", "no"), ("pkts_sent", None), ("pkts_received", None), ("session_end_reason", "tcp-fin"),
    ("action_source", "from-policy"), ("assoc_id", "0"), ("chunks", "0"), ("chunks_sent", "0"),
    ("chunks_received", "0"), ("http2_connection", "0"), ("link_change_count", "0"), ("sdwan_fec_data", "0"),
    ("offloaded", "0"), ("tunnelid", "0"), ("imsi", ""), ("monitortag", "0"), ("imei", ""),
)
_FLOW_END = [tag for tag, _ in TRAFFIC_FIELDS].index("flags") + 1  # threat and URL entries: src ... flags, then proto
_ATTRS = {"dstloc": ' code="United States" cc="US"'}


def _render(fields: list[tuple[str, str]]) -> str:
    """Return one <entry>: the first pair is its `logid` attribute, the others its elements (empty ones as <x/>)."""
    parts = [f'<entry logid="{fields[0][1]}">']
    for tag, value in fields[1:]:
        parts.append(f"<{tag}{_ATTRS.get(tag, '')}>{escape(value, quote=False)}</{tag}>" if value else f"<{tag}/>")
    parts.append("</entry>")
    return "".join(parts)


def _fields(dev: Device, log_type: str, t: float, k: int) -> list[tuple[str, str]]:
    """Return one deterministic log entry for tick K: ("logid", id) then its fields in order."""
    rng = rng_for(dev.seed, dev.name, log_type, k)
    head = [("logid", str((dev.index << 40) + k))]
    tail = [("dg_hier_level_1", "0"), ("dg_hier_level_2", "0"), ("dg_hier_level_3", "0"), ("dg_hier_level_4", "0"),
            ("device_name", dev.name), ("vsys_id", "1")]
    if log_type == "system":
        module, sub, sev, desc = SYS_EVENTS[rng.randrange(len(SYS_EVENTS))]
        return head + _common(dev, t, k, "SYSTEM", module) + [
            ("vsys", ""), ("eventid", sub), ("object", ""), ("fmt", "0"), ("id", "0"), ("module", module),
            ("severity", sev), ("opaque", desc)] + tail
    src = f"10.{dev.index % 250}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    dst = f"203.0.113.{rng.randrange(1, 250)}"
    app = APPS[rng.randrange(len(APPS))]
    drawn = {"src": src, "dst": dst, "app": app, "time_received": _ts(t), "sessionid": str(rng.randrange(1, 2**20)),
             "sport": str(rng.randrange(1024, 65535)), "natsport": str(rng.randrange(1024, 65535))}
    if log_type == "traffic":
        sent, recv = rng.randrange(200, 20000), rng.randrange(200, 900000)
        pkts_s, pkts_r = sent // 500 + 1, recv // 1200 + 1
        drawn.update({"tunneled_app": app, "device_name": dev.name, "bytes": str(sent + recv), "bytes_sent": str(sent),
                      "bytes_received": str(recv), "packets": str(pkts_s + pkts_r), "start": _ts(t - 12),
                      "pkts_sent": str(pkts_s), "pkts_received": str(pkts_r)})
        return head + _common(dev, t, k, "TRAFFIC", "end") + [
            (tag, drawn[tag] if value is None else value) for tag, value in TRAFFIC_FIELDS]
    flow = [(tag, drawn.get(tag, value or "")) for tag, value in TRAFFIC_FIELDS[:_FLOW_END]] + [("proto", "tcp")]
    if log_type == "url":
        site = f"www.example{rng.randrange(100)}.com/path/{k % 97}"
        # Drawn last: the draws before it (and so `threat_at`/`traffic_at`) are those of the other types.
        action = "block-url" if rng.randrange(URL_BLOCK_EVERY) == 0 else "alert"
        return head + _common(dev, t, k, "THREAT", "url") + flow + [
            ("action", action), ("misc", site), ("threatid", "(9999)"), ("tid", "9999"), ("category", URL_CATEGORY),
            ("severity", "informational"), ("direction", "client-to-server"), ("contenttype", "text/html"),
            ("http_method", "get"), ("url_idx", "1"), ("user_agent", "Mozilla/5.0"), ("pcap_id", "0"),
            ("reportid", "0"), ("thr_category", "unknown"), ("contentver", "8832-8682")] + tail
    name, tid, thr_cat, subtype = THREATS[rng.randrange(len(THREATS))]
    sev = SEVERITIES[rng.randrange(4)]
    return head + _common(dev, t, k, "THREAT", subtype) + flow + [
        ("action", "reset-both"), ("misc", name), ("threatid", name), ("tid", tid), ("category", "any"),
        ("severity", sev), ("direction", "client-to-server"), ("pcap_id", "0"), ("reportid", "0"),
        ("thr_category", thr_cat), ("contentver", "8832-8682")] + tail


def url_blocked_at(dev: Device, k: int) -> bool:
    """Whether the URL log entry of tick K was blocked (`action` block-url), with the same draws as `_fields`."""
    return dict(_fields(dev, "url", k * INTERVAL["url"], k))["action"] == "block-url"
