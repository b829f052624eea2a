"""Operations: logging, the health check, key rotation, the 1.x import, the demo.

Redaction itself is `panfm.redact`, at the bottom with the models: every area uses it.

Other areas import from here, never from the modules inside. Entry points run as modules:
`python -m panfm.ops.healthcheck web|clock`, `python -m panfm.ops.demo`.
"""

from panfm.ops.clock_metrics import ClockMetrics, MetricsPortUnavailable
from panfm.ops.clock_stats import ClockStats
from panfm.ops.demo import register as register_demo_devices
from panfm.ops.import_1x import (
    ImportError_,
    ImportReport,
    import_samples,
    read_devices,
    read_samples,
    read_settings,
)
from panfm.ops.keys import rotate as rotate_keys
from panfm.ops.keys import rotate_shared as rotate_shared_keys
from panfm.ops.lease_keeper import LeaseKeeper
from panfm.ops.logsetup import configure as configure_logging
from panfm.ops.logsetup import quiet_libraries
from panfm.redact import install_redaction, redact

__all__ = [
    "ClockMetrics",
    "ClockStats",
    "ImportError_",
    "ImportReport",
    "LeaseKeeper",
    "MetricsPortUnavailable",
    "configure_logging",
    "import_samples",
    "install_redaction",
    "quiet_libraries",
    "read_devices",
    "read_samples",
    "read_settings",
    "redact",
    "register_demo_devices",
    "rotate_keys",
    "rotate_shared_keys",
]
