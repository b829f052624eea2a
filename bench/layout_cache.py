"""How many packed-row layouts a sample database holds, and what `packed._layout`'s cache costs for them.

    .venv/bin/python bench/layout_cache.py --db <data>/throughput_history.db

Reads every packed and head row's column codes and bucket count (the cache's key), prints the
distinct layouts per table, then builds each once under tracemalloc: bytes per cache entry, and
the time of a miss (built again without tracemalloc). The figures behind the cache's size
(docs/benchmarks.md, "What is left of the clock's growth").
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import panfm.storage.packed as packed  # noqa: E402
import panfm.storage.tiers as tiers  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    args = ap.parse_args()
    conn = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    at = 2 + (tiers.SLOTS + 7) // 8
    keys: set[tuple[bytes, int]] = set()
    for table, (kind, _) in tiers.PACKED.items():
        ncols = len(tiers.value_cols(kind))
        for name in (table, tiers.head(table)):
            mine = {(bytes(b[at:at + ncols]), packed.mask_of(b, tiers.SLOTS).bit_count())
                    for (b,) in conn.execute(f"SELECT b FROM {name}")}  # nosec B608
            print(f"{name:22s} distinct layouts {len(mine):6d}")
            keys |= mine
    conn.close()
    packed._layout.cache_clear()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [packed._layout.__wrapped__(*key) for key in keys]  # each built once, kept to weigh them all
    size = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    t0 = time.perf_counter()
    for key in keys:
        packed._layout.__wrapped__(*key)
    miss_us = (time.perf_counter() - t0) / max(1, len(keys)) * 1e6
    print(f"{len(keys)} distinct layouts; {size / max(1, len(kept)):.0f} B per cache entry (tracemalloc); "
          f"a miss {miss_us:.1f} us; cache of {packed._layout.cache_info().maxsize}: "
          f"{packed._layout.cache_info().maxsize * size / max(1, len(kept)) / 1e6:.1f} MB full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
