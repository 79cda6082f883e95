"""A nats-py client whose header codec and requests are faster, with the same bytes on the wire.

nats-py builds every header line in Python (strip, a key regex, a translate, two encodes and
three ``bytearray.extend`` per header) and parses every received line the same way (a generator
over each key's characters to look for whitespace): a few microseconds per header, which is most
of what pigeon pays over headerless nats-py. ``PigeonClient`` keeps nats-py's rules and caches
what only depends on a header's name, so that:

- sending: the header block is byte for byte the one nats-py builds (names stripped and checked
  against the same regex, ``BadHeaderError`` for a bad one, empty ones skipped, values stripped
  with CR and LF turned into spaces);
- requesting: the same inbox subscription and reply map, each request's token a fresh NUID (unique
  per connection, without nats-py's two extra random bytes), and a timer instead of
  ``asyncio.wait_for``;
- receiving: the headers dict is the one nats-py builds (names stripped and ASCII, a name with
  whitespace skipped, values stripped and decoded as UTF-8 with replacement); a status line
  (``NATS/1.0 503``) goes to nats-py's own parser.

These replace private methods of nats-py, so they are used only with the nats-py versions they
were checked against (``TESTED_VERSIONS``, by ``tests/nats/test_header_codec.py`` on random
header sets); on any other version ``new_client`` returns nats-py's own ``Client``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats import errors
from nats.aio import client as nats_client
from nats.aio.client import Client

TESTED_VERSIONS = frozenset({"2.16.0"})
"""nats-py versions whose ``_send_publish``, ``_request_new_style`` and ``_process_headers``
``PigeonClient`` replaces."""

_BLOCK_START = "NATS/1.0\r\n"
_BLOCK_START_BYTES = b"NATS/1.0\r\n"
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})
_CACHE_LIMIT = 4096
"""Header names remembered per direction; the caches start over past this many."""

_SKIP = " "
"""A cached name that nats-py leaves out: on sending, empty once stripped; on receiving, not
ASCII or with whitespace (which no name it keeps can be)."""


class PigeonClient(Client):
    """nats-py's ``Client`` with a faster header codec (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._out_names: dict[str, str] = {}
        self._in_names: dict[bytes, str] = {}

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, str] | None,
    ) -> None:
        if headers is None:
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        if subject == "":
            raise errors.BadSubjectError
        block = self.header_block(headers)
        command = b"".join(
            (
                f"HPUB {subject} {reply} {len(block)} {len(block) + len(payload)}\r\n".encode(),
                block,
                payload,
                b"\r\n",
            )
        )
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    async def _request_new_style(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 1,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if self.is_draining_pubs:
            raise errors.ConnectionDrainingError
        if not self._resp_sub_prefix:
            await self._init_request_sub()
        assert self._resp_sub_prefix is not None
        token = self._nuid.next().decode()
        replies: dict[str, asyncio.Future[Any]] = self._resp_map
        loop = asyncio.get_running_loop()
        future = replies[token] = loop.create_future()
        timer = loop.call_later(timeout, _expire, future)
        try:
            await self.publish(subject, payload, self._resp_sub_prefix.decode() + token, headers)
            return await future
        finally:
            timer.cancel()
            replies.pop(token, None)

    def header_block(self, headers: dict[str, str]) -> bytes:
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

    async def _process_headers(self, headers: bytes | None) -> dict[str, str] | None:
        if not headers or not headers.startswith(_BLOCK_START_BYTES):
            return await super()._process_headers(headers)
        return self.parse_headers(headers)

    def parse_headers(self, headers: bytes) -> dict[str, str] | None:
        """The dict nats-py builds from a header block without a status (``NATS/1.0\\r\\n...``);
        ``None`` when it holds no header."""
        names = self._in_names
        parsed: dict[str, str] = {}
        for line in headers[10:].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = names.get(name)
            if key is None:
                key = self._in_name(name)
            if key is _SKIP:
                continue
            parsed[key] = value.strip().decode("utf-8", "replace")
        return parsed or None

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


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(errors.TimeoutError())


def new_client() -> Any:
    """A ``PigeonClient`` on the nats-py versions it was checked against, else nats-py's own."""
    fits = hasattr(nats_client, "_HEADER_KEY_RE") and getattr(nats_client, "parse_email", 0) is None
    if (
        getattr(nats_client, "__version__", "") in TESTED_VERSIONS and fits
    ):  # fast_mail_parser parses differently
        return PigeonClient()
    return Client()
