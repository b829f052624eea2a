"""The log redaction filter: secrets in any log form are masked before a handler writes them."""

import io
import logging

import pytest

import panfm.redact as logsafe

KEY = "LUFRPT14MW5xOEo1R09KVlBZNnpnemh0VHRBOWl6TGM9bXcwM3JHUGVhRlNiY0dCR0srNERUQT09"
PASSWORD = 'p&ss<w"rd!'


@pytest.mark.parametrize(
    "text",
    [
        f"GET https://fw/api/?type=op&key={KEY}&cmd=x",
        f"headers: {{'X-PAN-KEY': '{KEY}'}}",
        f"X-PAN-KEY: {KEY}",
        f"form type=keygen&user=admin&password={PASSWORD}",
        f"{{\"api_key\": \"{KEY}\"}}",
        f"<response status='success'><result><key>{KEY}</key></result></response>",
        f"Authorization: Basic {KEY}",
        "token gAAAAABlZ2V0X3NvbWVfc2VjcmV0X3Rva2VuX2hlcmVfYWJjZGVm stored",
    ],
)
def test_it_masks_every_secret_form(text):
    clean = logsafe.redact(text)
    assert KEY not in clean
    assert PASSWORD not in clean
    assert "gAAAAABlZ2V0" not in clean
    assert logsafe.MASK in clean


def test_it_leaves_ordinary_text_alone():
    text = "polled fw-1 (10.0.0.1:443): job-id=12 monkey=3 in 0.2 s"
    assert logsafe.redact(text) == text


@pytest.fixture
def root_stream():
    """A handler on the root logger capturing formatted output, removed afterwards."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    # An app built earlier in this worker (a module or session fixture) may hold urllib3 at
    # WARNING (logsetup.quiet_libraries): this test is about redaction, so let its records through.
    urllib3_log = logging.getLogger("urllib3")
    old_urllib3 = urllib3_log.level
    urllib3_log.setLevel(logging.NOTSET)
    # An app or clock built earlier in this worker installed the process-wide redaction (a record
    # factory): start without it, so "without the filter" means without it.
    logsafe.uninstall_redaction()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)
    urllib3_log.setLevel(old_urllib3)
    logsafe.uninstall_redaction()


def test_it_redacts_records_propagated_from_child_loggers_and_tracebacks(root_stream):
    logsafe.install_redaction()
    logsafe.install_redaction()  # idempotent
    child = logging.getLogger("urllib3.connectionpool.test")
    child.debug("https://fw:443 \"POST /api/?key=%s HTTP/1.1\" 200", KEY)
    try:
        raise RuntimeError(f"bad answer for password={PASSWORD}")
    except RuntimeError:
        logging.getLogger("panfm.test").exception("call failed")
    out = root_stream.getvalue()
    assert "POST /api/?key=***" in out
    assert "call failed" in out and "RuntimeError" in out
    assert KEY not in out and PASSWORD not in out


def test_it_shows_secrets_without_the_filter(root_stream):
    """Guard for the test above: the capture really does see what was logged."""
    logging.getLogger("panfm.test").warning("key=%s", KEY)
    assert KEY in root_stream.getvalue()


def test_it_filters_one_logger_and_its_handlers():
    stream = io.StringIO()
    logger = logging.getLogger("panfm.isolated")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        flt = logsafe.install_redaction(logger)
        assert flt in handler.filters
        logger.info("X-PAN-KEY: %s", KEY)
        assert KEY not in stream.getvalue()
        assert "X-PAN-KEY: ***" in stream.getvalue()
    finally:
        logsafe.uninstall_redaction(logger)
        logger.removeHandler(handler)
        logger.propagate = True
