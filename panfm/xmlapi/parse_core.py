"""Read PAN-OS XML API bodies safely: the exception tree, the envelope and value helpers.

`panos_xml` re-exports everything public here; import from `panos_xml`. Every function raises
only `PanosError` subclasses, whatever the input (a property test holds it to that):

    PanosError                 base of everything the client raises (panos_api adds transport errors)
    ├── BadResponse            not XML, truncated, hostile (DTD/entities), too big, missing element
    └── ApiError(code, msg)    status="error" or a non-success code; the PAN-OS code is kept
        ├── AuthError          403 / "Invalid Credential" / invalid key
        ├── ObjectNotPresent   code 7 with status="success" (config get of a missing node)
        ├── InterfaceNotFound  status="success" whose <result> holds an <error> element
        └── NoMatches          a `show system state filter` that matched nothing

Messages carry what the device said (trimmed), never a request parameter: the parser never
sees the API key or a password, so it cannot leak one.
"""

from __future__ import annotations

import gc
import re
import threading

# Every body is parsed here (parse_xml): declarations refused first, then the C parser.
import xml.etree.ElementTree as ET  # nosec B405
from xml.etree.ElementTree import Element  # nosec B405

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_MESSAGE_CHARS = 500  # a device message is context for a human, not a payload

# PAN-OS error codes (API usage guide, "PAN-OS XML API Error Codes"); 19 and 20 mean success.
ERROR_CODE_NAMES: dict[int, str] = {
    1: "Unknown command",
    2: "Internal error",
    3: "Internal error",
    4: "Internal error",
    5: "Internal error",
    6: "Bad Xpath",
    7: "Object not present",
    8: "Object not unique",
    10: "Reference count not zero",
    11: "Internal error",
    12: "Invalid object",
    13: "Object not found",
    14: "Operation not possible",
    15: "Operation denied",
    16: "Unauthorized",
    17: "Invalid command",
    18: "Malformed command",
    21: "Internal error",
    22: "Session timed out",
    400: "Bad request",
    403: "Forbidden",
}
NO_VALUE = frozenset({"", "n/a", "ukn", "[n/a]", "unknown", "none"})

_INT_RE = re.compile(r"[+-]?\d{1,24}")
_AUTH_TEXT_RE = re.compile(r"invalid credential|invalid key|api key.*(invalid|expired)", re.IGNORECASE)
_NO_MATCHES_RE = re.compile(r"\A\s*'?[^'\n]*'?\s*:\s*NO_MATCHES\s*\Z")
# Markup declarations: a DTD and everything only a DTD may hold. XML spells them in capitals
# with no space after `<!`; the check is wider (any case, spaces) so no spelling slips past.
_DECLARATION_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


class PanosError(Exception):
    """Base of every error raised while talking to or reading a PAN-OS device."""


class BadResponse(PanosError):
    """The body is not a usable PAN-OS response (not XML, truncated, hostile, too big, incomplete)."""


