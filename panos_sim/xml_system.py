"""Render system, session, dataplane, HA and licence responses as a real firewall does."""

from __future__ import annotations

import fnmatch
import time
from html import escape

from panos_sim.device import Device
from panos_sim.traffic import LOAD_MAX

OK = '<response status="success"><result>'
END = "</result></response>"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _uptime(seconds: float) -> str:
    """Format uptime the PAN-OS way: 'N days, H:MM:SS'."""
    s = int(max(seconds, 0))
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return f"{days} days, {h}:{m:02d}:{sec:02d}"


def version(dev: Device) -> str:
    """Answer type=version."""
    p = dev.platform
    return (f'<response status="success"><result><sw-version>{p.sw_version}</sw-version><multi-vsys>off</multi-vsys>'
            f"<model>{p.model}</model><serial>{dev.serial}</serial></result></response>")


def system_info(dev: Device, now: float) -> str:
    """Answer show system info (note the newline inside <time>, as devices send it)."""
    p = dev.platform
    ts = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(now))
    ts = ts[:8] + (" " + ts[9:10] if ts[8] == "0" else ts[8:10]) + ts[10:]
    mac = ":".join(f"{(dev.mac_base >> (8 * i)) & 0xFF:02x}" for i in range(5, -1, -1))
    return (
        OK + "<system>"
        f"<hostname>{dev.name}</hostname><ip-address>{dev.mgmt_ip}</ip-address>"
        "<public-ip-address>unknown</public-ip-address><netmask>255.255.255.0</netmask>"
        f"<default-gateway>{dev.mgmt_ip.rsplit('.', 1)[0]}.254</default-gateway><is-dhcp>no</is-dhcp>"
        "<ipv6-default-gateway></ipv6-default-gateway>"
        "<ipv6-address>unknown</ipv6-address><ipv6-link-local-address>fe80::21b:17ff:fe00:1/64</ipv6-link-local-address>"
        f"<mac-address>{mac}</mac-address><time>{ts}\n</time><uptime>{_uptime(now - dev.boot)}</uptime>"
        f"<devicename>{dev.name}</devicename><family>{p.family}</family><model>{p.model}</model>"
        f"<serial>{dev.serial}</serial><cloud-mode>non-cloud</cloud-mode><sw-version>{p.sw_version}</sw-version>"
        "<global-protect-client-package-version>6.2.1</global-protect-client-package-version>"
        "<device-dictionary-version>101-486</device-dictionary-version>"
        "<device-dictionary-release-date>2024/03/11 14:05:33 UTC</device-dictionary-release-date>"
        "<app-version>8832-8682</app-version><app-release-date>2024/03/18 18:41:22 UTC</app-release-date>"
        "<av-version>4745-5263</av-version><av-release-date>2024/03/19 09:03:41 UTC</av-release-date>"
        "<threat-version>8832-8682</threat-version><threat-release-date>2024/03/18 18:41:22 UTC</threat-release-date>"
        "<wf-private-version>0</wf-private-version><wf-private-release-date>unknown</wf-private-release-date>"
        "<url-db>paloaltonetworks</url-db><wildfire-version>860457-864279</wildfire-version>"
        "<wildfire-release-date>2024/03/19 10:51:03 UTC</wildfire-release-date>"
        "<wildfire-rt>Disabled</wildfire-rt><url-filtering-version>20240319.20215</url-filtering-version>"
        "<global-protect-datafile-version>1710831609</global-protect-datafile-version>"
        "<global-protect-datafile-release-date>2024/03/19 07:00:09 UTC</global-protect-datafile-release-date>"
        "<global-protect-clientless-vpn-version>0</global-protect-clientless-vpn-version>"
        "<global-protect-clientless-vpn-release-date></global-protect-clientless-vpn-release-date>"
        f"<logdb-version>{p.sw_version.split('-')[0][:4]}.0</logdb-version>"
        f"<platform-family>{p.family}</platform-family>{_vm_fields(dev) if p.model == 'PA-VM' else ''}"
        "<vpn-disable-mode>off</vpn-disable-mode><multi-vsys>off</multi-vsys>"
        "<ZTP>Disabled</ZTP><operational-mode>normal</operational-mode>"
        "<advanced-routing>off</advanced-routing><device-certificate-status>Valid</device-certificate-status>"
        "</system>" + END
    )


