"""The C parser behind `parse_xml` builds the same trees defusedxml built and refuses at least as much."""

from __future__ import annotations

import re
from datetime import timedelta
from xml.etree.ElementTree import Element  # nosec B405

import defusedxml.ElementTree as DefusedET
import pytest
from helpers.parsers import SAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panfm.xmlapi.parse_core import BadResponse, parse_envelope, parse_xml

DECLARATION = re.compile(r"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


def shape(el: Element) -> tuple[object, ...]:
    """Everything of a tree the parsers read: tag, attributes, text, tail, children in order."""
    return (el.tag, dict(el.attrib), el.text, el.tail, [shape(child) for child in el])


def defused(body: str | bytes) -> Element | None:
    """The previous parser's answer (None: refused), the reference the C path must match."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff") if isinstance(body, bytes) else body.removeprefix("\ufeff")
        root = DefusedET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception:  # any refusal
        return None
    return root if isinstance(root, Element) else None


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_recorded_answer_parses_to_the_tree_defusedxml_built(name):
    expected = defused(SAMPLES[name])
    assert expected is not None
    assert shape(parse_xml(SAMPLES[name])) == shape(expected)
    assert shape(parse_xml(SAMPLES[name].decode("utf-8"))) == shape(expected)


@pytest.mark.parametrize("body", [
    '<!doctype response [<!entity a "x">]><response status="success"><result>&a;</result></response>',
    '<! DOCTYPE response><response status="success"/>',
    '\ufeff<!DOCTYPE response SYSTEM "http://127.0.0.1:9/x.dtd"><response status="success"/>',
    '<?xml version="1.0"?>\n<!DOCTYPE response PUBLIC "-//x//y" "file:///etc/passwd"><response/>',
    '<?xml version="1.0"?><!ELEMENT response ANY><response status="success"/>',
    '<response status="success"><!ATTLIST response a CDATA "x"></response>',
    '<response status="success"><result><![CDATA[<!ENTITY looks like one>]]></result></response>',
])
def test_it_refuses_every_spelling_of_a_declaration_before_parsing(body):
    with pytest.raises(BadResponse, match="DTDs and entity declarations are refused"):
        parse_xml(body)
    with pytest.raises(BadResponse, match="DTDs and entity declarations are refused"):
        parse_xml(body.encode("utf-8"))


@pytest.mark.parametrize("body", [
    '<response status="success"><result>&xxe;</result></response>',  # an entity nobody declared
    '<response status="success"><result>&lol9;&lol9;</result></response>',
    '<response status="success"><result>&#0;</result></response>',  # not a legal character
    '<?xml version="1.0" encoding="UTF-16"?><response status="success"><result>&a</result></response>',
])
def test_it_refuses_undeclared_entities_and_broken_references_as_bad_responses(body):
    with pytest.raises(BadResponse, match="not well-formed, safe XML"):
        parse_xml(body)


def test_it_still_reads_predefined_entities_character_references_and_escaped_markup():
    root = parse_envelope(
        '<?xml version="1.0" encoding="UTF-16"?>'  # a str body is read as the text it is
        '<response status="success"><result><a>&amp;&lt;&gt;&quot;&apos;&#x41;&#66;</a>'
        '<b>&lt;!DOCTYPE x&gt;</b><!-- a comment --><?pi ignored?><c><![CDATA[<raw & text>]]></c></result></response>'
    )
    assert root.findtext("result/a") == "&<>\"'AB"
    assert root.findtext("result/b") == "<!DOCTYPE x>"  # text that reads like markup is only text
    assert root.findtext("result/c") == "<raw & text>"


PIECES = [*"<>!/&;=\"' ?[]-#x0aDOCTYPENTIY%", "<!DOCTYPE ", "<!ENTITY ", "&amp;", "&x;", "<a>", "</a>", "<![CDATA["]
XMLISH = st.lists(st.sampled_from(PIECES), max_size=20).map("".join)


@settings(max_examples=300, deadline=timedelta(seconds=1), database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(base=st.sampled_from(sorted(SAMPLES)), cut=st.integers(min_value=0, max_value=10**6), insert=XMLISH)
def test_whatever_it_accepts_defusedxml_accepted_with_the_same_tree(base, cut, insert):
    text = SAMPLES[base].decode("utf-8")
    at = cut % (len(text) + 1)
    body = text[:at] + insert + text[at:]
    expected = defused(body)
    try:
        root = parse_xml(body)
    except BadResponse:
        # It may refuse more than defusedxml did, but only a body that spells a declaration.
        assert expected is None or DECLARATION.search(body)
        return
    assert expected is not None and shape(root) == shape(expected)


def test_an_answer_checked_by_the_transport_and_read_by_its_parser_is_parsed_once(monkeypatch):
    import panfm.xmlapi.parse_core as core
    from panfm.xmlapi.parsers import parse_session_info

    calls = []
    real = core.ET.fromstring
    monkeypatch.setattr(core.ET, "fromstring", lambda body: calls.append(1) or real(body))
    body = SAMPLES["show-session-info__pan-os-upgrade-assurance.xml"]
    parse_envelope(body)  # the transport's check
    first = parse_session_info(body)  # the method's parser, same bytes object
    assert len(calls) == 1
    assert parse_session_info(body) == first and len(calls) == 2  # used once, then dropped
    assert parse_session_info(bytes(bytearray(body))) == first and len(calls) == 3  # equal bytes: parsed anew


def test_a_refused_body_is_refused_again_however_often_it_is_asked():
    body = b'<!DOCTYPE r [<!ENTITY a "x">]><response status="success"><result>&a;</result></response>'
    for _ in range(3):
        with pytest.raises(BadResponse):
            parse_envelope(body)


@pytest.mark.parametrize("declared", [False, True])
@pytest.mark.parametrize("shift", [0, 1, 2, 3])
def test_a_large_answer_fed_in_chunks_builds_the_tree_one_feed_builds(declared, shift):
    """Bodies over `PARSE_CHUNK` are fed a chunk at a time (the GIL is handed over between two):
    a chunk boundary inside a tag, an entity or a multi-byte character changes nothing."""
    from panfm.xmlapi import parse_core

    entry = ('<entry logid="{k}"><src>10.0.0.{k}</src><app>web-browsing</app><rule>Zürich → 東京 &amp; ☃</rule>'
             '<misc>&lt;a href="x"&gt;&#x1F600;</misc></entry>')
    body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>" if declared else "") + (
        '<response status="success"><result><log><logs count="1200" progress="100">'
        + " " * shift + "".join(entry.format(k=k % 250) for k in range(1200)) + "</logs></log></result></response>")
    raw = body.encode("utf-8")
    assert len(raw) > 3 * parse_core.PARSE_CHUNK
    expected = defused(raw)
    assert expected is not None
    got = parse_xml(raw)
    assert shape(got) == shape(expected)
    assert got.findall(".//entry")[1199].findtext("rule") == "Zürich → 東京 & ☃"
    assert got.findall(".//entry")[7].findtext("misc") == '<a href="x">\U0001F600'
    assert shape(parse_xml(body)) == shape(expected)


def test_a_large_answer_cut_short_is_refused_as_bad_xml():
    from panfm.xmlapi import parse_core

    body = b'<response status="success"><result>' + b"<a>x</a>" * (parse_core.PARSE_CHUNK // 4)
    with pytest.raises(BadResponse, match="not well-formed"):
        parse_xml(body)
