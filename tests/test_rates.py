"""Rate math as a table: Δbytes × 8 / Δt with resets, gaps, link speed and 64-bit counters."""

import pytest

import panfm.collector.metrics as cm
from panfm.models import CounterBaseline, InterfaceCounters

T0 = 1_800_000_000.000


def ctr(name, ibytes, obytes, ipk=None, opk=None, source="hw"):
    return InterfaceCounters(
        name=name, ibytes=ibytes, obytes=obytes, ipackets=ipk if ipk is not None else ibytes // 100,
        opackets=opk if opk is not None else obytes // 100, ierrors=0, idrops=0, source=source,
    )


def base(counters, ts=T0, serial="0123", uptime=1000):
    return CounterBaseline(device_id="d1", ts=ts, serial=serial, uptime_seconds=uptime,
                           counters={c.name: c for c in counters})


PREV = [ctr("ethernet1/1", 1_000_000, 2_000_000), ctr("ethernet1/2", 0, 0)]
STEADY = [ctr("ethernet1/1", 1_625_000, 2_312_500), ctr("ethernet1/2", 0, 0)]

# (case, current counters, dt, serial, uptime, link speed, expected in_bps of ethernet1/1 or None)
CASES = [
    ("steady", STEADY, 5.0, "0123", 1005, None, 1_000_000.0),
    ("millisecond dt", STEADY, 5.125, "0123", 1005, None,
     625_000 * 8 / 5.125),
    ("missed polls", [ctr("ethernet1/1", 2_875_000, 2_000_000), ctr("ethernet1/2", 0, 0)], 15.0, "0123", 1015, None,
     1_000_000.0),
    ("reset to zero", [ctr("ethernet1/1", 0, 0), ctr("ethernet1/2", 0, 0)], 5.0, "0123", 1005, None, None),
    ("reset to a small value", [ctr("ethernet1/1", 900_000, 3_000_000), ctr("ethernet1/2", 10, 10)], 5.0, "0123", 1005,
     None, None),
    ("uptime decrease", STEADY, 5.0, "0123", 30, None, None),
    ("serial change", STEADY, 5.0, "9999", 1005, None, None),
    ("above link speed", [ctr("ethernet1/1", 1_000_000 + 1_000_000_000, 2_000_000), ctr("ethernet1/2", 0, 0)], 5.0,
     "0123", 1005, 1000, None),
    ("just under link speed", [ctr("ethernet1/1", 1_000_000 + 687_500_000, 2_000_000), ctr("ethernet1/2", 0, 0)], 5.0,
     "0123", 1005, 1000, 1_100_000_000.0),
]


