"""Configure logging for the web and the clock: level, text or JSON lines, optional rotating file.

Every handler installed here carries the secret-redaction filter of `logsafe`, and the
process-wide record factory redacts records before any handler sees them, so an API key,
a password or a Fernet token logged by accident never reaches the console or the file.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Literal, TextIO

import panfm.redact as logsafe
from config import Settings
from panfm.timefmt import iso_ms

Process = Literal["web", "clock"]

ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 5
TEXT_FORMAT = "%(asctime)s %(levelname)s {process} %(name)s: %(message)s"

# Marks the handlers this module installed, so configuring twice replaces instead of doubling.
_MARK = "_panfm_logsetup"

# Libraries that log whole URLs, headers or request lines (webhook tokens, `json://` header
# values) below WARNING. Kept at WARNING unless `log_libraries` asks for their detail.
LIBRARY_LOGGERS = ("apprise", "urllib3", "requests", "aiohttp", "werkzeug", "charset_normalizer", "markdown")


def iso_z(epoch: float) -> str:
    """Format epoch seconds as ISO-8601 UTC with milliseconds and a `Z`."""
    return iso_ms(epoch) or ""


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO Z), level, logger, process, message (+ exception)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, str] = {
            "ts": iso_z(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": self.process,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = logsafe.redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = logsafe.redact(record.stack_info)
        # ensure_ascii keeps each record on one line whatever a firewall put in a name.
        return json.dumps(doc, ensure_ascii=True)


class TextFormatter(logging.Formatter):
    """`2025-01-01T10:00:00.123Z INFO clock panfm.clock: [CLOCK JOB] ...` (the message untouched)."""

    def __init__(self, process: str) -> None:
        super().__init__(TEXT_FORMAT.format(process=process))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return iso_z(record.created)


def log_file_path(settings: Settings, process: str) -> Path | None:
    """The file this process logs to: `log_file` with `-web`/`-clock` before its suffix, or None.

    Each process gets its own file because two processes rotating one file lose lines. A
    relative path is taken inside the data folder.
    """
    if not settings.log_file:
        return None
    path = Path(settings.log_file)
    if not path.is_absolute():
        path = settings.data_path / path
    return path.with_name(f"{path.stem}-{process}{path.suffix or '.log'}")


def configure(settings: Settings, process: Process, stream: TextIO | None = None) -> list[logging.Handler]:
    """Install the console handler (and the rotating file one) on the root logger; return them."""
    formatter: logging.Formatter = (
        JsonLinesFormatter(process) if settings.log_format == "json" else TextFormatter(process)
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(stream if stream is not None else sys.stderr)]
    path = log_file_path(settings, process)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP, encoding="utf-8", delay=True
            )
        )
    unconfigure()
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    flt = logsafe.SecretRedactingFilter()
    for handler in handlers:
        setattr(handler, _MARK, True)
        handler.setFormatter(formatter)
        handler.addFilter(flt)
        root.addHandler(handler)
    logging.getLogger("panfm").setLevel(settings.log_level)
    quiet_libraries(settings)
    pg_log = logging.getLogger("psycopg")
    if not any(isinstance(f, IgnoredTerminationErrors) for f in pg_log.filters):
        pg_log.addFilter(IgnoredTerminationErrors())
    if process == "clock":
        # APScheduler logs every job run at INFO; the clock's own [CLOCK EVENT] lines say what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        sched_log = logging.getLogger("apscheduler.scheduler")
        if not any(isinstance(f, SpreadTickSkips) for f in sched_log.filters):
            sched_log.addFilter(SpreadTickSkips())
        exec_log = logging.getLogger("apscheduler.executors.default")
        if not any(isinstance(f, DatabaseAwayTracebacks) for f in exec_log.filters):
            exec_log.addFilter(DatabaseAwayTracebacks())
    logsafe.install_redaction()
    return handlers


class SpreadTickSkips(logging.Filter):
    """Demote APScheduler's "skipped: maximum number of running instances" of `collect_slow` to DEBUG.

    The spread inventory's ticks come every few seconds and a large fleet's gathering outlasts
    several of them; a skipped tick loses nothing (the next one's span covers it, docs/clock.md),
    so a WARNING every tick would only teach operators to ignore warnings. Any other job's skip
    (a fast cycle that overran) stays a WARNING.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.name == "apscheduler.scheduler":
            message = record.getMessage()
            if message.startswith('Execution of job "collect_slow ') and "maximum number of running" in message:
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return logging.getLogger("panfm").isEnabledFor(logging.DEBUG)
        return True


class IgnoredTerminationErrors(logging.Filter):
    """Demote psycopg's "error ignored terminating <Pipeline ...>" to DEBUG.

    psycopg logs it when a pipeline (or COPY) block is left by an exception and closing the
    block fails too: the database went away in the middle of it. The first exception goes on
    to PANfm's own handling, which says what failed in one line; this second line only repeats
    the cause once per failed write while the server is away.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith("error ignored terminating"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


class DatabaseAwayTracebacks(logging.Filter):
    """Drop APScheduler's traceback of a job that failed because the database is away or full.

    PostgreSQL restarting, a full disk on its server, an exhausted pool, or a SQLite file locked
    or on a full disk (`throughput_storage.database_away`): every job fails
    the same way each interval until it comes back, and the clock's own `[CLOCK EVENT] job ...
    failed: <the cause>` line says so in one line. Any other failure keeps its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        from throughput_storage import database_away  # here: the storage area only once a job failed

        return not database_away(exc)


def quiet_libraries(settings: Settings) -> None:
    """Hold third-party loggers at WARNING, or let them follow `log_level` when `log_libraries` is on."""
    level = logging.NOTSET if settings.log_libraries else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def unconfigure() -> None:
    """Remove and close the handlers `configure` installed (tests, reconfiguration)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
