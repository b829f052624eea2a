"""The response envelope in every form real devices send, mapped to the PanosError tree."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from panfm.xmlapi.parsers import (
    ApiError,
    AuthError,
    BadResponse,
    InterfaceNotFound,
    NoMatches,
    ObjectNotPresent,
    PanosError,
    parse_envelope,
)

FIXTURES = Path(__file__).parent / "fixtures" / "panos"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_it_keeps_one_exception_tree_under_panos_error() -> None:
    for kind in (AuthError, ObjectNotPresent, InterfaceNotFound, NoMatches):
        assert issubclass(kind, ApiError)
    assert issubclass(ApiError, PanosError)
    assert issubclass(BadResponse, PanosError)
    assert not issubclass(BadResponse, ApiError)


@pytest.mark.parametrize(
    "name",
    ["keygen-invalid-credential-403__paloversion-issue7.xml", "keygen-invalid-credential-403__pan-os-ansible.xml"],
)
def test_it_raises_auth_error_for_the_403_body_with_spaces_and_single_quotes(name: str) -> None:
    with pytest.raises(AuthError) as caught:
        parse_envelope(load(name))
    assert caught.value.code == 403
    assert caught.value.message == "Invalid Credential"
    assert "403" in str(caught.value)


@pytest.mark.parametrize("kind", [ApiError, AuthError, ObjectNotPresent, InterfaceNotFound, NoMatches])
def test_it_keeps_code_and_message_when_an_api_error_is_pickled(kind: type[ApiError]) -> None:
    error = pickle.loads(pickle.dumps(kind(17, "show -> x is unexpected")))
    assert (type(error), error.code, error.message) == (kind, 17, "show -> x is unexpected")
    assert str(error) == "PAN-OS error 17 (Invalid command): show -> x is unexpected"


def test_the_97_byte_body_is_the_real_one() -> None:
    # The exact body real devices send with HTTP 403 (INDEX.md), spaces around "=" included.
    assert len(load("keygen-invalid-credential-403__paloversion-issue7.xml").rstrip(b"\n")) == 97


def test_it_raises_auth_error_for_an_old_release_saying_invalid_credentials_without_a_code() -> None:
    with pytest.raises(AuthError) as caught:
        parse_envelope('<response status="error"><msg><line>Invalid credentials.</line></msg></response>')
    assert caught.value.code is None


def test_it_raises_api_error_with_code_1_for_the_bare_self_closing_response() -> None:
    with pytest.raises(ApiError) as caught:
        parse_envelope(load("error-1-unknown-command__pan-os-ansible.xml"))
    assert type(caught.value) is ApiError
    assert caught.value.code == 1
    assert "Unknown command" in str(caught.value)


def test_it_joins_multi_line_cdata_messages() -> None:
    with pytest.raises(ApiError) as caught:
        parse_envelope(load("config-error-12-invalid-object-multiline__pango.xml"))
    assert caught.value.code == 12
    assert caught.value.message == (
        "tf123456 -> server -> first server is invalid. HTTP method must be GET, Username/Password must not be "
        "empty when Tag Distribution is chosen | tf123456 -> server is invalid"
    )


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("error-17-invalid-command__pan-os-upgrade-assurance.xml", 17, "show -> redistribution is unexpected"),
        (
            "error-17-gp-current-user-invalid__forescout-eyeextend-panos-8.1.xml",
            17,
            "show -> global-protect-gateway -> current-user -> user is invalid",
        ),
        ("error-18-malformed__puppetlabs-panos.xml", 18, "Malformed Request"),
        (
            "export-error-400-missing-parameter__pango.xml",
            400,
            'Parameter "format" is required while exporting certificate',
        ),
        ("config-show-error-no-such-node__pango.xml", None, "No such node"),
    ],
)
def test_it_raises_api_error_with_the_pan_os_code_and_message(name: str, code: int | None, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_envelope(load(name))
    assert type(caught.value) is ApiError
    assert (caught.value.code, caught.value.message) == (code, message)


def test_it_raises_object_not_present_for_code_7_with_status_success() -> None:
    with pytest.raises(ObjectNotPresent) as caught:
        parse_envelope(load("config-get-object-not-present-code7__pango.xml"))
    assert caught.value.code == 7


@pytest.mark.parametrize(
    "name",
    [
        "log-enqueue-traffic__panos-docs-9.1.xml",
        "commit-enqueue__puppetlabs-panos.xml",
        "commit-no-changes-code19__puppetlabs-panos.xml",
    ],
)
def test_it_treats_code_19_as_success(name: str) -> None:
    root = parse_envelope(load(name))
    assert (root.tag, root.get("code")) == ("response", "19")


def test_it_treats_code_20_as_success() -> None:
    root = parse_envelope(
        '<response status="success" code="20"><result><msg>command succeeded</msg></result></response>'
    )
    assert root.get("code") == "20"


def test_it_raises_interface_not_found_for_success_whose_result_holds_an_error() -> None:
    with pytest.raises(InterfaceNotFound) as caught:
        parse_envelope(load("show-interface-not-found__pan-os-upgrade-assurance.xml"))
    assert caught.value.message == "Interface 'ethernet1/123' not found"


def test_it_raises_no_matches_for_a_state_filter_that_matched_nothing() -> None:
    with pytest.raises(NoMatches) as caught:
        parse_envelope(load("show-system-state-filter-no-matches__pan-os-upgrade-assurance.xml"))
    assert caught.value.message == "'sys.monitor.*.mp.exports': NO_MATCHES"


def test_it_does_not_mistake_text_mentioning_no_matches_inside_a_dict_for_the_marker() -> None:
    body = "<response status=\"success\"><result><![CDATA[ x: { 'note': NO_MATCHES, } ]]></result></response>"
    assert parse_envelope(body).tag == "response"


@pytest.mark.parametrize(
    "head", ['<response status = "success">', "<response status='success'>", "<response status = 'success' >"]
)
def test_it_accepts_every_attribute_quoting_style(head: str) -> None:
    assert parse_envelope(f"{head}<result/></response>").get("status") == "success"


def test_it_treats_status_failed_as_an_error() -> None:
    with pytest.raises(ApiError):
        parse_envelope('<response status="failed"><msg>nope</msg></response>')


def test_it_keeps_leaf_lines_of_nested_line_elements_once() -> None:
    body = '<response status="error" code="12"><msg><line><line>a</line><line>b</line></line></msg></response>'
    with pytest.raises(ApiError) as caught:
        parse_envelope(body)
    assert caught.value.message == "a | b"


def test_it_reads_a_message_under_result_msg_line() -> None:
    body = '<response status="error" code="13"><result><msg><line>gone</line></msg></result></response>'
    with pytest.raises(ApiError, match=r"13 \(Object not found\): gone$"):
        parse_envelope(body)


def test_it_clips_a_huge_device_message() -> None:
    body = f'<response status="error" code="12"><msg><line>{"x" * 100_000}</line></msg></response>'
    with pytest.raises(ApiError) as caught:
        parse_envelope(body)
    assert len(caught.value.message) <= 500


@pytest.mark.parametrize(
    "body",
    [
        '<report status="success"><result/></report>',
        "<response><result/></response>",
        '<response status="maybe"><result/></response>',
    ],
)
def test_it_refuses_a_document_that_is_not_a_recognised_response(body: str) -> None:
    with pytest.raises(BadResponse):
        parse_envelope(body)


def test_it_accepts_a_utf8_bom_and_an_xml_declaration() -> None:
    body = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?><response status="success"><result/></response>'
    assert parse_envelope(body).tag == "response"