def _vm_fields(dev: Device) -> str:
    """Return the vm-* fields only a VM-Series firewall shows."""
    mac = ":".join(f"{(dev.mac_base >> (8 * i)) & 0xFF:02x}" for i in range(5, -1, -1))
    return (f"<vm-mac-base>{mac}</vm-mac-base><vm-mac-count>256</vm-mac-count>"
            f"<vm-uuid>{dev.serial[-8:]}-0A1B-4C2D-8E3F-{dev.serial}</vm-uuid>"
            "<vm-cpuid>KVM:57060500FFFB8B1F</vm-cpuid><vm-license>VM-100</vm-license><vm-cap-tier>6.5 GB</vm-cap-tier>"
            "<vm-cpu-count>4</vm-cpu-count><vm-memory>16397376</vm-memory><vm-mode>KVM</vm-mode>")


def system_resources(dev: Device, now: float) -> str:
    """Answer show system resources: top batch output in CDATA, recent 'MiB Mem :' style."""
    cpu = dev.mp_cpu(now)
    us = round(cpu * 0.6, 1)
    sy = round(cpu * 0.3, 1)
    si = round(max(cpu - us - sy, 0.0), 1)
    idle = round(100.0 - us - sy - si, 1)
    total = dev.platform.mp_mem_mib
    used = round(total * dev.mem_used, 1)
    cache = round(total * 0.12, 1)
    free = round(total - used - cache, 1)
    up = int(now - dev.boot)
    up_s = f"{up // 86400} days, {up % 86400 // 3600:2d}:{up % 3600 // 60:02d}" if up >= 86400 else \
        f"{up // 3600:2d}:{up % 3600 // 60:02d}"
    clock = time.strftime("%H:%M:%S", time.gmtime(now))
    la = round(cpu / 25.0, 2)
    text = (
        f"top - {clock} up {up_s},  0 users,  load average: {la:.2f}, {la * 0.9:.2f}, {la * 0.8:.2f}\n"
        "Tasks: 356 total,   1 running, 352 sleeping,   0 stopped,   3 zombie\n"
        f"%Cpu(s): {us:4.1f} us, {sy:4.1f} sy,  0.0 ni, {idle:4.1f} id,  0.0 wa,  0.0 hi, {si:4.1f} si,  0.0 st\n"
        f"MiB Mem : {total:8.1f} total, {free:8.1f} free, {used:8.1f} used, {cache:8.1f} buff/cache\n"
        f"MiB Swap:   1023.9 total,   1023.9 free,      0.0 used. {total - used:8.1f} avail Mem\n\n"
        "  PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND\n"
        f"13999       20   0  177396  23916  12740 S {us:5.1f}   0.0   0:26.59 packet_pa+\n"
        " 3318       20   0 1043152 332204  35644 S   0.7   0.5  45:02.77 mgmtsrvr\n    "
    )
    return f'<response status="success"><result><![CDATA[{text}]]></result></response>'


def system_state(dev: Device, pattern: str, now: float) -> str:
    """Answer show system state filter for the MP exports (fnmatch on the device's own slot)."""
    key = f"sys.monitor.{dev.platform.state_slot}.mp.exports"
    if not fnmatch.fnmatchcase(key, pattern.strip()):
        return f"<response status=\"success\"><result><![CDATA[ '{escape(pattern)}': NO_MATCHES ]]></result></response>"
    cpu = round(dev.mp_cpu(now))
    slot = dev.platform.state_slot[1:]
    body = (f" {key}: {{ 'cpu': {{ '1minavg': {cpu}, }}, 'disks': [ {{ 'Drive': sda, 'Mount': None, 'Rd ms': 58486, "
            f"'Wr ms': 1528378, }}, {{ 'Drive': sda8, 'Mount': /opt/panlogs, 'Rd ms': 5359, 'Wr ms': 515882, }}, ], "
            f"'slot': {slot}, }} ")
    return f'<response status="success"><result><![CDATA[{body}]]></result></response>'


