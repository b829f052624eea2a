"""Operations: logging and redaction, the health check, key rotation, the 1.x import, the demo.

Other areas import from here, never from the modules inside. Entry points run as modules:
`python -m panfm.ops.healthcheck web|clock`, `python -m panfm.ops.demo`.
"""

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
from panfm.ops.logsafe import install_redaction, redact
from panfm.ops.logsetup import configure as configure_logging

__all__ = [
    "ClockStats",
    "ImportError_",
    "ImportReport",
    "configure_logging",
    "import_samples",
    "install_redaction",
    "read_devices",
    "read_samples",
    "read_settings",
    "redact",
    "register_demo_devices",
    "rotate_keys",
]
