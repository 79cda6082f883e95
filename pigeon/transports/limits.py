"""What one call may send, checked before it is sent: a broker that receives more than it allows
closes the whole connection (every handler of the App with it), so the one call fails instead;
and a header some broker would change on the way is refused on every transport, so that a header
either arrives byte-identical everywhere or is refused everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from pigeon.errors import ConfigurationError, MessageTooLarge

MAX_HEADER_BYTES = 64 * 1024
"""The most header bytes (names and values, UTF-8) one message may carry, on every transport:
headers are metadata, and RabbitMQ must fit them with the other properties into one frame
(``frame_max``, 128 KiB by default). A larger value belongs in the body."""

MAX_HEADER_NAME_BYTES = 255
"""The longest header name: AMQP's short string, the tightest of pigeon's brokers."""

ENTRY_OVERHEAD = 6
"""Bytes an AMQP header table adds per entry (name length, value type, value length)."""


def check_body(body: bytes, limit: int, url: str, raise_also: str = "") -> None:
    """Raise ``MessageTooLarge`` if ``body`` is over ``limit`` bytes (the transport's
    ``max_message_size``); ``raise_also`` names what must be raised with it (a broker's own)."""
    if len(body) > limit:
        raise MessageTooLarge(
            f"{url}: the body is {len(body):,} bytes, over max_message_size={limit:,}; send large "
            f"data by reference (a URL or key), or raise max_message_size{raise_also}"
        )


def header_bytes(headers: Mapping[str, str]) -> int:
    """The size of ``headers`` on the wire, roughly: names, values and a few bytes per entry."""
    return sum(len(k.encode()) + len(v.encode()) + ENTRY_OVERHEAD for k, v in headers.items())


NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header name every transport carries: an RFC 7230 token (NATS refuses any other)."""

_ALTERED_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|^\s|\s$")
"""What NATS changes in a value: it trims whitespace at either end and turns line breaks into
spaces (and a control character is no text to send in a header)."""


def check_headers(
    headers: Mapping[str, str], url: str, limit: int = MAX_HEADER_BYTES, why: str = ""
) -> None:
    """Raise ``ConfigurationError`` naming the first header some transport would not carry
    byte-identical: a name that is not a token (``NAME``), a value with whitespace at either end,
    a line break or another control character (tab inside is fine). Raise ``MessageTooLarge`` if
    ``headers`` are over ``limit`` bytes (``why`` says whose limit, for the message), or a name
    is over ``MAX_HEADER_NAME_BYTES``."""
    if not headers:
        return
    rough = 0
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str:
            raise _not_text(name, value, url)
        if name not in _good_names:  # the same few names on every message
            _check_name(name, url)
        if not (value.isprintable() and value[:1] != " " and value[-1:] != " "):
            _check_value(name, value, url)  # the uncommon case, with a regular expression
        rough += len(name) + len(value)
    if rough * 4 + len(headers) * ENTRY_OVERHEAD <= limit:
        return  # the common case, decided without encoding
    size = header_bytes(headers)
    if size > limit:
        raise MessageTooLarge(
            f"{url}: the message's headers are {size} bytes, over the {limit} bytes allowed"
            f"{' (' + why + ')' if why else ''}; carry large values in the body"
        )


_good_names: set[str] = set()
"""Header names ``_check_name`` let through (emptied at 1,024)."""


def _check_name(name: str, url: str) -> None:
    """Raise unless header ``name`` is a token (``NAME``) of at most ``MAX_HEADER_NAME_BYTES``;
    remember it if it is."""
    if NAME.fullmatch(name) is None:
        raise _bad_name(name, url)
    if len(name) > MAX_HEADER_NAME_BYTES:  # a token is ASCII: one byte a character
        raise MessageTooLarge(
            f"{url}: header name {name[:40]!r}... is over {MAX_HEADER_NAME_BYTES} bytes; "
            "use a shorter name"
        )
    if len(_good_names) >= 1024:
        _good_names.clear()
    _good_names.add(name)


def _bad_name(name: str, url: str) -> ConfigurationError:
    return ConfigurationError(
        f"{url}: header name {name!r} cannot travel on every transport (NATS takes only "
        "ASCII letters, digits and !#$%&'*+-.^_`|~ in a name); use such a name, e.g. "
        f"{_token(name)!r}"
    )


def _not_text(name: object, value: object, url: str) -> ConfigurationError:
    what = f"name {name!r}" if type(name) is not str else f"{name!r} has a value {value!r} that"
    return ConfigurationError(
        f"{url}: header {what} is a {type(value if type(name) is str else name).__name__}, "
        "not a str; headers are text: convert it with str() (or carry it in the body)"
    )


def _check_value(name: str, value: str, url: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ConfigurationError(
            f"{url}: header {name!r} has a value {value[:40]!r} that is not valid Unicode text "
            "(a lone surrogate); fix the text, or carry bytes in the body"
        ) from None
    if _ALTERED_VALUE.search(value):
        what = "a line break or control character"
        if value[0].isspace() or value[-1].isspace():
            what = "whitespace at its start or end"
        raise ConfigurationError(
            f"{url}: header {name!r} has {what} in its value {value[:40]!r}, which NATS "
            "would change on the way; strip it, or carry the text in the body "
            "(pigeon.headers.encode_text makes any text a safe header value)"
        )


def _token(name: str) -> str:
    """A name like ``name`` that travels: accents dropped (``Ünï``: ``Uni``), the rest of what a
    token may not hold replaced by ``-``."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]+", "-", ascii_name).strip("-") or "x-header"