@pytest.mark.parametrize(
    ("case", "cur", "dt", "serial", "uptime", "speed", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_it_computes_rates_or_gaps_per_the_table(case, cur, dt, serial, uptime, speed, expected):
    prev = base(PREV)
    counters = {c.name: c for c in cur}
    ts = T0 + dt
    reset = cm.reset_reason(prev, counters, ts, serial=serial, uptime_seconds=uptime)
    rates = cm.interface_rates("d1", prev, counters, ts, counted=cm.counted_names(counters, ()),
                               link_speed_mbps={"ethernet1/1": speed}, reset=reset)
    eth = next(s for s in rates.interfaces if s.name == "ethernet1/1")
    if expected is None:
        assert eth.in_bps is None and eth.out_bps is None
        assert rates.inbound_mbps is None, "a gap in a counted port makes the device total a gap, not a dip"
    else:
        assert eth.in_bps == pytest.approx(expected, rel=1e-12)
        assert rates.inbound_mbps == pytest.approx(expected / 1e6, rel=1e-12)
    for s in rates.interfaces:  # never negative, never a spike from a reset
        for v in (s.in_bps, s.out_bps, s.in_pps, s.out_pps):
            assert v is None or v >= 0


def test_it_gives_no_rate_on_the_first_poll_and_a_real_one_from_a_persisted_baseline():
    counters = {"ethernet1/1": ctr("ethernet1/1", 5_000, 5_000)}
    first = cm.interface_rates("d1", None, counters, T0, counted=["ethernet1/1"],
                               reset=cm.reset_reason(None, counters, T0, serial=None, uptime_seconds=None))
    assert first.in_bps is None and first.reset == "no baseline"
    # After a clock restart, the baseline comes back from the database and the serial is not yet known.
    restored = base([ctr("ethernet1/1", 5_000, 5_000)], ts=T0, serial="0123", uptime=None)
    later = {"ethernet1/1": ctr("ethernet1/1", 5_000 + 1_250_000, 5_000 + 250_000)}
    reset = cm.reset_reason(restored, later, T0 + 10, serial=None, uptime_seconds=None)
    rates = cm.interface_rates("d1", restored, later, T0 + 10, counted=["ethernet1/1"], reset=reset)
    assert reset is None
    assert rates.in_bps == pytest.approx(1_000_000.0) and rates.out_bps == pytest.approx(200_000.0)
    assert rates.total_mbps == pytest.approx(1.2)


def test_it_keeps_64_bit_counters_exact():
    high = 2**63 + 12_345
    prev = base([ctr("ethernet1/1", high, high, ipk=high, opk=high)])
    cur = {"ethernet1/1": ctr("ethernet1/1", high + 1_000_000_000, high + 8, ipk=high + 1000, opk=high + 1)}
    rates = cm.interface_rates("d1", prev, cur, T0 + 8, counted=["ethernet1/1"],
                               reset=cm.reset_reason(prev, cur, T0 + 8, serial="0123", uptime_seconds=1008))
    assert rates.in_bps == 1_000_000_000.0 and rates.out_bps == 8.0
    assert rates.in_pps == 125.0


def test_it_counts_each_name_from_one_list_and_only_physical_ports_by_default():
    from panfm.models import CounterSnapshot

    hw = {n: ctr(n, 1000, 1000) for n in ("ethernet1/1", "ethernet1/2", "ethernet1/3", "ae1", "mgmt")}
    ifnet = {n: ctr(n, 7, 7, source="ifnet")
             for n in ("ethernet1/1", "ethernet1/1.10", "ae1", "ae1.5", "tunnel.1", "loopback.1", "vlan.1")}
    merged = cm.select_counters(CounterSnapshot(hw=hw, ifnet=ifnet))
    assert merged["ethernet1/1"].source == "hw"  # from hw only, not its ifnet twin
    assert merged["ae1"].source == "ifnet" and "mgmt" not in merged
    assert cm.counted_names(merged, ()) == ("ethernet1/1", "ethernet1/2", "ethernet1/3")
    assert cm.counted_names(merged, ("ae1", "tunnel.1", "nonexistent")) == ("ae1", "tunnel.1")


def test_it_sums_only_counted_interfaces_into_device_totals():
    names = ("ethernet1/1", "ethernet1/2", "ethernet1/1.10")
    prev = base([ctr(n, 0, 0) for n in names])
    cur = {"ethernet1/1": ctr("ethernet1/1", 125_000, 0), "ethernet1/2": ctr("ethernet1/2", 250_000, 125_000),
           "ethernet1/1.10": ctr("ethernet1/1.10", 125_000, 0, source="ifnet")}
    rates = cm.interface_rates("d1", prev, cur, T0 + 1, counted=cm.counted_names(cur, ()))
    assert rates.in_bps == pytest.approx(3_000_000.0)  # 1 + 2 Mbps, the sub-interface not again
    assert rates.out_bps == pytest.approx(1_000_000.0)
    assert {s.name: s.counted for s in rates.interfaces} == {"ethernet1/1": True, "ethernet1/2": True,
                                                            "ethernet1/1.10": False}


@pytest.mark.parametrize("chosen", [(), ("ethernet1/1", "ethernet1/2")])
def test_it_makes_the_totals_a_gap_when_a_counted_interface_is_missing_from_one_poll(chosen):
    prev = base([ctr("ethernet1/1", 0, 0), ctr("ethernet1/2", 0, 0), ctr("ethernet1/1.10", 0, 0, source="ifnet")])
    cur = {"ethernet1/1": ctr("ethernet1/1", 125_000, 125_000),
           "ethernet1/1.10": ctr("ethernet1/1.10", 125_000, 0, source="ifnet")}  # ethernet1/2 absent this poll
    counted = cm.counted_names(cur, chosen, prev.counters)
    assert counted == ("ethernet1/1", "ethernet1/2")
    rates = cm.interface_rates("d1", prev, cur, T0 + 1, counted=counted)
    assert (rates.in_bps, rates.out_bps, rates.in_pps, rates.out_pps) == (None, None, None, None)
    assert rates.total_mbps is None  # a gap, never the smaller sum of ethernet1/1 alone
    by_name = {s.name: s for s in rates.interfaces}
    assert set(by_name) == {"ethernet1/1", "ethernet1/1.10"}  # the samples that exist are kept
    assert by_name["ethernet1/1"].in_bps == pytest.approx(1_000_000.0) and by_name["ethernet1/1"].counted


def test_it_sums_again_once_a_vanished_interface_has_left_the_baseline():
    prev = base([ctr("ethernet1/1", 0, 0)])  # the baseline of the gap interval, without ethernet1/2
    cur = {"ethernet1/1": ctr("ethernet1/1", 125_000, 0)}
    rates = cm.interface_rates("d1", prev, cur, T0 + 1, counted=cm.counted_names(cur, (), prev.counters))
    assert rates.in_bps == pytest.approx(1_000_000.0)
