"""Logging setup: text keeps the [CLOCK ...] prefixes, JSON lines parse, files rotate, secrets never show."""

import io
import json
import logging
import logging.handlers
import re
import threading

import pytest
from cryptography.fernet import Fernet

import panfm.ops.logsetup as logsetup
import panfm.redact as logsafe
from config import load_settings

KEY = "LUFRPT14MW5xOEo1R09KVlBZNnpnemh0VHRBOWl6TGM9bXcwM3JHUGVhRlNiY0dCR0srNERUQT09"
PASSWORD = "hunter2-correct-horse"
TOKEN = Fernet(Fernet.generate_key()).encrypt(b"api key at rest").decode()


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level = root.level
    panfm_level = logging.getLogger("panfm").level
    yield
    logsetup.unconfigure()
    logsafe.uninstall_redaction()
    root.setLevel(level)
    logging.getLogger("panfm").setLevel(panfm_level)


def _settings(tmp_path, **overrides):
    return load_settings(env={}, overrides={"data_dir": str(tmp_path), **overrides})


def _log_accidents(logger):
    logger.info("GET /api/?type=op&key=%s&cmd=<show/>", KEY)
    logger.warning("keygen form user=admin&password=%s", PASSWORD)
    logger.error("stored secret %s did not decrypt", TOKEN)
    try:
        raise RuntimeError(f"boom with X-PAN-KEY: {KEY}")
    except RuntimeError:
        logger.exception("[CLOCK JOB] collect failed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_it_redacts_a_key_password_and_fernet_token_in_both_formats(tmp_path, restore_logging, fmt):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path, log_format=fmt, log_file="panfm.log"), "clock", stream=stream)
    _log_accidents(logging.getLogger("panfm.clock"))
    written = stream.getvalue() + (tmp_path / "panfm-clock.log").read_text()
    assert written.count("collect failed") == 2  # console and file both got the records
    for secret in (KEY, PASSWORD, TOKEN, TOKEN[:30]):
        assert secret not in written
    assert logsafe.MASK in written


def test_it_keeps_clock_prefixes_in_text_lines(tmp_path, restore_logging):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path), "clock", stream=stream)
    logging.getLogger("panfm.clock").info("[CLOCK JOB] collect: %d/%d devices up", 2, 3)
    line = stream.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO clock panfm\.clock: \[CLOCK JOB\] collect: 2/3 devices up", line
    )


def test_it_writes_one_json_object_per_line_with_the_contract_fields(tmp_path, restore_logging):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path, log_format="json"), "web", stream=stream)
    logging.getLogger("panfm.web").warning("line one\nline two: %s", "x")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("panfm.web").exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"ts", "level", "logger", "process", "message"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert (first["level"], first["logger"], first["process"]) == ("WARNING", "panfm.web", "web")
    assert first["message"] == "line one\nline two: x"
    assert "ValueError: bad" in second["exception"]


def test_it_honours_the_level_setting(tmp_path, restore_logging):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path, log_level="WARNING"), "web", stream=stream)
    logging.getLogger("panfm.web").info("not shown")
    logging.getLogger("panfm.web").warning("shown")
    assert stream.getvalue().count("shown") == 1 and "not shown" not in stream.getvalue()


def test_it_replaces_its_handlers_when_configured_again(tmp_path, restore_logging):
    first, second = io.StringIO(), io.StringIO()
    logsetup.configure(_settings(tmp_path), "web", stream=first)
    logsetup.configure(_settings(tmp_path), "web", stream=second)
    logging.getLogger("panfm.web").warning("once")
    assert first.getvalue() == "" and second.getvalue().count("once") == 1


def test_it_rotates_the_file_at_ten_megabytes_keeping_five(tmp_path, restore_logging):
    handlers = logsetup.configure(_settings(tmp_path, log_file=str(tmp_path / "logs" / "panfm.log")), "web",
                                  stream=io.StringIO())
    rotating = [h for h in handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert len(rotating) == 1
    assert (rotating[0].maxBytes, rotating[0].backupCount) == (10 * 1024 * 1024, 5)
    assert rotating[0].baseFilename == str(tmp_path / "logs" / "panfm-web.log")
    rotating[0].maxBytes = 200  # rotate for real, without writing 10 MB
    for i in range(40):
        logging.getLogger("panfm.web").warning("line %d", i)
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["panfm-web.log"] + [f"panfm-web.log.{i}" for i in range(1, 6)]


def test_it_masks_a_secret_in_use_in_every_thread_and_url_encoded_until_the_block_ends(tmp_path, restore_logging):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path), "clock", stream=stream)
    token = "T0ken/with+odd chars"
    logger = logging.getLogger("panfm.test")
    with logsafe.hiding([token, "ab"]):
        logger.info("POST /services/%s", token)
        logger.info("GET /x?t=%s", "T0ken%2Fwith%2Bodd%20chars")
        worker = threading.Thread(target=logger.info, args=("pool thread: %s", token))
        worker.start()
        worker.join()
        logger.info("short pieces stay: ab")  # a 2-letter piece would mask ordinary words
    logger.info("after: %s", token)
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "POST /services/***", "GET /x?t=***", "pool thread: ***", "short pieces stay: ab", f"after: {token}"]


