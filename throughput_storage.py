"""Every table of every database: the stores the rest of PANfm uses, and nothing else.

The front door of the storage area (the work lives in `panfm/storage/`):

- `SampleStore` / `SampleReader`: `throughput_history.db` (samples, rollups, device states,
  inventory, clock stats and heartbeat); the clock is its only writer, one transaction per cycle.
- `DeviceStore`, `DocTable`: `config.db` (devices with encrypted secrets, alert rules,
  channels, maintenance windows).
- `alerts_store`: `alerts.db` (alert states, incidents, acknowledgements, notification
  outbox); `alerts_store.evaluation()` is the one transaction of an alert evaluation.
- `check_usable`, `online_backup`: the SQLite plumbing other areas need at start and for backups.
"""

import panfm.storage.alerts_store as alerts_store
import panfm.storage.config_store as config_store
import panfm.storage.sqlite as sqlite_db
from panfm.storage.alerts_store import ALERTS_DB
from panfm.storage.config_store import CONFIG_DB, DOC_TABLES, DeviceStore, DocTable
from panfm.storage.samples import HISTORY_DB, SampleReader, SampleStore, StorageUnavailable
from panfm.storage.sqlite import check_usable, online_backup

__all__ = [
    "ALERTS_DB",
    "CONFIG_DB",
    "DOC_TABLES",
    "HISTORY_DB",
    "DeviceStore",
    "DocTable",
    "SampleReader",
    "SampleStore",
    "StorageUnavailable",
    "alerts_store",
    "check_usable",
    "config_store",
    "online_backup",
    "sqlite_db",
]
