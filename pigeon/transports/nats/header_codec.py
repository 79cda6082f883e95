"""nats-py's header codec, faster: the same bytes on the wire, the same dicts received.

nats-py builds every header line in Python (strip, a key regex, a translate, two encodes and
three ``bytearray.extend`` per header) and parses every received line the same way (a generator
over each key's characters to look for whitespace): a few microseconds per header, which is most
of what pigeon pays over headerless nats-py. ``HeaderCodec`` keeps nats-py's rules and caches
what only depends on a header's name:

- sending: the header block is byte for byte the one nats-py builds (names stripped and checked
  against the same regex, ``BadHeaderError`` for a bad one, empty ones skipped, values stripped
  with CR and LF turned into spaces);
- receiving: the headers dict is the one nats-py builds (names stripped and ASCII, a name with
  whitespace skipped, values stripped and decoded as UTF-8 with replacement), pigeon's usual
  blocks (``wire.plain_block``) parsed by one regex match.

Checked against nats-py 2.16.0 on random header sets (``tests/nats/test_header_codec.py``);
``PigeonClient`` uses it on the versions in ``client.TESTED_VERSIONS`` only.
"""

from __future__ import annotations

import re

from nats import errors
from nats.aio import client as nats_client

_BLOCK_START = "NATS/1.0\r\n"
_BLOCK_START_BYTES = b"NATS/1.0\r\n"
_STATUS_START = b"NATS/1.0 "
STATUS, DESCRIPTION = "Status", "Description"
"""The headers a status line becomes (nats-py's names: ``nats.js.api.Header``)."""
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_CACHE_LIMIT = 4096
"""Header names remembered per direction; the caches start over past this many."""

_MSG_ID, _CONTENT_TYPE = "Nats-Msg-Id", "content-type"
_DEADLINE = "x-pigeon-deadline"
_EVENT_BLOCK = re.compile(rb"NATS/1\.0\r\nNats-Msg-Id: ([!-~]*)\r\ncontent-type: ([!-~]*)\r\n\r\n")
_PLAIN_BLOCK = re.compile(
    rb"NATS/1\.0\r\n(?:x-pigeon-deadline: ([!-~]*)\r\n)?(?:Nats-Msg-Id: ([!-~]*)\r\n)?"
    rb"content-type: ([!-~]*)\r\n\r\n"
)
"""The header block of pigeon's usual event, request or reply (``wire.plain_block``), parsed by
one match (``_EVENT_BLOCK``: an event's)."""

_SKIP = " "
"""A cached name that nats-py leaves out: on sending, empty once stripped; on receiving, not
ASCII or with whitespace (which no name it keeps can be)."""


class HeaderCodec:
    """nats-py's header block codec with its per-name work cached (see the module docstring)."""

    def __init__(self) -> None:
        self._out_names: dict[str, str] = {}
        self._in_names: dict[bytes, str] = {}

    def block(self, headers: dict[str, str]) -> bytes:
        """The ``NATS/1.0`` block nats-py would build for ``headers``, blank line included.

        Raises ``BadHeaderError`` for a name nats-py refuses (as nats-py does).
        """
        names = self._out_names
        parts = [_BLOCK_START]
        for name, value in headers.items():
            line_start = names.get(name)
            if line_start is None:
                line_start = self._out_name(name)
            if line_start is _SKIP:
                continue
            value = value.strip()
            if "\r" in value or "\n" in value:
                value = value.translate(_NEWLINES)
            parts += (line_start, value, "\r\n")
        parts.append("\r\n")
        return "".join(parts).encode()

    def _out_name(self, name: str) -> str:
        key = name.strip()
        if not key:
            line_start = _SKIP
        elif nats_client._HEADER_KEY_RE.fullmatch(key):
            line_start = key + ": "
        else:
            raise errors.BadHeaderError(key)
        if len(self._out_names) >= _CACHE_LIMIT:
            self._out_names.clear()
        self._out_names[name] = line_start
        return line_start

    def parse(self, headers: bytes) -> dict[str, str] | None:
        """The dict nats-py builds from a header block without a status (``NATS/1.0\\r\\n...``);
        ``None`` when it holds no header."""
        event = _EVENT_BLOCK.fullmatch(headers)  # values of visible ASCII: nothing to clean
        if event is not None:  # pub-sub's hot path: one exact pattern first
            return {_MSG_ID: event[1].decode(), _CONTENT_TYPE: event[2].decode()}
        plain = _PLAIN_BLOCK.fullmatch(headers)
        if plain is not None:
            return _plain_headers(*plain.groups())
        return self._lines(headers, 10, {}) or None

    def parse_status(self, headers: bytes) -> dict[str, str]:
        """The headers of a block that starts with a status line (``NATS/1.0 503 No
        Responders``), as text: ``Status`` (the code, if it is one), ``Description`` (the rest
        of the line, if any), then the block's headers as ``parse`` reads them. nats-py gives
        the description an ``Enum`` for a name, and a block with a status and headers but no
        description a description made of the header lines."""
        end = headers.find(b"\r\n")
        line = headers[len(_STATUS_START) : end if end >= 0 else None]
        code, _, description = line.strip().partition(b" ")
        parsed: dict[str, str] = {}
        if code.isdigit():
            parsed[STATUS] = code.decode()
        description = description.strip()
        if description:
            parsed[DESCRIPTION] = description.decode("utf-8", "replace")
        return self._lines(headers, end + 2, parsed) if end >= 0 else parsed

    def _lines(self, headers: bytes, start: int, parsed: dict[str, str]) -> dict[str, str]:
        """``parsed`` with the header lines of ``headers`` from ``start`` added."""
        known = self._in_names.get
        end = -4 if headers.endswith(b"\r\n\r\n") else None  # the blank line ending the block
        for line in headers[start:end].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = known(name)
            if key is None:
                key = self._in_name(name)
            if key is _SKIP:
                continue
            parsed[key] = value.strip().decode("utf-8", "replace")
        return parsed

    def _in_name(self, name: bytes) -> str:
        try:
            key = name.strip().decode("ascii")
        except UnicodeDecodeError:
            key = _SKIP
        if any(c.isspace() for c in key):  # nats-py keeps an empty name, so does this
            key = _SKIP
        if len(self._in_names) >= _CACHE_LIMIT:
            self._in_names.clear()
        self._in_names[name] = key
        return key


def _plain_headers(
    deadline: bytes | None, message_id: bytes | None, content_type: bytes
) -> dict[str, str]:
    """The headers of a ``_PLAIN_BLOCK`` match, in the block's order."""
    if deadline is None:
        if message_id is None:
            return {_CONTENT_TYPE: content_type.decode()}
        return {_MSG_ID: message_id.decode(), _CONTENT_TYPE: content_type.decode()}
    parsed = {_DEADLINE: deadline.decode()}
    if message_id is not None:
        parsed[_MSG_ID] = message_id.decode()
    parsed[_CONTENT_TYPE] = content_type.decode()
    return parsed
