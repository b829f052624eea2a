#!/usr/bin/env python3
"""Copy the npm front-end packages PANfm serves into static/vendor/ (never a CDN).

Run after `npm ci` (`make node` does both): `python3 scripts/build_static.py`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (source under node_modules, target under static/vendor)
FILES = (
    ("uplot/dist/uPlot.esm.js", "uPlot.esm.js"),
    ("uplot/dist/uPlot.min.css", "uPlot.min.css"),
    ("uplot/LICENSE", "uPlot.LICENSE"),
)


def build(root: Path = ROOT) -> list[Path]:
    """Copy every vendored file; fail naming the missing one (run `npm ci` first)."""
    vendor = root / "static" / "vendor"
    vendor.mkdir(parents=True, exist_ok=True)
    written = []
    for src, dst in FILES:
        source = root / "node_modules" / src
        if not source.is_file():
            raise SystemExit(f"build_static: {source} is missing; run `npm ci` first")
        target = vendor / dst
        # A name of this process's own: two builds at once (two test workers' browser fixtures)
        # shared one temporary file, and the second's rename found it gone.
        tmp = target.with_name(f".{dst}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)  # a page load mid-build sees the old or the new file, never half
        written.append(target)
    return written


def main() -> int:
    for path in build():
        print(f"build_static: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