class ApiError(PanosError):
    """The device answered with an error; `code` is the PAN-OS code (None when it sent none)."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        self.message = message
        name = ERROR_CODE_NAMES.get(code) if code is not None else None
        label = f"PAN-OS error {code}" + (f" ({name})" if name else "") if code is not None else "PAN-OS error"
        super().__init__(f"{label}: {message}" if message else label)

    def __reduce__(self) -> tuple[type[ApiError], tuple[int | None, str]]:
        # Rebuild from (code, message), not from the formatted text, so errors survive pickling
        # (e.g. across a process pool).
        return (type(self), (self.code, self.message))


class AuthError(ApiError):
    """The device refused the credentials or the API key (403 / "Invalid Credential")."""


class ObjectNotPresent(ApiError):
    """Code 7 with status="success": the requested object does not exist."""


class InterfaceNotFound(ApiError):
    """A success envelope whose <result> holds an <error> element (e.g. unknown interface)."""


class NoMatches(ApiError):
    """A `show system state filter` matched nothing (`'<filter>': NO_MATCHES`)."""


# The last body each thread parsed and its tree, handed out once more: the transport checks an
# answer's envelope (`parse_envelope`) and the method's parser then reads the same bytes object;
# without this every answer was parsed twice. Only immutable bodies (exact bytes or str) are
# kept, matched by identity, and the entry is dropped when used, so no tree outlives its call.
_LAST_PARSED = threading.local()


def parse_xml(text: str | bytes) -> Element:
    """Parse a body into its root element, refusing big, non-UTF-8 or hostile input."""
    last = getattr(_LAST_PARSED, "pair", None)
    if last is not None:
        _LAST_PARSED.pair = None
        if last[0] is text:
            return last[1]  # type: ignore[no-any-return]
    root = _parse_xml(text)
    if type(text) in (bytes, str):
        _LAST_PARSED.pair = (text, root)
    return root


def _parse_xml(text: str | bytes) -> Element:
    raw: bytes | None = None
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        # 1. Size first: never hand a huge body to the parser (bounded time and memory).
        if len(raw) > MAX_BODY_BYTES:
            raise BadResponse(f"response body of {len(raw)} bytes exceeds the {MAX_BODY_BYTES}-byte limit")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadResponse(f"response body is not valid UTF-8 (byte {exc.start})") from None
    elif isinstance(text, str):
        # A str longer than the limit in characters is longer in bytes too; check before encoding.
        if len(text) > MAX_BODY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise BadResponse(f"response body exceeds the {MAX_BODY_BYTES}-byte limit")
        body = text
    else:
        raise BadResponse(f"response body must be str or bytes, not {type(text).__name__}")
    # 2. A leading BOM is legal in a UTF-8 body; expat rejects it in a str.
    body = body.removeprefix("\ufeff")
    if not body.strip():
        raise BadResponse("empty response body")
    # 3. No DTD, no declaration: PAN-OS never sends one. Refusing any before parsing stops
    #    billion laughs, quadratic blow-up and external entities and DTDs before a single entity
    #    is defined (what defusedxml's forbid_dtd/forbid_entities/forbid_external did in its
    #    pure-Python callbacks). Without a DTD expat knows only the five predefined entities
    #    and character references; any other `&name;` is a ParseError ("undefined entity").
    if "<!" in body and _DECLARATION_RE.search(body):
        raise BadResponse("response is not well-formed, safe XML: DTDs and entity declarations are refused")
    try:
        # 4. The C parser (expat through _elementtree): 2-3x less CPU per answer than
        #    defusedxml's Python-level handlers; a str is fed as UTF-8 whatever its declaration.
        #    Safe only because step 3 refused every declaration.
        #    Valid UTF-8 bytes without an XML declaration are fed as they are (expat reads them as
        #    UTF-8; a str would be encoded to UTF-8 again: ~6 % of a large log answer's parse).
        feed: str | bytes = raw if raw is not None and not body.startswith("<?xml") else body
        root = _fromstring(feed)
    except Exception as exc:  # ParseError, ValueError from odd declarations
        raise BadResponse(f"response is not well-formed, safe XML: {type(exc).__name__}: {_clip(str(exc))}") from None
    if not isinstance(root, Element):
        raise BadResponse("response has no root element")
    return root


# A large answer is fed to the parser this much at a time. One `feed` is one C call that holds
# the GIL throughout: a 0.3 MB log answer's whole parse (5-8 ms) kept every other thread of the
# clock waiting, the lease round's and the cycle write's answers included (their round trips
# end in a wait for the GIL), far past the clock's 1 ms switch interval. Between two chunks the
# interpreter hands the GIL over (bench/gil_wait.py, docs/benchmarks.md).
PARSE_CHUNK = 32 * 1024


def _fromstring(feed: str | bytes) -> Element:
    """`ET.fromstring`, fed `PARSE_CHUNK` at a time, with the cyclic garbage collector paused while the tree is built.

    A tree is thousands of new container objects (a 0.3 MB log answer: ~12,000 elements), and
    each 700 of them start a collection that walks every young object, the half-built tree
    included, again and again: a quarter of such a parse's CPU (bench/bench_cpu.py). Trees hold
    no cycles; the count the parse leaves is collected once, at the next allocation after it.
    Only the thread that paused the collector resumes it, so parallel parses cannot leave it off.
    Chunks may split a UTF-8 sequence or a tag: expat keeps what it has not consumed.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        if len(feed) <= PARSE_CHUNK:
            return ET.fromstring(feed)  # noqa: S314  # nosec B314
        parser = ET.XMLParser(target=ET.TreeBuilder())  # noqa: S314  # nosec B314
        for start in range(0, len(feed), PARSE_CHUNK):
            parser.feed(feed[start:start + PARSE_CHUNK])
        return parser.close()
    finally:
        if paused:
            gc.enable()