def session_info(dev: Device, now: float) -> str:
    """Answer show session info (10.x+ element set and True/False booleans)."""
    s = dev.sessions(now)
    a = s["active"]
    tcp, udp = int(a * 0.71), int(a * 0.27)
    fields = (
        ("age-accel-en", "True"), ("age-accel-thresh", 80), ("age-accel-tsf", 2), ("age-scan-ssf", 8),
        ("age-scan-thresh", 80), ("age-scan-tmo", 10), ("cps", s["cps"]), ("dis-def", 60), ("dis-sctp", 30),
        ("dis-tcp", 90), ("dis-udp", 60), ("hw-offload", "True"), ("hw-udp-offload", "True"),
        ("icmp-unreachable-rate", 200), ("ipv6-fw", "True"), ("kbps", s["kbps"]), ("max-pending-mcast", 0),
        ("num-active", a), ("num-bcast", 0), ("num-gtpc", 0), ("num-gtpu-active", 0), ("num-gtpu-pending", 0),
        ("num-http2-5gc", 0), ("num-icmp", a - tcp - udp), ("num-imsi", 0), ("num-installed", s["installed"]),
        ("num-max", dev.platform.num_max), ("num-mcast", 0), ("num-pfcpc", 0), ("num-predict", 0),
        ("num-sctp-assoc", 0), ("num-sctp-sess", 0), ("num-tcp", tcp), ("num-udp", udp), ("oor-action", "drop"),
        ("pps", s["pps"]), ("run-tc", "True"), ("strict-checksum", "True"), ("sw-cutthrough", "False"),
        ("tcp-cong-ctrl", 3), ("tcp-diff-syn-rej", "True"), ("tcp-no-refresh-fin-rst", "False"),
        ("tcp-nonsyn-rej", "True"), ("tcp-reject-siw-enable", "False"), ("tcp-reject-siw-thresh", 4),
        ("tcp-strict-rst", "True"), ("tmo-5gcdelete", 15), ("tmo-cp", 30), ("tmo-def", 30), ("tmo-icmp", 6),
        ("tmo-sctp", 3600), ("tmo-sctpcookie", 60), ("tmo-sctpinit", 5), ("tmo-sctpshutdown", 60),
        ("tmo-tcp", 3600), ("tmo-tcp-delayed-ack", 25), ("tmo-tcp-unverif-rst", 30), ("tmo-tcphalfclosed", 120),
        ("tmo-tcphandshake", 10), ("tmo-tcpinit", 5), ("tmo-tcptimewait", 15), ("tmo-udp", 30),
        ("tunnel-accel", "True"), ("vardata-rate", 10485760), ("dp", "*.dp0"),
    )
    return OK + "".join(f"<{k}>{v}</{k}>" for k, v in fields) + END


RM_SPAN = {"second": (1.0, 60), "minute": (60.0, 60), "hour": (3600.0, 24), "day": (86400.0, 7), "week": (604800.0, 13)}
TASKS = ("flow_lookup", "flow_fastpath", "flow_slowpath", "flow_forwarding", "flow_mgmt", "flow_ctrl", "nac_result",
         "flow_np", "dfa_result", "module_internal", "aho_result", "zip_result", "pktlog_forwarding", "lwm",
         "flow_host")


