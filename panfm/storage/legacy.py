"""PANfm 1.x's `throughput_history.db`, read-only, for `import-panfm` (see ../docs/migration.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def legacy_history_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Yield 1.x's `throughput_samples` rows as dicts, by device then time.

    Raises `DatabaseError` (sqlite3's) when the file is not a 1.x history database.
    """
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        for row in conn.execute("SELECT * FROM throughput_samples ORDER BY device_id, timestamp"):
            yield dict(row)
    finally:
        conn.close()
