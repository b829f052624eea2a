"""Encoding metric families for `/metrics`: prometheus_client's encoders, and a lean writer of the same bytes.

`encode` runs prometheus_client's encoder over some families alone; `lean_encode` writes
PANfm's own families' sample lines directly (byte for byte the same) where the format allows
(`leanable`); `fleet_bytes` picks one. Pure: families in, bytes out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.utils import floatToGoString


class _Families:
    """A collector yielding given families (to encode one part of the answer)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


_EOF = b"# EOF\n"


def encode(encoder: Callable[[CollectorRegistry], bytes], metrics: Iterable[Metric], openmetrics: bool) -> bytes:
    """Encode some families alone; OpenMetrics' `# EOF` is left off (only the whole answer ends with it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metrics))
    body = encoder(registry)
    return body[: -len(_EOF)] if openmetrics and body.endswith(_EOF) else body


_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# The formats whose lines the lean encoder writes: legacy-valid names are written as they are.
_LEAN_TYPES = (CONTENT_TYPE_PLAIN_0_0_4,)
_LEAN_ESCAPING = (f"escaping={om.UNDERSCORES}", f"escaping={om.ALLOWUTF8}")


def leanable(content_type: str) -> bool:
    return content_type in _LEAN_TYPES or content_type.endswith(_LEAN_ESCAPING)


def lean_encode(encoder: Callable[[CollectorRegistry], bytes], metrics: Iterable[Metric], openmetrics: bool) -> bytes:
    """The same bytes as `encode` for PANfm's own families, written directly (a 43k-series fleet in a fraction).

    Each family's `# HELP`/`# TYPE` lines come from prometheus_client itself; its sample lines
    are written here when every name is a legacy-valid one and no sample carries an exemplar or
    a native histogram (else the whole family goes through prometheus_client). Label values are
    escaped as prometheus_client does (backslash, newline, double quote), labels sorted by name,
    values by its `floatToGoString`, timestamps in ms (text) or as the float's str (OpenMetrics).
    """
    out: list[str] = []
    escaped: dict[str, str] = {}
    for metric in metrics:
        samples = metric.samples
        names = {k for keys in {tuple(s.labels) for s in samples} for k in keys}
        if not _LEGACY_NAME.fullmatch(metric.name + "_total") or not all(_LEGACY_LABEL.fullmatch(k) for k in names) \
                or any(s.exemplar is not None or s.native_histogram is not None
                       or s.name not in (metric.name, metric.name + "_total") for s in samples):
            out.append(encode(encoder, [metric], openmetrics).decode("utf-8"))
            continue
        header = copy.copy(metric)
        header.samples = []
        out.append(encode(encoder, [header], openmetrics).decode("utf-8"))
        keys: tuple[str, ...] | None = None
        order: tuple[str, ...] = ()
        for s in samples:
            labels = s.labels
            if labels:
                given = tuple(labels)  # add_metric builds every label dict of a family in one key order
                if given != keys:
                    keys, order = given, tuple(sorted(given))
                parts = []
                for k in order:
                    v = labels[k]
                    e = escaped.get(v)
                    if e is None:
                        e = escaped[v] = v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
                    parts.append(f'{k}="{e}"')
                labelstr = "{" + ",".join(parts) + "}"
            else:
                labelstr = ""
            if s.timestamp is None:
                stamp = ""
            elif openmetrics:
                stamp = f" {s.timestamp}"
            else:
                stamp = f" {int(float(s.timestamp) * 1000):d}"
            out.append(f"{s.name}{labelstr} {_go_float(s.value)}{stamp}\n")
    return "".join(out).encode("utf-8")


def _go_float(value: float) -> str:
    """prometheus_client's `floatToGoString`, its common case inline (a finite value below 1e6 is its repr)."""
    d = float(value)
    text = repr(d)
    dot = text.find(".")
    if 0 < dot <= 6 and "e" not in text and "n" not in text:  # no exponent, inf or nan: floatToGoString's repr
        return text
    return str(floatToGoString(d))  # type: ignore[no-untyped-call]


def fleet_bytes(encoder: Callable[[CollectorRegistry], bytes], content_type: str, metrics: Iterable[Metric]) -> bytes:
    """Encode the fleet families for `content_type`: lean where it writes the same bytes, else prometheus_client."""
    openmetrics = content_type.startswith("application/openmetrics-text")
    if leanable(content_type):
        return lean_encode(encoder, metrics, openmetrics)
    return encode(encoder, metrics, openmetrics)
