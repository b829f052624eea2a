"""Alert channels: Apprise URL validation, the offered schemes, masking, encryption at rest, loading Apprise."""

from __future__ import annotations

import functools
import logging
import re
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from panfm.alerting.rules import Errors, _bool, _text

# The Apprise URL is a secret (tokens, passwords); stored encrypted, shown masked.


class Encryptor(Protocol):
    def encrypt(self, plaintext: str) -> str: ...


def mask_url(url: str) -> str:
    """Show only the scheme and host of an Apprise URL (enough to recognise it, no token or password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    # Some schemes carry a token where the host would be (e.g. tgram://TOKEN/...): hide long hosts.
    if len(host) > 40 or not re.fullmatch(r"[A-Za-z0-9.-]*", host):
        host = ""
    return f"{parts.scheme}://{host + '/' if host else ''}••••"


@functools.cache
def load_apprise() -> Any:
    """Import Apprise and load its plugins once (heavy; only channel editing and sending need it)."""
    import apprise

    # Apprise's e-mail plugin imports the stdlib's deprecated imghdr for PGPy; that warning is
    # theirs to fix, not ours to surface as an error on every first send.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'imghdr' is deprecated", category=DeprecationWarning)
        apprise.Apprise.instantiate("json://127.0.0.1/")
    return apprise


class _ThisThread(logging.Filter):
    """Drop the records of one thread (the others keep logging)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


def _instantiate_quietly(url: str) -> Any:
    """Parse an Apprise URL without Apprise logging it: a mistyped URL still holds its token."""
    logger, quiet = logging.getLogger("apprise"), _ThisThread()
    logger.addFilter(quiet)
    try:
        return load_apprise().Apprise.instantiate(url)
    finally:
        logger.removeFilter(quiet)


# Apprise knows ~100 schemes; some read local files or reach arbitrary hosts. Only these are offered.
CHANNEL_SCHEMES = frozenset({
    "mail", "mailto", "mailtos", "slack", "msteams", "discord", "tgram", "json", "jsons", "xml", "xmls",
    "form", "forms", "ntfy", "ntfys", "pover", "syslog",
})
# Schemes that post to a host of the URL's choosing: its address is checked like a firewall's.
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "ntfy", "ntfys"})


def scheme_refusal(url: str) -> str | None:
    """Why an Apprise URL's scheme is not offered, or None when it is."""
    scheme = url.partition("://")[0].strip().lower()
    if scheme in CHANNEL_SCHEMES:
        return None
    return "the scheme must be one of " + ", ".join(f"{s}://" for s in sorted(CHANNEL_SCHEMES))


def validate_channel(doc: Mapping[str, Any], *, url_required: bool = True) -> tuple[dict[str, Any], Errors]:
    """Check a channel as the web received it (`url_required=False` on an edit that keeps the URL)."""
    errors: Errors = {}
    if not isinstance(doc, Mapping):
        return {}, {"channel": "must be a JSON object"}
    clean: dict[str, Any] = {"name": _text(doc, "name", errors, required=True)}
    if doc.get("id"):
        clean["id"] = str(doc["id"])
    url = doc.get("url")
    if url in (None, "") or (isinstance(url, str) and "••••" in url):
        if url_required:
            errors["url"] = "is required"
    elif not isinstance(url, str) or len(url) > 2000 or "://" not in url:
        errors["url"] = "must be an Apprise URL such as mailto://, json://, slack:// or msteams://"
    elif refused := scheme_refusal(url):
        errors["url"] = refused
    elif _instantiate_quietly(url.strip()) is None:
        errors["url"] = "is not a URL Apprise can send to (check the scheme and its parts)"
    else:
        clean["url"] = url.strip()
    clean["enabled"] = _bool(doc, "enabled", errors, True)
    return clean, errors


def channel_to_stored(
    clean: Mapping[str, Any], box: Encryptor, existing: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the stored channel document: URL encrypted, a masked copy for display; keep the old URL if none."""
    stored: dict[str, Any] = {"name": clean["name"], "enabled": clean.get("enabled", True)}
    if clean.get("id"):
        stored["id"] = clean["id"]
    if clean.get("url"):
        stored["url_enc"] = box.encrypt(clean["url"])
        stored["url_masked"] = mask_url(clean["url"])
    elif existing is not None:
        stored["url_enc"] = existing.get("url_enc")
        stored["url_masked"] = existing.get("url_masked")
    else:
        raise ValueError("a new channel needs a URL")
    return stored


def mask_channel(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The channel as the API shows it: the URL masked, never the token."""
    return {
        "id": stored.get("id"),
        "name": stored.get("name"),
        "url": stored.get("url_masked") or "••••",
        "enabled": bool(stored.get("enabled", True)),
    }
