"""One device's newest rows (`device_parts`, what `/metrics?device=` reads) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from panfm.models import CounterBaseline, CycleResult, DataplaneCpu, DeviceSample, DeviceStatus, InterfaceCounters

T0 = 1_780_000_200.0


def _cycle(t: float) -> CycleResult:
    counters = {n: InterfaceCounters(n, 2**63 - k, 10 + k, 11, 12, 0, 1, source="hw")
                for k, n in enumerate(("ethernet1/1", "ethernet1/2", "tunnel.1"))}
    devices = ("dev-a", "dev-b")
    return CycleResult(
        started=t, finished=t + 1.0,
        samples=tuple(DeviceSample(device_id=d, ts=t + 0.25, inbound_mbps=1.0 + i, sessions_active=100 * (i + 1),
                                   rtt_ms=3.0, approx=False) for i, d in enumerate(devices)),
        interfaces=(),
        baselines=tuple(CounterBaseline(d, t, "SER" + d, 1000, counters, 3.0) for d in devices),
        statuses=(DeviceStatus("dev-a", "up", t, t, None, 0), DeviceStatus("dev-b", "down", t, t - 30, "Timeout", 2)),
        dataplanes=(DataplaneCpu("dev-a", t, (("dp0", 12.5), ("dp1", 40.0)), ("dp1", 3, 55.0)),),
    )


def test_one_devices_parts_are_the_whole_fleet_reads_for_that_device_only(stores):
    writer = stores.open_sample_writer(interval_s=30)
    try:
        writer.write_cycle(_cycle(T0), {"executions": 1})
        writer.write_cycle(_cycle(T0 + 30), {"executions": 2})
        writer.write_inventory("dev-a", T0, {"system": {"model": "PA-440"}})
    finally:
        writer.close()

    def keep(device_id: str, names):
        return [n for n in names if n.startswith("ethernet")]

    with stores.open_sample_reader() as reader:
        parts = reader.device_parts("dev-a", keep)
        assert parts["samples"] == {"dev-a": reader.latest_all()["dev-a"]}
        assert parts["samples"]["dev-a"].ts == pytest.approx(T0 + 30.25)
        assert parts["statuses"] == {"dev-a": reader.device_statuses()["dev-a"]}
        assert parts["dataplanes"] == {"dev-a": reader.dataplane_cpu_all()["dev-a"]}
        assert parts["inventories"] == {"dev-a": reader.inventory_all()["dev-a"]}
        assert parts["baselines"] == {"dev-a": reader.baselines(keep)["dev-a"]}
        assert sorted(parts["baselines"]["dev-a"].counters) == ["ethernet1/1", "ethernet1/2"]
        assert parts["baselines"]["dev-a"].counters["ethernet1/1"].ibytes == 2**63  # exact 64-bit

        everything = reader.device_parts("dev-b")  # no `keep`: every interface; no dataplane or inventory rows
        assert sorted(everything["baselines"]["dev-b"].counters) == ["ethernet1/1", "ethernet1/2", "tunnel.1"]
        assert everything["statuses"]["dev-b"].state == "down"
        assert everything["statuses"]["dev-b"].last_error == "Timeout"
        assert everything["dataplanes"] == {} and everything["inventories"] == {}

        assert reader.device_parts("nope") == {"samples": {}, "statuses": {}, "dataplanes": {}, "inventories": {},
                                               "baselines": {}}
