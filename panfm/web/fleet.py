"""Fleet totals over a range: `GET /api/overview/history?range=1h|24h|7d|30d`.

Every enabled firewall's through-the-box throughput and active sessions on one shared time grid
(`fleet_status.grid`), so the overview can stack them by firewall.
"""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, jsonify, request

from panfm.timefmt import iso_ms as iso
from panfm.web.api import RANGES, BadRequest
from panfm.web.context import ctx
from panfm.web.fleet_status import OVERVIEW_RANGES, grid

bp = Blueprint("fleet", __name__)


@bp.get("/api/overview/history")
def overview_history() -> Any:
    rng = request.args.get("range", "1h")
    if rng not in OVERVIEW_RANGES:
        raise BadRequest({"range": "one of " + ", ".join(OVERVIEW_RANGES)})
    c = ctx()
    now = c.clock()
    width = grid(RANGES[rng], c.current_settings().refresh_interval)
    end = math.floor(now / width) * width + width
    start = end - math.ceil(RANGES[rng] / width) * width
    n = int((end - start) // width)
    devices = [d for d in c.devices.list() if d.enabled]
    out = []
    with c.reader() as reader:
        for d in devices:
            sums = {"through_mbps": [0.0] * n, "sessions_active": [0.0] * n}
            seen = {"through_mbps": [0] * n, "sessions_active": [0] * n}
            if reader is not None:
                hist = reader.history(d.id, start, end, max_points=2 * n, metrics=("inbound_mbps", "sessions_active"))
                for p in hist.points:
                    slot = int((float(p["t"] or 0.0) - start) // width)
                    if not 0 <= slot < n:
                        continue
                    for key, src in (("through_mbps", "inbound_mbps"), ("sessions_active", "sessions_active")):
                        v = p.get(src)
                        if v is not None:
                            sums[key][slot] += float(v)
                            seen[key][slot] += 1
            out.append({
                "id": d.id,
                "name": d.name,
                # A slot without a sample stays null: a gap is not a zero.
                **{k: [s / c_ if c_ else None for s, c_ in zip(sums[k], seen[k], strict=True)] for k in sums},
            })
    return jsonify({
        "range": rng,
        "step_s": width,
        "t": [iso(start + i * width) for i in range(n)],
        "devices": out,
    })