def resource_monitor(dev: Device, period: str, last: int | None, now: float) -> str:
    """Answer show running resource-monitor PERIOD [last N]: newest-first comma lists per DP and core."""
    step, count = RM_SPAN[period]
    if last is not None:
        count = max(1, min(last, count))
    end = now if period == "second" else now - now % step
    # Per interval: the exact mean load (from the integral) and a peak estimate from three samples.
    avgs: list[float] = []
    peaks: list[float] = []
    for i in range(count):
        b = end - i * step
        a = b - step
        if step <= 1.0:
            v = dev.level(b)
            avgs.append(v)
            peaks.append(v)
            continue
        share = dev.share_at(b)
        mean = share * (dev.load.integral(b) - dev.load.integral(a)) / step / LOAD_MAX
        avgs.append(max(mean, 1e-4))
        peaks.append(max(mean, dev.level(a), dev.level((a + b) / 2), dev.level(b)))
    sfx = ("", "") if period in ("second", "minute") else (" (average)", " (maximum)")
    parts = [OK, "<resource-monitor><data-processors>"]
    cores = dev.platform.cores
    for dp in range(dev.platform.dataplanes - 1, -1, -1):
        factor = 90.0 * dev.cpu_weight * (1.0 - 0.08 * dp)
        parts.append(f"<dp{dp}><{period}>")
        for tag, series in (("cpu-load-average", avgs), ("cpu-load-maximum", peaks)):
            parts.append(f"<{tag}>")
            for core in range(cores):
                if core == 0:
                    vals = ",".join("0" for _ in series)
                else:
                    off = 2.0 + dev.core_offsets[core]
                    vals = ",".join(str(int(min(max(off + factor * v, 1.0), 100.0))) for v in series)
                parts.append(f"<entry><coreid>{core}</coreid><value>{vals}</value></entry>")
            parts.append(f"</{tag}>")
        now_pct = factor * avgs[0]
        parts.append("<task>" + "".join(f"<{t}>{int(now_pct * (0.3 if t == 'lwm' else 0.9))}%</{t}>" for t in TASKS)
                     + "</task>")
        ses = ",".join(str(int(100 * dev.session_util * v)) for v in avgs)
        buf = ",".join(str(int(1 + 30 * v)) for v in avgs)
        desc = ",".join(str(int(1 + 20 * v)) for v in avgs)
        chip = ",".join(str(int(1 + 12 * v)) for v in avgs)
        pbuf = ",".join(str(int(1 + 30 * v)) for v in peaks)
        names = [("session", ses), ("packet buffer", buf), ("packet descriptor", desc),
                 ("packet descriptor (on-chip)", chip)]
        parts.append("<resource-utilization>")
        for n, vals in names:
            parts.append(f"<entry><name>{n}{sfx[0]}</name><value>{vals}</value></entry>")
            if sfx[1]:
                peak_vals = pbuf if n == "packet buffer" else vals
                parts.append(f"<entry><name>{n}{sfx[1]}</name><value>{peak_vals}</value></entry>")
        parts.append(f"</resource-utilization></{period}></dp{dp}>")
    parts.append("</data-processors></resource-monitor>" + END)
    return "".join(parts)


