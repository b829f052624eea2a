"""Hostile and broken bodies end in a documented PanosError, each within one second."""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from helpers.parsers import PARSERS, SAMPLES, WEIRD_TEXT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import panfm.xmlapi.parsers as panos_xml
from panfm.xmlapi.parsers import MAX_BODY_BYTES, BadResponse, PanosError

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE response [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<response status="success"><result><key>&lol9;</key></result></response>"""

QUADRATIC = (
    f'<!DOCTYPE response [<!ENTITY a "{"x" * 100_000}">]>'
    f'<response status="success"><result><key>{"&a;" * 100_000}</key></result></response>'
)
EXTERNAL_ENTITY = (
    '<!DOCTYPE response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    '<response status="success"><result><key>&xxe;</key></result></response>'
)
EXTERNAL_DTD = '<!DOCTYPE response SYSTEM "http://127.0.0.1:9/evil.dtd"><response status="success"><result/></response>'
PARAMETER_ENTITY = (
    '<!DOCTYPE response [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>'
    '<response status="success"><result/></response>'
)


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """Run call; return the exception it raised (None if none) and the CPU seconds this thread spent.

    CPU time, not wall time: the bound is on the work a hostile body makes the parser do (an
    expansion or a quadratic walk takes many seconds of CPU), which a loaded machine does not change.
    """
    started = time.thread_time()
    try:
        call()
    except BaseException as exc:  # the test inspects the type
        return exc, time.thread_time() - started
    return None, time.thread_time() - started


def assert_bad_response_fast(parser: Callable[[Any], object], body: str | bytes) -> BadResponse:
    exc, seconds = timed(lambda: parser(body))
    assert isinstance(exc, BadResponse), f"expected BadResponse, got {exc!r}"
    assert seconds < 1.0, f"took {seconds:.3f} s"
    return exc


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, QUADRATIC, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "quadratic-blowup", "external-entity", "external-dtd", "parameter-entity"],
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_it_refuses_dtds_and_entities_quickly(body: str, as_bytes: bool) -> None:
    exc = assert_bad_response_fast(panos_xml.parse_keygen, body.encode() if as_bytes else body)
    assert "DTD" in str(exc) or "Forbidden" in str(exc)


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_it_refuses_a_50_mb_body_before_parsing(as_bytes: bool) -> None:
    filler = " " * (50 * 1024 * 1024)
    body = f'<response status="success"><result>{filler}<key>k</key></result></response>'
    exc = assert_bad_response_fast(panos_xml.parse_keygen, body.encode() if as_bytes else body)
    assert "limit" in str(exc)


def test_it_refuses_one_byte_over_the_limit_and_reads_a_body_just_under_it() -> None:
    head, tail = b'<response status="success"><result><key>k</key>', b"</result></response>"
    under = head + b" " * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(under) == MAX_BODY_BYTES
    exc, seconds = timed(lambda: panos_xml.parse_keygen(under))
    assert exc is None and seconds < 1.0
    assert_bad_response_fast(panos_xml.parse_keygen, under + b" ")


def test_it_counts_the_limit_in_utf8_bytes_for_str_input() -> None:
    # 4 million 3-byte characters: under the limit in characters, over it in bytes.
    body = '<response status="success"><result><key>' + "€" * 4_000_000 + "</key></result></response>"
    assert len(body) < MAX_BODY_BYTES < len(body.encode())
    assert_bad_response_fast(panos_xml.parse_keygen, body)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_it_refuses_every_sample_truncated(name: str) -> None:
    body = SAMPLES[name].rstrip()
    for cut in (1, len(body) // 3, len(body) // 2, len(body) - 1):
        assert_bad_response_fast(panos_xml.parse_envelope, body[:cut])


@pytest.mark.parametrize(
    "body",
    [
        b'<response status="success"><result><key>\xff\xfe</key></result></response>',
        b'<response status="success"><result><![CDATA[\xc3\x28]]></result></response>',
        b'<response status="success"><result><key>\xc0\xaf</key></result></response>',  # overlong "/"
        b'<response status="success"><result><key>\xed\xa0\x80</key></result></response>',  # encoded surrogate
    ],
    ids=["ff-fe", "bad-continuation", "overlong", "surrogate"],
)
def test_it_refuses_invalid_utf8(body: bytes) -> None:
    exc = assert_bad_response_fast(panos_xml.parse_keygen, body)
    assert "UTF-8" in str(exc)


def test_it_refuses_a_str_with_a_lone_surrogate() -> None:
    assert_bad_response_fast(
        panos_xml.parse_keygen, '<response status="success"><result><key>\ud800</key></result></response>'
    )


@pytest.mark.parametrize("body", [b"", b"   \n", "", "not xml at all", b"\x00\x01\x02", "<response"])
def test_it_refuses_empty_and_non_xml_bodies(body: str | bytes) -> None:
    assert_bad_response_fast(panos_xml.parse_envelope, body)


def test_it_refuses_a_deeply_nested_body_in_bounded_time() -> None:
    depth = 200_000
    body = '<response status="success"><result>' + "<a>" * depth + "</a>" * depth + "</result></response>"
    exc = assert_bad_response_fast(panos_xml.parse_session_info, body)
    assert "num-active" in str(exc)


EMPTY_SUCCESS = '<response status="success"><result/></response>'


def success(inner: str) -> str:
    return f'<response status="success"><result>{inner}</result></response>'


@pytest.mark.parametrize(
    ("parser", "body", "names"),
    [
        ("parse_keygen", EMPTY_SUCCESS, "key"),
        ("parse_version", EMPTY_SUCCESS, "sw-version"),
        ("parse_system_info", EMPTY_SUCCESS, "system"),
        ("parse_system_info", success("<system><hostname>h</hostname></system>"), "model"),
        ("parse_system_resources", EMPTY_SUCCESS, "Cpu"),
        ("parse_mp_cpu", success("<![CDATA[ x: { } ]]>"), "1minavg"),
        ("parse_session_info", EMPTY_SUCCESS, "num-active"),
        ("parse_resource_monitor", EMPTY_SUCCESS, "data-processors"),
        ("parse_resource_monitor", success("<resource-monitor><data-processors/></resource-monitor>"), "no dataplane"),
        ("parse_counter_interface", EMPTY_SUCCESS, "neither"),
        ("parse_interfaces", EMPTY_SUCCESS, "neither"),
        ("parse_interface_detail", EMPTY_SUCCESS, "name"),
        ("parse_log_job", EMPTY_SUCCESS, "job/id"),
        ("parse_job_enqueued", EMPTY_SUCCESS, "job id"),
        ("parse_session_info", '<response status="success"/>', "result"),
    ],
)  # fmt: skip
def test_it_names_the_missing_element(parser: str, body: str, names: str) -> None:
    exc = assert_bad_response_fast(PARSERS[parser], body)
    assert names in str(exc)


def test_it_treats_no_value_markers_as_missing_where_a_number_is_required() -> None:
    body = SAMPLES["show-session-info__irom77-go-public-pa5000.xml"].replace(b"<kbps>1519</kbps>", b"<kbps>N/A</kbps>")
    exc = assert_bad_response_fast(panos_xml.parse_session_info, body)
    assert "kbps" in str(exc)


# --------------------------------------------------------------------------------------
# Property: nothing but PanosError, whatever the input
# --------------------------------------------------------------------------------------



@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """Take a real sample and break it: at the byte level or the element level."""
    body = SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))]
    if draw(st.booleans()):
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, max(0, len(data) - 1)))
            action = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
            if action == "flip" and data:
                data[position] = draw(st.integers(0, 255))
            elif action == "delete" and data:
                del data[position]
            elif action == "insert":
                data[position:position] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[position:]
        return bytes(data)
    root = ET.fromstring(body)
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 3))):
        target = elements[draw(st.integers(0, len(elements) - 1))]
        action = draw(st.sampled_from(["text", "clear", "drop-children", "attribute"]))
        if action == "text":
            target.text = draw(st.sampled_from(WEIRD_TEXT) | st.text(max_size=12))
        elif action == "clear":
            target.clear()
        elif action == "drop-children":
            for child in list(target)[: draw(st.integers(0, 3))]:
                target.remove(child)
        else:
            target.set(draw(st.sampled_from(["status", "code"])), draw(st.sampled_from([*WEIRD_TEXT, "7", "19"])))
    return ET.tostring(root)


ANY_INPUT = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256),
    st.text(max_size=64).map(lambda t: f'<response status="success"><result>{t}</result></response>'),
    mutated_samples(),
)


@settings(
    max_examples=200,
    deadline=timedelta(seconds=1),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(parser=st.sampled_from(sorted(PARSERS)), body=ANY_INPUT)
def test_no_input_makes_a_parser_raise_anything_but_panos_error(parser: str, body: str | bytes) -> None:
    # Returning normally is fine; any exception other than a PanosError fails the test.
    with contextlib.suppress(PanosError):
        PARSERS[parser](body)


def test_the_property_test_covers_every_public_parser() -> None:
    public = {name for name in panos_xml.__all__ if name.startswith("parse_")}
    assert public == set(PARSERS)