def parse_envelope(text: str | bytes) -> Element:
    """Return the <response> root of a success reply; raise the matching PanosError otherwise."""
    root = parse_xml(text)
    if root.tag != "response":
        raise BadResponse(f"root element is <{_clip(root.tag, 60)}>, not <response>")
    status = (root.get("status") or "").strip().lower()
    raw_code = (root.get("code") or "").strip()
    code = int(raw_code) if raw_code.isdigit() and len(raw_code) < 10 else None
    if status in ("error", "failed"):
        message = response_message(root)
        if code == 403 or _AUTH_TEXT_RE.search(message):
            raise AuthError(code, message or "invalid credentials or API key")
        raise ApiError(code, message or "the device reported an error without a message")
    if status != "success":
        raise BadResponse(f"response has no recognised status (status={_clip(status, 40)!r})")
    if code == 7:
        raise ObjectNotPresent(code, response_message(root) or "object not present")
    result = root.find("result")
    if result is not None:
        error = result.find("error")
        if error is not None:
            raise InterfaceNotFound(code, _clip(squash(text_of(error))) or "the result holds an error")
        if len(result) == 0 and _NO_MATCHES_RE.match(result.text or ""):
            raise NoMatches(code, _clip(squash(result.text or "")))
    return root


def response_message(root: Element) -> str:
    """Join the message lines a response carries, wherever this release put them."""
    lines: list[str] = []
    for msg in (root.find("msg"), root.find("result/msg"), root.find("result/job/details")):
        if msg is None:
            continue
        line_elements = list(msg.iter("line"))
        # Nested <line><line> repeats text in iter(); keep only leaf lines.
        leaves = [el for el in line_elements if el.find("line") is None]
        if leaves:
            lines.extend(squash(text_of(el)) for el in leaves)
        else:
            lines.append(squash(text_of(msg)))
    return _clip(" | ".join(line for line in lines if line))


def result_of(root: Element) -> Element:
    """Return the <result> element or raise BadResponse."""
    result = root.find("result")
    if result is None:
        raise BadResponse("response has no <result> element")
    return result


def text_of(element: Element | None) -> str:
    """Return all text inside an element (CDATA included), or '' for None."""
    if element is None:
        return ""
    if len(element) == 0:  # a leaf, nearly every value: its text is all there is
        return element.text or ""
    return "".join(element.itertext())


def squash(text: str) -> str:
    """Collapse runs of whitespace (device text is padded and wrapped)."""
    return " ".join(text.split())


def _clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_text(parent: Element, path: str) -> str | None:
    """Return the stripped text at path; None when absent, empty or a PAN-OS "no value"."""
    element = parent.find(path)
    if element is None:
        return None
    value = text_of(element).strip()
    return None if value.lower() in NO_VALUE else value


def raw_text(parent: Element, path: str) -> str | None:
    """Return the stripped text at path (kept even when it reads "unknown"); None when absent or empty."""
    element = parent.find(path)
    if element is None:
        return None
    value = text_of(element).strip()
    return value or None


def to_int(value: str | None) -> int | None:
    """Read a decimal integer; None for "no value" markers and anything that is not a number."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit() and len(value) <= 24:  # the common case, without the regex
        return int(value)
    if value.lower() in NO_VALUE or not _INT_RE.fullmatch(value):
        return None
    return int(value)


def find_int(parent: Element, path: str) -> int | None:
    """Return the integer at path, or None."""
    return to_int(find_text(parent, path))


def require_int(parent: Element, path: str) -> int:
    """Return the integer at path or raise BadResponse naming the element."""
    value = find_int(parent, path)
    if value is None:
        raise BadResponse(f"<{path}> is missing or not an integer")
    return value


def require_text(parent: Element, path: str) -> str:
    """Return the non-empty text at path or raise BadResponse naming the element."""
    value = raw_text(parent, path)
    if value is None:
        raise BadResponse(f"<{path}> is missing or empty")
    return value


def int_list(value: str, *, where: str) -> tuple[int, ...]:
    """Read a comma-separated history ("5,5,10%,6") into ints; BadResponse on a non-number."""
    if value.isascii() and value.isdigit() and len(value) <= 24:
        return (int(value),)  # one plain number: what each of the fast poll's ~60 lists is (`last` 1)
    items: list[int] = []
    for token in value.split(","):
        token = token.strip()
        if token.isascii() and token.isdigit() and len(token) <= 24:  # the common case: a plain number
            items.append(int(token))
            continue
        token = token.removesuffix("%").strip()
        if not token:
            continue  # a trailing comma is not a value
        number = to_int(token)
        if number is None:
            raise BadResponse(f"{where}: {_clip(token, 40)!r} is not an integer")
        items.append(number)
    return tuple(items)
