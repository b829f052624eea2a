"""Describe the simulated hardware models: ports, dataplanes, cores and session limits."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Port:
    """One interface as the firewall lists it."""

    name: str
    kind: str  # physical | aggregate | subif | tunnel | loopback | tunnel-base | loopback-base
    speed_mbps: int = 0
    parent: str = ""  # subif: parent port; aggregate member: the ae name
    share: float = 0.0  # subif/tunnel/loopback: fraction of the parent's (or of ethernet1/1's) traffic
    ifid: int = 0
    tag: int = 0
    zone: str = ""


@dataclass(frozen=True)
class Platform:
    """A hardware (or VM) model with the numbers a monitor reads from it."""

    model: str
    family: str
    sw_version: str
    dataplanes: int
    cores: int
    num_max: int
    ports: tuple[Port, ...] = field(default_factory=tuple)
    mp_mem_mib: float = 16000.0
    arp_max: int = 2500
    state_slot: str = "s0"

    def physical(self) -> list[Port]:
        """Return the ethernet ports that carry traffic of their own."""
        return [p for p in self.ports if p.kind == "physical"]

    def port(self, name: str) -> Port | None:
        """Return the port called NAME, or None."""
        for p in self.ports:
            if p.name == name:
                return p
        return None


def _ports(speeds: list[int]) -> tuple[Port, ...]:
    """Build ethernet1/1..N, ae1 over the last two ports, a sub-interface, a tunnel and a loopback."""
    n = len(speeds)
    members = {f"ethernet1/{n - 1}", f"ethernet1/{n}"}
    zones = ["untrust", "trust", "dmz", "guest"]
    out: list[Port] = []
    for i, speed in enumerate(speeds, start=1):
        name = f"ethernet1/{i}"
        out.append(
            Port(
                name,
                "physical",
                speed,
                parent="ae1" if name in members else "",
                ifid=15 + i,
                zone="" if name in members else zones[(i - 1) % len(zones)],
            )
        )
    out.append(Port("ae1", "aggregate", 2 * speeds[-1], ifid=16 + n, zone="trust"))
    out.append(Port("ethernet1/1.100", "subif", parent="ethernet1/1", share=0.25, ifid=256, tag=100, zone="guest"))
    out.append(Port("loopback", "loopback-base", ifid=3))
    out.append(Port("loopback.1", "loopback", parent="ethernet1/1", share=0.0002, ifid=257, zone="trust"))
    out.append(Port("tunnel", "tunnel-base", ifid=4))
    out.append(Port("tunnel.1", "tunnel", parent="ethernet1/1", share=0.1, ifid=258, zone="vpn"))
    return tuple(out)


PLATFORMS: dict[str, Platform] = {
    "PA-440": Platform("PA-440", "400", "10.2.10-h2", 1, 4, 64000, _ports([1000] * 8), 7800.0, 1500),
    "PA-3220": Platform(
        "PA-3220", "3200", "10.1.11-h4", 1, 12, 1000000, _ports([1000] * 12 + [10000] * 4), 15800.0, 3000
    ),
    "PA-5450": Platform(
        "PA-5450", "5400", "11.1.2-h3", 3, 16, 48000000, _ports([25000] * 8 + [100000] * 4), 63739.8, 128000, "s1"
    ),
    "PA-VM": Platform("PA-VM", "vm", "11.0.3-h10", 1, 4, 256000, _ports([10000] * 4), 15500.0, 2500),
}
