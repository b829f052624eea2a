"""Redact secrets (API keys, passwords, tokens) from log records before any handler sees them.

Both processes call `install_redaction()` once after configuring logging. The client never
puts a secret in a message in the first place; this is the second line of defence against
a library (urllib3, requests, gunicorn) or a careless log call echoing one.

Secrets without a recognisable shape (a Slack token in a URL path, a `json://` header value)
are masked while they are in use: `with hiding(pieces):` around one channel's delivery.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

# Each pattern keeps its first group (the name) and masks what follows.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header forms: "X-PAN-KEY: abc", "'X-PAN-KEY': 'abc'", "Authorization: Basic abc"
    (re.compile(r"(?i)(x-pan-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1" + MASK),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer|token)\s+)[^\s'\",}]+"), r"\1" + MASK),
    # Query/form forms: "key=abc&", "password=p%40ss", "api_key=..."
    (
        re.compile(r"(?i)\b((?:api[_-]?)?key|password|passwd|pass|pwd|token|secret)=([^&\s'\",;)]*)"),
        r"\1=" + MASK,
    ),
    # Dict/JSON forms: "'password': 'x'", "\"api_key\": \"x\""
    (
        re.compile(r"(?i)(['\"](?:(?:api[_-]?)?key|password|passwd|token|secret)['\"]\s*:\s*['\"])[^'\"]*"),
        r"\1" + MASK,
    ),
    # XML forms: a keygen answer or an echoed credential element.
    (re.compile(r"(?i)(<(key|password)>)[^<]*(</\2>)"), r"\1" + MASK + r"\3"),
    # Fernet tokens (secrets at rest) wherever they appear.
    (re.compile(r"\bgAAAAA[A-Za-z0-9_=-]{20,}"), MASK),
    # PANfm's own API tokens (`pfm_` + 43 URL-safe characters) wherever they appear.
    (re.compile(r"\bpfm_[A-Za-z0-9_-]{20,}"), MASK),
)


class _InUse:
    """The exact secrets being used right now (refcounted: two deliveries may share a token)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self.longest_first: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for s in secrets:
                self._counts[s] = self._counts.get(s, 0) + 1
            self._sort()

    def remove(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for s in secrets:
                left = self._counts.get(s, 0) - 1
                if left > 0:
                    self._counts[s] = left
                else:
                    self._counts.pop(s, None)
            self._sort()

    def _sort(self) -> None:
        # Longest first: a token that contains a shorter secret is masked whole.
        self.longest_first = tuple(sorted(self._counts, key=len, reverse=True))


# Process-wide like the logging module itself: a record from any thread (urllib3's pool, a
# library's worker) during a delivery is masked, not only the delivering thread's.
_IN_USE = _InUse()
MIN_HIDDEN_LEN = 4  # shorter pieces ("ops", "443") would mask ordinary words


@contextmanager
def hiding(secrets: Iterable[str]) -> Iterator[None]:
    """Mask these exact strings (and their URL-encoded forms) in every record logged during the block."""
    forms = set()
    for s in secrets:
        if len(s) >= MIN_HIDDEN_LEN:
            forms |= {s, quote(s, safe=""), quote_plus(s), quote(s)}
    _IN_USE.add(forms)
    try:
        yield
    finally:
        _IN_USE.remove(forms)


def redact(text: str) -> str:
    """Return text with every recognised secret, and every secret in use, replaced by `***`."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    for secret in _IN_USE.longest_first:
        text = text.replace(secret, MASK)
    return text


def without(text: str, secrets: Iterable[str | None], mask: str = MASK) -> str:
    """Return text without these exact secrets (longest first, replaced by `mask`) nor any recognised one.

    For texts that leave the process other than as log records: a device's error on the
    dashboard, a channel's error in the API.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mask)
    return redact(text)


def _scrub(record: logging.LogRecord) -> None:
    """Rewrite one record's message, exception and stack text in place, redacted."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not kill logging
        message = str(record.msg)
    clean = redact(message)
    if clean != message or record.args:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when set, so the traceback text is redacted once, here.
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class SecretRedactingFilter(logging.Filter):
    """Mask `key=`, passwords, tokens and X-PAN-KEY values in every record that passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


def _has_filter(filterer: logging.Filterer) -> bool:
    return any(isinstance(f, SecretRedactingFilter) for f in filterer.filters)


def install_redaction(logger: logging.Logger | None = None) -> SecretRedactingFilter:
    """Redact secrets from a logger's records and handlers (None: the whole process).

    With no logger, every record created anywhere in the process is redacted at creation
    (a LogRecord factory: logger filters do not see records propagated from child loggers,
    and handlers added later would miss a filter), and the root's handlers get the filter.
    Idempotent.
    """
    flt = SecretRedactingFilter()
    target = logger if logger is not None else logging.getLogger()
    if not _has_filter(target):
        target.addFilter(flt)
    for handler in target.handlers:
        if not _has_filter(handler):
            handler.addFilter(flt)
    if logger is None:
        current = logging.getLogRecordFactory()
        if not getattr(current, "_panfm_redacting", False):
            logging.setLogRecordFactory(_redacting_factory(current))
    return flt


def _redacting_factory(inner: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = inner(*args, **kwargs)
        _scrub(record)
        return record

    factory._panfm_redacting = True  # type: ignore[attr-defined]
    factory._panfm_inner = inner  # type: ignore[attr-defined]
    return factory


def uninstall_redaction(logger: logging.Logger | None = None) -> None:
    """Undo `install_redaction(logger)`: remove the filters and restore the record factory (tests)."""
    target = logger if logger is not None else logging.getLogger()
    for filterer in (target, *target.handlers):
        for flt in [f for f in filterer.filters if isinstance(f, SecretRedactingFilter)]:
            filterer.removeFilter(flt)
    if logger is None:
        current = logging.getLogRecordFactory()
        while getattr(current, "_panfm_redacting", False):
            current = current._panfm_inner  # type: ignore[attr-defined]
        logging.setLogRecordFactory(current)