def ha_state(dev: Device, now: float) -> str:
    """Answer show high-availability state (disabled, or an active/passive pair)."""
    if not dev.ha_enabled:
        return OK + "<enabled>no</enabled><local-info><encrypt-imported>no</encrypt-imported></local-info>" + END
    peer = "passive" if dev.ha_state == "active" else "active"
    p = dev.platform
    dur = int(now - dev.ha_since)
    return (
        OK + "<enabled>yes</enabled><group><mode>Active-Passive</mode><local-info>"
        f"<version>1</version><state>{dev.ha_state}</state><state-duration>{dur}</state-duration>"
        f"<mgmt-ip>{dev.mgmt_ip}/24</mgmt-ip><mgmt-ipv6></mgmt-ipv6><preemptive>no</preemptive>"
        "<promotion-hold>2000</promotion-hold><hello-interval>8000</hello-interval>"
        "<heartbeat-interval>2000</heartbeat-interval><preempt-flap-cnt>0</preempt-flap-cnt>"
        "<nonfunc-flap-cnt>0</nonfunc-flap-cnt><max-flaps>3</max-flaps><preempt-hold>1</preempt-hold>"
        "<monitor-fail-holdup>0</monitor-fail-holdup><addon-master-holdup>500</addon-master-holdup>"
        "<ha1-ipaddr>169.254.1.1/30</ha1-ipaddr><ha1-port>ha1-a</ha1-port><ha1-link-mon-intv>3000</ha1-link-mon-intv>"
        "<ha1-encrypt-imported>no</ha1-encrypt-imported><ha1-encrypt-enable>no</ha1-encrypt-enable>"
        f"<mode>Active-Passive</mode><platform-model>{p.model}</platform-model><priority>100</priority>"
        "<active-passive><passive-link-state>auto</passive-link-state><monitor-fail-holddown>1</monitor-fail-holddown>"
        f"</active-passive><build-rel>{p.sw_version}</build-rel><build-compat>Match</build-compat>"
        "<app-version>8832-8682</app-version><app-compat>Match</app-compat><threat-version>8832-8682</threat-version>"
        "<threat-compat>Match</threat-compat><av-version>4745-5263</av-version><av-compat>Match</av-compat>"
        "<url-version>20240319.20215</url-version><url-compat>Match</url-compat>"
        "<gpclient-version>Not Installed</gpclient-version><gpclient-compat>Match</gpclient-compat>"
        "<vpnclient-version>Not Installed</vpnclient-version><vpnclient-compat>Match</vpnclient-compat>"
        "<iot-version>98-532</iot-version><iot-compat>Match</iot-compat><VMS>Match</VMS><DLP>Match</DLP>"
        "<state-sync>Complete</state-sync><state-sync-type>ethernet</state-sync-type>"
        "<last-error-state>suspended</last-error-state><last-error-reason>User requested</last-error-reason>"
        "<ha1-gateway>169.254.1.2</ha1-gateway><vm-license>none</vm-license><vm-license-type>none</vm-license-type>"
        "<vm-license-compat>Match</vm-license-compat>"
        "</local-info><peer-info>"
        f"<conn-status>up</conn-status><conn-ha1><conn-status>up</conn-status><conn-primary>yes</conn-primary>"
        f"<conn-desc>heartbeat status</conn-desc></conn-ha1><version>1</version><state>{peer}</state>"
        f"<state-duration>{dur}</state-duration><last-error-reason>User requested</last-error-reason>"
        "<last-error-state>suspended</last-error-state><mgmt-ip>10.255.0.2/24</mgmt-ip><mgmt-ipv6></mgmt-ipv6>"
        f"<preemptive>no</preemptive><mode>Active-Passive</mode><platform-model>{p.model}</platform-model>"
        f"<priority>110</priority><build-rel>{p.sw_version}</build-rel><app-version>8832-8682</app-version>"
        "<threat-version>8832-8682</threat-version><av-version>4745-5263</av-version>"
        "<url-version>20240319.20215</url-version><gpclient-version>Not Installed</gpclient-version>"
        "<vpnclient-version>Not Installed</vpnclient-version><iot-version>98-532</iot-version>"
        "<ha1-ipaddr>169.254.1.2</ha1-ipaddr><vm-license>none</vm-license><vm-license-type>none</vm-license-type>"
        "<VMS>2.1.4</VMS><DLP>1.0.3</DLP></peer-info>"
        "<link-monitoring><enabled>yes</enabled><failure-condition>any</failure-condition><groups/></link-monitoring>"
        "<path-monitoring><enabled>yes</enabled><failure-condition>any</failure-condition><vwire/><vlan/>"
        "<vrouter/><virtual-wire/><virtual-router/></path-monitoring>"
        "<running-sync>synchronized</running-sync><running-sync-enabled>yes</running-sync-enabled>"
        "</group>" + END
    )


def license_info(dev: Device, now: float) -> str:
    """Answer request license info (one licence never expires, one may be expired)."""
    year = time.gmtime(now).tm_year
    day = 1 + dev.index % 27
    mon = MONTHS[dev.index % 12]
    lic = [
        ("Threat Prevention", "Threat Prevention", f"{mon} {day:02d}, {year - 1}", f"{mon} {day:02d}, {year + 1}",
         "no"),
        ("PAN-DB URL Filtering", "Palo Alto Networks URL Filtering License", f"{mon} {day:02d}, {year - 1}",
         f"{mon} {day:02d}, {year + 2}", "no"),
        ("GlobalProtect Gateway", "GlobalProtect Gateway License", f"{mon} {day:02d}, {year - 2}", "Never", "no"),
        ("WildFire License", "WildFire signature feed, integrated WildFire logs, WildFire API",
         f"{mon} {day:02d}, {year - 3}", f"{mon} {day:02d}, {year - 1}", "yes" if dev.index % 5 == 0 else "no"),
    ]
    custom = "<custom><_Log_Storage_TB>1</_Log_Storage_TB></custom>"
    lic.append(("Logging Service", "Device Logging Service", f"{mon} {day:02d}, {year - 1}",
                f"{mon} {day:02d}, {year + 1}", "no"))
    entries = "".join(
        f"<entry><feature>{f}</feature><description>{d}</description><serial>{dev.serial}</serial>"
        f"<issued>{i}</issued><expires>{e}</expires><expired>{x}</expired>{custom if f == 'Logging Service' else ''}"
        f"<base-license-name>{dev.platform.model}</base-license-name><authcode/></entry>"
        for f, d, i, e, x in lic
    )
    return OK + f"<licenses>{entries}</licenses>" + END
