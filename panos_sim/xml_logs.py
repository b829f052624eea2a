"""Log query jobs: enqueue (code 19), ACT without <log>, then FIN with entries; the job goes after FIN."""

from __future__ import annotations

import calendar
import math
import re
import time
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


def parse_since(query: str) -> float | None:
    """Return the epoch of a ( receive_time geq 'YYYY/MM/DD HH:MM:SS' ) filter (firewall time = UTC here)."""
    m = GEQ.search(query or "")
    if not m:
        return None
    return float(calendar.timegm(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S")))


def enqueue(dev: Device, log_type: str, nlogs: int, skip: int, direction: str, query: str, now: float) -> str:
    """Start a log job and answer with code 19 and its id."""
    job_id = dev.next_job
    dev.next_job += 1
    act = 1 + (job_id + dev.index) % 2  # one or two ACT answers before FIN, as a busy log daemon does
    dev.jobs[job_id] = LogJob(job_id, log_type, nlogs, skip, direction, parse_since(query), now, act)
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


def _entries(dev: Device, job: LogJob, now: float) -> list[str]:
    """Return the entry elements: logs every INTERVAL seconds, newest first unless dir=forward."""
    step = INTERVAL[job.log_type]
    newest = math.floor(job.enqueued / step)
    oldest = math.ceil(job.since / step) if job.since is not None else newest - 100_000
    available = max(newest - oldest + 1, 0)
    n = max(min(job.nlogs, available - job.skip), 0)
    if job.direction == "forward":
        ticks = [oldest + job.skip + i for i in range(n)]
    else:
        ticks = [newest - job.skip - i for i in range(n)]
    return [_entry(dev, job.log_type, k * step, k) for k in ticks]


def _common(dev: Device, log_type: str, t: float, k: int, kind: str, subtype: str) -> str:
    """Return the fields every log type starts with."""
    ts = _ts(t)
    return (f"<domain>1</domain><receive_time>{ts}</receive_time><serial>{dev.serial}</serial>"
            f"<seqno>{k}</seqno><actionflags>0x0</actionflags><is-logging-service>no</is-logging-service>"
            f"<type>{kind}</type><subtype>{subtype}</subtype><config_ver>2562</config_ver>"
            f"<time_generated>{ts}</time_generated>"
            f"<high_res_timestamp>{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))}.000+00:00</high_res_timestamp>")


# dst, app, session id, sport, natsport: drawn by `_entry` after the source, in this order.
_FLOW_DRAWS = ((1, 250), (0, len(APPS)), (1, 2**20), (1024, 65535), (1024, 65535))


def threat_at(dev: Device, k: int) -> dict[str, str]:
    """The threat log entry of tick K as the ACC's threat summary counts it (the same draws as `_entry`)."""
    rng = rng_for(dev.seed, dev.name, "threat", k)
    src = f"10.{dev.index % 250}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    for low, high in _FLOW_DRAWS:
        rng.randrange(low, high)
    name, tid, _thr_cat, subtype = THREATS[rng.randrange(len(THREATS))]
    return {"name": name, "tid": tid, "subtype": subtype, "severity": SEVERITIES[rng.randrange(4)], "src": src}


def traffic_at(dev: Device, k: int) -> dict[str, object]:
    """The traffic log entry of tick K as the ACC's traffic summary counts it (the same draws as `_entry`)."""
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


def _entry(dev: Device, log_type: str, t: float, k: int) -> str:
    """Return one deterministic log entry for tick K."""
    rng = rng_for(dev.seed, dev.name, log_type, k)
    logid = (dev.index << 40) + k
    tail = (f"<dg_hier_level_1>0</dg_hier_level_1><dg_hier_level_2>0</dg_hier_level_2>"
            f"<dg_hier_level_3>0</dg_hier_level_3><dg_hier_level_4>0</dg_hier_level_4>"
            f"<device_name>{dev.name}</device_name><vsys_id>1</vsys_id>")
    if log_type == "system":
        module, sub, sev, desc = SYS_EVENTS[rng.randrange(len(SYS_EVENTS))]
        body = (_common(dev, log_type, t, k, "SYSTEM", module) + f"<vsys></vsys><eventid>{sub}</eventid>"
                f"<object></object><fmt>0</fmt><id>0</id><module>{module}</module><severity>{sev}</severity>"
                f"<opaque>{escape(desc)}</opaque>" + tail)
        return f'<entry logid="{logid}">{body}</entry>'
    src = f"10.{dev.index % 250}.{rng.randrange(1, 250)}.{rng.randrange(2, 250)}"
    dst = f"203.0.113.{rng.randrange(1, 250)}"
    app = APPS[rng.randrange(len(APPS))]
    flow = (f"<src>{src}</src><dst>{dst}</dst><natsrc>198.51.100.1</natsrc><natdst>0.0.0.0</natdst>"
            f"<rule>allow-outbound</rule><srcloc>10.0.0.0-10.255.255.255</srcloc>"
            f'<dstloc code="United States" cc="US">United States</dstloc><app>{app}</app><vsys>vsys1</vsys>'
            "<from>trust</from><to>untrust</to><inbound_if>ethernet1/2</inbound_if>"
            "<outbound_if>ethernet1/1</outbound_if><logset>default</logset>"
            f"<time_received>{_ts(t)}</time_received><sessionid>{rng.randrange(1, 2**20)}</sessionid>"
            f"<repeatcnt>1</repeatcnt><sport>{rng.randrange(1024, 65535)}</sport><dport>443</dport>"
            f"<natsport>{rng.randrange(1024, 65535)}</natsport><natdport>443</natdport><flags>0x400000</flags>"
            "<proto>tcp</proto>")
    if log_type == "traffic":
        sent, recv = rng.randrange(200, 20000), rng.randrange(200, 900000)
        pkts_s, pkts_r = sent // 500 + 1, recv // 1200 + 1
        body = (_common(dev, log_type, t, k, "TRAFFIC", "end") + flow
                + "<action>allow</action><tunnel>N/A</tunnel>"
                "<rule_uuid>5b1d2c64-8f5c-4b8e-9d2e-1e6f0c3a7b90</rule_uuid>"
                "<category_of_app>networking</category_of_app><subcategory_of_app>encrypted-tunnel</subcategory_of_app>"
                "<technology_of_app>browser-based</technology_of_app><risk_of_app>4</risk_of_app>" + tail
                + f"<bytes>{sent + recv}</bytes><bytes_sent>{sent}</bytes_sent><bytes_received>{recv}</bytes_received>"
                f"<packets>{pkts_s + pkts_r}</packets><start>{_ts(t - 12)}</start><elapsed>12</elapsed>"
                f"<category>computer-and-internet-info</category><pkts_sent>{pkts_s}</pkts_sent>"
                f"<pkts_received>{pkts_r}</pkts_received><session_end_reason>tcp-fin</session_end_reason>"
                "<action_source>from-policy</action_source>")
        return f'<entry logid="{logid}">{body}</entry>'
    if log_type == "url":
        site = f"www.example{rng.randrange(100)}.com/path/{k % 97}"
        body = (_common(dev, log_type, t, k, "THREAT", "url") + flow
                + f"<action>alert</action><misc>{site}</misc><threatid>(9999)</threatid><tid>9999</tid>"
                f"<category>{URL_CATEGORY}</category><severity>informational</severity>"
                "<direction>client-to-server</direction><contenttype>text/html</contenttype>"
                "<http_method>get</http_method><url_idx>1</url_idx><user_agent>Mozilla/5.0</user_agent>"
                "<pcap_id>0</pcap_id><reportid>0</reportid><thr_category>unknown</thr_category>"
                "<contentver>8832-8682</contentver>" + tail)
        return f'<entry logid="{logid}">{body}</entry>'
    name, tid, thr_cat, subtype = THREATS[rng.randrange(len(THREATS))]
    sev = SEVERITIES[rng.randrange(4)]
    body = (_common(dev, log_type, t, k, "THREAT", subtype) + flow
            + f"<action>reset-both</action><misc>{escape(name)}</misc><threatid>{escape(name)}</threatid>"
            f"<tid>{tid}</tid><category>any</category><severity>{sev}</severity><direction>client-to-server</direction>"
            f"<pcap_id>0</pcap_id><reportid>0</reportid><thr_category>{thr_cat}</thr_category>"
            "<contentver>8832-8682</contentver>" + tail)
    return f'<entry logid="{logid}">{body}</entry>'
