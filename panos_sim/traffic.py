"""Deterministic traffic: a load curve per (seed, device, interface) and its exact integral.

The load L(t) is dimensionless and always within [LOAD_MIN, LOAD_MAX]:

1. a daily sine (peak mid-afternoon UTC, shifted per device),
2. three noise sines per interface and direction with incommensurate periods,
3. bursts: a pattern of 144 slots of 630 s (so it drifts against the day) where some slots
   hold one rectangular burst; the pattern repeats every 90,720 s.

Every part has a closed-form antiderivative, so byte counters are floor(S * integral) and the
ground truth over any window is exact. Times are epoch seconds; the math runs on t - T0 so
float rounding stays far below one byte per second of traffic.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from dataclasses import dataclass

T0 = 1_700_000_000.0  # reference epoch: keeps t - T0 small, so floats keep sub-microsecond precision
DAY = 86400.0
SLOT = 630.0
SLOTS = 144
PERIOD = SLOT * SLOTS
DAILY_AMP = 0.45
NOISE_AMPS = (0.06, 0.04, 0.03)
BURST_MAX = 0.8
LOAD_MIN = 1.0 - DAILY_AMP - sum(NOISE_AMPS)
LOAD_MAX = 1.0 + DAILY_AMP + sum(NOISE_AMPS) + BURST_MAX


def rng_for(*parts: object) -> random.Random:
    """Return a Random seeded by a stable hash of PARTS (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    # A seeded model, not a secret: reproducibility is the point.
    return random.Random(int.from_bytes(digest[:8], "big"))  # nosec B311


@dataclass(frozen=True)
class Wave:
    """amp * sin(omega * x + phase), with x = t - T0."""

    amp: float
    omega: float
    phase: float

    def value(self, x: float) -> float:
        """Return the wave at x."""
        return self.amp * math.sin(self.omega * x + self.phase)

    def integral(self, x: float) -> float:
        """Return an antiderivative of the wave at x."""
        return -self.amp / self.omega * math.cos(self.omega * x + self.phase)


class DeviceLoad:
    """The device-wide part of the load: daily curve and bursts."""

    def __init__(self, seed: int, device: str) -> None:
        rng = rng_for(seed, device, "device")
        peak_hour = 14.0 + rng.uniform(-3.0, 3.0)
        # sin peaks where omega*x + phase = pi/2; choose phase so that happens at peak_hour UTC.
        omega = 2 * math.pi / DAY
        peak_x = (peak_hour * 3600.0 - T0 % DAY) % DAY
        self.daily = Wave(DAILY_AMP, omega, math.pi / 2 - omega * peak_x)
        self.starts = array("d")
        self.lengths = array("d")
        self.amps = array("d")
        self.prefix = array("d", [0.0])
        for _ in range(SLOTS):
            if rng.random() < 0.12:
                length = rng.uniform(20.0, 240.0)
                start = rng.uniform(0.0, SLOT - length)
                amp = rng.uniform(0.2, BURST_MAX)
            else:
                length, start, amp = 0.0, 0.0, 0.0
            self.starts.append(start)
            self.lengths.append(length)
            self.amps.append(amp)
            self.prefix.append(self.prefix[-1] + amp * length)

    def burst(self, x: float) -> float:
        """Return the burst level at x."""
        k = math.floor(x / SLOT) % SLOTS
        off = x - math.floor(x / SLOT) * SLOT - self.starts[k]
        return self.amps[k] if 0.0 <= off < self.lengths[k] else 0.0

    def burst_integral(self, x: float) -> float:
        """Return the integral of the bursts from 0 to x (x >= 0)."""
        slot = math.floor(x / SLOT)
        period, k = divmod(int(slot), SLOTS)
        off = x - slot * SLOT - self.starts[k]
        partial = self.amps[k] * min(max(off, 0.0), self.lengths[k])
        return period * self.prefix[SLOTS] + self.prefix[k] + partial

    def value(self, t: float) -> float:
        """Return 1 + daily + burst at epoch t."""
        x = t - T0
        return 1.0 + self.daily.value(x) + self.burst(x)

    def integral(self, t: float) -> float:
        """Return an antiderivative of value() at epoch t."""
        x = t - T0
        return x + self.daily.integral(x) + self.burst_integral(x)


class Flow:
    """Traffic of one interface direction: bytes/s = scale * (device load + own noise)."""

    def __init__(self, seed: int, device: str, name: str, scale: float, load: DeviceLoad) -> None:
        rng = rng_for(seed, device, name)
        periods = (rng.uniform(40.0, 90.0), rng.uniform(300.0, 900.0), rng.uniform(2000.0, 5000.0))
        self.waves = tuple(
            Wave(a, 2 * math.pi / p, rng.uniform(0.0, 2 * math.pi)) for a, p in zip(NOISE_AMPS, periods, strict=True)
        )
        self.scale = scale
        self.load = load

    def rate(self, t: float) -> float:
        """Return bytes per second at epoch t."""
        x = t - T0
        return self.scale * (self.load.value(t) + sum(w.value(x) for w in self.waves))

    def integral(self, t: float) -> float:
        """Return an antiderivative of rate()/scale at epoch t."""
        x = t - T0
        return self.load.integral(t) + sum(w.integral(x) for w in self.waves)

    def bytes_between(self, t1: float, t2: float) -> float:
        """Return the exact (real-valued) bytes carried between t1 and t2."""
        return self.scale * (self.integral(t2) - self.integral(t1))


def port_scale(seed: int, device: str, name: str, speed_mbps: int) -> float:
    """Return the per-direction scale (bytes/s at load 1) so that peaks stay under 90 % of link speed."""
    rng = rng_for(seed, device, name, "scale")
    peak_util = rng.uniform(0.05, 0.85)
    return speed_mbps * 1e6 / 8.0 * peak_util / LOAD_MAX
