"""Every metric definition on the real recorded responses, parsed by panos_xml."""

from pathlib import Path
from xml.etree import ElementTree

import pytest

import panfm.collector.metrics as cm
import panfm.xmlapi.parsers as panos_xml
from panfm.models import DataplaneLoad, ResourceMonitor, SystemResources

FIX = Path(__file__).parent / "fixtures" / "panos"


def read(name):
    return (FIX / name).read_bytes()


def _expected_dp_cpu(xml_bytes):
    """Independent reading of the rule straight from the XML: per DP, mean of latest over non-idle cores."""
    root = ElementTree.fromstring(xml_bytes)
    out = {}
    for dp in root.find("result/resource-monitor/data-processors"):
        latest = []
        for entry in dp.iter("cpu-load-average"):
            for core in entry.findall("entry"):
                values = [int(v) for v in core.findtext("value").split(",")]
                if any(values):
                    latest.append(values[0])
        out[dp.tag] = sum(latest) / len(latest) if latest else 0.0
    return out


def test_it_averages_dataplane_cores_leaving_out_idle_control_cores_on_a_3_dp_box():
    body = read("show-running-resource-monitor-second__irom77-go-public-pa5000.xml")
    m = cm.dataplane_metrics(panos_xml.parse_resource_monitor(body))
    expected = _expected_dp_cpu(body)
    assert m.per_dp_cpu == pytest.approx(expected)
    assert m.busiest_dp == max(expected, key=expected.get)
    assert m.cpu_pct == pytest.approx(max(expected.values()))
    assert m.busiest_core is not None and m.busiest_core[2] >= m.cpu_pct
    # Packet buffer/descriptor: latest value, busiest DP (this box has no "(average)" entries).
    root = ElementTree.fromstring(body)
    bufs, descs = [], []
    for dp in root.find("result/resource-monitor/data-processors"):
        for e in dp.iter("entry"):
            if e.findtext("name") == "packet buffer":
                bufs.append(int(e.findtext("value").split(",")[0]))
            if e.findtext("name") == "packet descriptor":
                descs.append(int(e.findtext("value").split(",")[0]))
    assert m.packet_buffer_pct == max(bufs) and m.packet_descriptor_pct == max(descs)


def test_it_excludes_cores_at_zero_in_every_sample_of_minute_last_5():
    m = cm.dataplane_metrics(panos_xml.parse_resource_monitor(
        read("show-running-resource-monitor-minute-last-5__pan-os-upgrade-assurance.xml")))
    # Cores 0, 1 and 3 read 0 in all five samples; core 2 reads 1: the DP is at 1 %, not 0.25 %.
    assert m.per_dp_cpu == {"dp0": 1.0} and m.cpu_pct == 1.0
    assert m.busiest_core == ("dp0", 2, 1.0)
    assert m.packet_buffer_pct is None


def test_it_prefers_the_average_entry_when_average_and_maximum_are_reported():
    dp = lambda name, buf: DataplaneLoad(  # noqa: E731
        name=name, cpu_average={0: (0, 0), 1: (40, 30), 2: (20, 10)}, cpu_maximum={}, tasks={},
        utilization={"packet buffer (average)": (buf, 1), "packet buffer (maximum)": (99, 99),
                     "packet descriptor (average)": (3,), "packet descriptor (maximum)": (90,)})
    m = cm.dataplane_metrics(ResourceMonitor(period="hour", dataplanes=(dp("dp0", 12), dp("dp1", 17))))
    assert m.packet_buffer_pct == 17.0 and m.packet_descriptor_pct == 3.0
    assert m.per_dp_cpu == {"dp0": 30.0, "dp1": 30.0}


@pytest.mark.parametrize("name", ["show-session-info__irom77-go-public-pa5000.xml",
                                  "show-session-info__pan-os-upgrade-assurance.xml"])
def test_it_takes_session_fields_and_utilisation_from_real_session_info(name):
    body = read(name)
    root = ElementTree.fromstring(body).find("result")
    s = cm.session_metrics(panos_xml.parse_session_info(body))
    assert s.active == int(root.findtext("num-active")) and s.max == int(root.findtext("num-max"))
    assert (s.tcp, s.udp, s.icmp) == tuple(int(root.findtext(f"num-{k}")) for k in ("tcp", "udp", "icmp"))
    assert (s.kbps, s.pps, s.cps) == tuple(int(root.findtext(k)) for k in ("kbps", "pps", "cps"))
    assert s.utilization_pct == pytest.approx(s.active / s.max * 100)


def test_it_reads_management_cpu_from_mp_exports_else_from_idle():
    resources = panos_xml.parse_system_resources(read("show-system-resources__pan-os-upgrade-assurance.xml"))
    mp = panos_xml.parse_mp_cpu(read("show-system-state-filter-sys-monitor-mp-exports__pan-os-upgrade-assurance.xml"))
    assert cm.management_cpu(mp, resources) == 3.0
    assert cm.management_cpu(None, resources) == pytest.approx(100 - 99.3)


def test_it_reads_memory_from_the_mem_line_never_swap():
    resources = panos_xml.parse_system_resources(read("show-system-resources__pan-os-upgrade-assurance.xml"))
    assert cm.memory_pct(resources) == pytest.approx(10179.2 / 63739.8 * 100, rel=1e-3)
    assert cm.memory_pct(None) is None
    assert cm.memory_pct(SystemResources(1, 1, 98, 0, 0, 0)) is None


def test_it_counts_a_physical_port_from_hw_only_on_a_real_counter_layout():
    snap = panos_xml.parse_counter_interface(read("show-counter-interface-all-flat__SYNTHETIC.xml"))
    merged = cm.select_counters(snap)
    assert merged["ethernet1/3"].source == "hw" and merged["ethernet1/3"].ibytes == 7


def test_it_reads_a_dataplane_whose_cores_return_no_values_as_no_data_not_zero():
    empty = DataplaneLoad(name="dp0", cpu_average={0: (), 1: ()}, cpu_maximum={}, tasks={}, utilization={})
    m = cm.dataplane_metrics(ResourceMonitor(period="minute", dataplanes=(empty,)))
    assert m.per_dp_cpu == {"dp0": None}
    assert m.cpu_pct is None and m.busiest_dp is None and m.busiest_core is None


def test_it_takes_the_busiest_dataplane_that_has_data_beside_one_without():
    empty = DataplaneLoad(name="dp0", cpu_average={0: ()}, cpu_maximum={}, tasks={}, utilization={})
    busy = DataplaneLoad(name="dp1", cpu_average={0: (0, 0), 1: (25, 20)}, cpu_maximum={}, tasks={}, utilization={})
    idle = DataplaneLoad(name="dp2", cpu_average={0: (0, 0), 1: (0, 0)}, cpu_maximum={}, tasks={}, utilization={})
    m = cm.dataplane_metrics(ResourceMonitor(period="minute", dataplanes=(empty, busy, idle)))
    assert m.per_dp_cpu == {"dp0": None, "dp1": 25.0, "dp2": 0.0}  # idle cores read 0 honestly
    assert m.cpu_pct == 25.0 and m.busiest_dp == "dp1" and m.busiest_core == ("dp1", 1, 25.0)
