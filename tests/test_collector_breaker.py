"""Circuit breaker timing and the error text shown on the dashboard."""

import pytest

from panfm.collector.breaker import Breaker, safe_error, status_after_failure, status_after_success


def test_it_opens_after_three_failures_and_backs_off_1_2_4_intervals_capped_at_2_minutes():
    b, now, interval = Breaker(), 1000.0, 30.0
    for _ in range(2):
        b.failure(now, interval)
        assert not b.is_open and b.allows(now)
    b.failure(now, interval)
    assert b.is_open
    gaps = []
    for _ in range(5):
        assert not b.allows(now + 1)
        probe_at = b.next_probe
        gaps.append(round(probe_at - now + 0.5))
        now = probe_at
        assert b.allows(now)
        b.failure(now, interval)  # the probe fails
    assert gaps == [30, 60, 120, 120, 120]


def test_it_closes_on_a_successful_probe():
    b = Breaker()
    for _ in range(3):
        b.failure(0.0, 5.0)
    assert b.is_open and not b.allows(1.0)
    assert b.allows(b.next_probe)
    b.success()
    assert not b.is_open and b.allows(0.0) and b.failures == 0


def test_it_keeps_the_last_success_and_reports_breaker_open():
    b = Breaker()
    up = status_after_success(None, "d1", 10.0)
    for t in (20.0, 30.0, 40.0):
        b.failure(t, 10.0)
        status = status_after_failure(up, "d1", t, "ConnectError: refused", b)
    assert status.state == "breaker_open" and status.last_success == 10.0 and status.consecutive_failures == 3


@pytest.mark.parametrize("message", [
    "https://fw/api/?type=op&key=LUFRPT1SECRET== failed",
    "header X-PAN-KEY: LUFRPT1SECRET== rejected",
    "login with password=LUFRPT1SECRET== refused",
])
def test_it_never_puts_a_secret_in_the_error_text(message):
    text = safe_error(RuntimeError(message), secrets=("LUFRPT1SECRET==",))
    assert "LUFRPT1SECRET" not in text and "RuntimeError" in text
    assert "LUFRPT1SECRET" not in safe_error(RuntimeError(message))


class _BlackholedClient:
    """A firewall that swallows the request: the call fails only when the device's deadline ran out."""

    last_sent_time = 0.0
    last_round_trip = 0.0

    def __init__(self, fake_time, calls, hang_s):
        self.fake_time, self.calls, self.hang_s = fake_time, calls, hang_s

    def counters(self):
        self.calls.append(self.fake_time[0])
        self.fake_time[0] += self.hang_s
        raise TimeoutError("read timed out")

    def close(self):
        pass


def test_it_probes_a_blackholed_device_after_1_2_4_intervals_and_at_most_2_minutes_apart():
    from panfm.collector.cycle import Collector, deadline_for
    from panfm.models import DeviceConfig, TlsConfig

    interval, start = 30.0, 1_000_000.0
    fake_time, calls = [start], []
    collector = Collector(
        workers=1, request_timeout=60.0, clock=lambda: fake_time[0], monotonic=lambda: fake_time[0],
        client_factory=lambda dev, timeout, on_key: _BlackholedClient(fake_time, calls, deadline_for(interval)),
    )
    dev = DeviceConfig(id="fw", name="fw", host="192.0.2.1", tls=TlsConfig("insecure"), api_key="k")
    try:
        for cycle in range(24):  # cycles start on the interval, whatever the previous one cost
            fake_time[0] = start + cycle * interval
            collector.collect([dev], interval)
    finally:
        collector.close()
    polled = [round((t - start) / interval) for t in calls]
    # Three failures open the breaker (cycles 0-2); probes follow 1, 2, 4 intervals later, then every 120 s.
    assert polled == [0, 1, 2, 3, 5, 9, 13, 17, 21]
