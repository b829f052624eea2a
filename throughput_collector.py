"""One collection cycle: poll every firewall concurrently, turn counters into rates, hand samples over.

The front door of the collector area (the work lives in `panfm/collector/`). The clock builds
one `Collector` and calls `collect()` every `refresh_interval` seconds and `collect_slow()` for
the devices whose inventory phase (`inventory_phase`, `phase_due`: each device at its own
point of the 5-minute window) has come up; a dead, slow or misbehaving firewall costs only its own slot (circuit
breaker, deadline). Nothing here writes to a database: the clock hands the `CycleResult` to
the storage area. `counted_names` says which interfaces a device's totals count (the web's
`/metrics` selects the same ones); `cert_change_of` reads a stored status that says a device was
refused for its certificate (the leader of several clocks evaluates the others' devices).
"""

from panfm.collector.breaker import cert_change_of
from panfm.collector.cycle import Collector, PollObserver, deadline_for, panos_client_factory
from panfm.collector.metrics import counted_names
from panfm.collector.network import ReverseDns
from panfm.collector.slow import inventory_phase, phase_due

__all__ = [
    "Collector",
    "PollObserver",
    "ReverseDns",
    "cert_change_of",
    "counted_names",
    "deadline_for",
    "inventory_phase",
    "panos_client_factory",
    "phase_due",
]
