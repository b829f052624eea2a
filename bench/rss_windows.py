"""RSS growth of a `bench/clock_scale.py` run over chosen windows, from its printed JSON (per-minute RSS).

    .venv/bin/python bench/rss_windows.py RUN.log --windows 10-120,20-119,60-119,80-119

Reads the run's JSON summary (the last `{ ... }` block of its output, as `make soak` prints it)
and fits a least-squares slope, MB per hour, to `clock_rss_mb_by_minute` within each window
(minutes, inclusive). The script's own figure (`clock_rss_growth_mb_per_hour_after_warmup`) fits
its 5-second samples after the warm-up; over the same window this one, on whole minutes, is
within a few tenths of it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def slope_per_hour(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (minute, MB) points, in MB per hour."""
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path, help="the run's output (its JSON summary is read)")
    ap.add_argument("--windows", default="10-120,20-119,30-119,60-119,80-119",
                    help="first-last minutes, comma-separated")
    a = ap.parse_args()
    text = a.log.read_text()
    summary = json.loads(text[text.index("{"):text.rindex("}") + 1])
    rss = {int(m): v for m, v in summary["clock_rss_mb_by_minute"].items()}
    for window in a.windows.split(","):
        lo, hi = (int(x) for x in window.split("-"))
        points = [(m, v) for m, v in sorted(rss.items()) if lo <= m <= hi]
        shown = f"{slope_per_hour(points):.2f} MB per hour" if len(points) >= 3 else "too few minutes"
        print(f"minutes {lo}-{hi}: {shown} ({len(points)} minutes)")


if __name__ == "__main__":
    main()