def test_it_holds_library_loggers_at_warning_unless_log_libraries(tmp_path, restore_logging):
    logsetup.configure(_settings(tmp_path, log_level="DEBUG"), "web", stream=io.StringIO())
    assert not logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.INFO)
    assert not logging.getLogger("apprise").isEnabledFor(logging.INFO)
    assert logging.getLogger("panfm.web").isEnabledFor(logging.DEBUG)
    logsetup.configure(_settings(tmp_path, log_level="DEBUG", log_libraries=True), "web", stream=io.StringIO())
    assert logging.getLogger("urllib3.connectionpool").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("werkzeug").isEnabledFor(logging.DEBUG)


def test_the_clock_demotes_skipped_spread_inventory_ticks_but_not_other_skips(tmp_path, restore_logging):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path), "clock", stream=stream)
    sched = logging.getLogger("apscheduler.scheduler")
    skip = 'Execution of job "%s (trigger: interval[0:00:05], next run at: 2026-12-05 00:00:05 UTC)" skipped: ' \
           "maximum number of running instances reached (3)"
    sched.warning(skip, "collect_slow")  # harmless: the next tick's span covers it
    sched.warning(skip, "collect")  # a fast cycle that overran: still worth a warning
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and " WARNING " in lines[0] and '"collect (trigger' in lines[0]
    # At DEBUG the demoted line is still there, as DEBUG.
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path, log_level="DEBUG"), "clock", stream=stream)
    sched.warning(skip, "collect_slow")
    assert [" DEBUG " in line for line in stream.getvalue().splitlines()] == [True]


def test_the_clock_logs_a_job_failed_on_a_database_away_in_one_line_and_any_other_failure_whole(
        tmp_path, restore_logging):
    import sqlite3

    from panfm.storage.postgres import PgUnavailable

    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path), "clock", stream=stream)
    executor = logging.getLogger("apscheduler.executors.default")
    for exc in (PgUnavailable("DiskFull: could not extend file: No space left on device"),
                sqlite3.OperationalError("database or disk is full"), KeyError("a bug"),
                sqlite3.OperationalError("no such column: nope")):  # an error in the SQL is a bug too
        try:
            raise exc
        except Exception:
            executor.exception('Job "collect (trigger: date[...])" raised an exception')
    out = stream.getvalue()
    # The two the clock's own "[CLOCK EVENT] job collect failed: <cause>" line says: no traceback each interval.
    assert out.count("raised an exception") == 2 and out.count("Traceback") == 2
    assert "KeyError: 'a bug'" in out and "no such column: nope" in out


@pytest.mark.parametrize("process", ["clock", "web"])
def test_psycopgs_second_error_of_a_failed_pipeline_is_demoted_and_other_warnings_kept(tmp_path, restore_logging,
                                                                                       process):
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path), process, stream=stream)
    pg = logging.getLogger("psycopg")
    pg.warning("error ignored terminating %r: %s", "<psycopg.Pipeline [BAD] at 0x7f>", "server closed the connection")
    pg.warning("connection pool is exhausted")  # any other library warning stays
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "pool is exhausted" in lines[0]
    # With psycopg's logger at DEBUG (psycopg holds its own at WARNING) it is still there, as DEBUG.
    stream = io.StringIO()
    logsetup.configure(_settings(tmp_path, log_level="DEBUG"), process, stream=stream)
    saved = pg.level
    pg.setLevel(logging.DEBUG)
    try:
        pg.warning("error ignored terminating %r: %s", "<psycopg.Pipeline>", "gone")
    finally:
        pg.setLevel(saved)
    assert [" DEBUG " in line for line in stream.getvalue().splitlines()] == [True]
