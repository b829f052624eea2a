"""Operations: logging, the health check, key rotation, the 1.x import, the demo.

Redaction itself is `panfm.redact`, at the bottom with the models: every area uses it.

Other areas import from here, never from the modules inside. Entry points run as modules:
`python -m panfm.ops.healthcheck web|clock`, `python -m panfm.ops.demo`.
"""

from panfm.ops.clock_jobs import (
    SLOW_INTERVAL_S,
    SLOW_TICK_S,
    ClockContext,
    collect_inventory_once,
    collect_once,
    collect_slow_once,
    collect_slow_tick,
    due_batch,
    record_network,
    write_clock_stats,
)
from panfm.ops.clock_leader import (
    CLEANUP_CHECK_S,
    NOTIFY_INTERVAL_S,
    ROLLUP_CHECK_S,
    ROLLUP_PHASE,
    cleanup_if_due,
    cleanup_once,
    evaluate_on_leader,
    lease_once,
    notify_on_leader,
    rollup_schedule,
    rollups_on_leader,
)
from panfm.ops.clock_metrics import ClockMetrics, MetricsPortUnavailable
from panfm.ops.clock_stats import ClockStats
from panfm.ops.demo import register as register_demo_devices
from panfm.ops.demo_history import marker as demo_marker
from panfm.ops.import_1x import (
    ImportError_,
    ImportReport,
    import_samples,
    read_devices,
    read_samples,
    read_settings,
)
from panfm.ops.import_1x_metadata import read_metadata
from panfm.ops.keys import rotate as rotate_keys
from panfm.ops.keys import rotate_shared as rotate_shared_keys
from panfm.ops.lease_keeper import LeaseKeeper
from panfm.ops.logsetup import configure as configure_logging
from panfm.ops.logsetup import quiet_libraries
from panfm.ops.memory import configure_allocator, configure_gc
from panfm.redact import install_redaction, redact

__all__ = [
    "CLEANUP_CHECK_S",
    "NOTIFY_INTERVAL_S",
    "ROLLUP_CHECK_S",
    "ROLLUP_PHASE",
    "SLOW_INTERVAL_S",
    "SLOW_TICK_S",
    "ClockContext",
    "ClockMetrics",
    "ClockStats",
    "ImportError_",
    "ImportReport",
    "LeaseKeeper",
    "MetricsPortUnavailable",
    "cleanup_if_due",
    "cleanup_once",
    "collect_inventory_once",
    "collect_once",
    "collect_slow_once",
    "collect_slow_tick",
    "configure_allocator",
    "configure_gc",
    "configure_logging",
    "demo_marker",
    "due_batch",
    "evaluate_on_leader",
    "import_samples",
    "install_redaction",
    "lease_once",
    "notify_on_leader",
    "quiet_libraries",
    "read_devices",
    "read_metadata",
    "read_samples",
    "read_settings",
    "record_network",
    "redact",
    "register_demo_devices",
    "rollup_schedule",
    "rollups_on_leader",
    "rotate_keys",
    "rotate_shared_keys",
    "write_clock_stats",
]
