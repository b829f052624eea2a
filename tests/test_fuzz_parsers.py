"""A longer fuzzing run per parser over mutations of the real samples that parser reads.

tests/test_panos_xml_hostile.py draws any parser with any sample; here each parser gets the
samples it parses successfully, so mutations reach past the envelope into its own code.
Nothing but a PanosError may come out, and a parse must stay fast.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from helpers.parsers import PARSERS, SAMPLES, WEIRD_TEXT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panfm.xmlapi.parsers import PanosError

NUMBERS = ["0", "-0", "-1", "1e309", "nan", "inf", "9" * 30, "0x1F", "1.5", "١٢٣", " 7 ", "7%", "1,000"]


def readable_by(parser: str) -> list[bytes]:
    """The real samples this parser reads without an error."""
    out = []
    for body in SAMPLES.values():
        with contextlib.suppress(PanosError):
            PARSERS[parser](body)
            out.append(body)
    return out


READABLE = {name: readable_by(name) for name in PARSERS}


@st.composite
def element_mutation(draw: st.DrawFn, body: bytes) -> bytes:
    """Change texts to odd numbers and words, duplicate or drop elements, several times."""
    root = ET.fromstring(body)
    elements = list(root.iter())
    for _ in range(draw(st.integers(1, 6))):
        target = elements[draw(st.integers(0, len(elements) - 1))]
        action = draw(st.sampled_from(["number", "text", "duplicate", "drop", "empty"]))
        if action == "number":
            target.text = draw(st.sampled_from(NUMBERS))
        elif action == "text":
            target.text = draw(st.sampled_from(WEIRD_TEXT) | st.text(max_size=16))
        elif action == "duplicate" and len(target):
            target.append(target[draw(st.integers(0, len(target) - 1))])
        elif action == "drop" and len(target):
            target.remove(target[draw(st.integers(0, len(target) - 1))])
        else:
            target.text = None
    return ET.tostring(root)


@pytest.mark.parametrize("parser", sorted(p for p in PARSERS if READABLE[p]))
def test_no_mutation_of_its_own_samples_makes_a_parser_raise_anything_but_panos_error(parser: str) -> None:
    @settings(max_examples=120, deadline=timedelta(seconds=1), database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        body = data.draw(st.sampled_from(READABLE[parser]))
        mutated = data.draw(element_mutation(body))
        with contextlib.suppress(PanosError):
            PARSERS[parser](mutated)

    run()


def test_most_parsers_have_a_real_sample_to_mutate() -> None:
    covered = [p for p in PARSERS if READABLE[p]]
    assert len(covered) >= len(PARSERS) - 3, sorted(set(PARSERS) - set(covered))
