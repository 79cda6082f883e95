"""nats-py's protocol parser, with a message's control line and payload read in one step.

nats-py's ``Parser.parse`` matches every control line against the ``MSG`` pattern first, then the
``HMSG`` one (a message with headers fails one regex before it matches), keeps the line's
fields in a dict, and goes round its loop once for the line and once for the payload. This
parser looks at the line's first byte to pick the one pattern that can match and, when the whole
message has arrived (the usual case), hands it to ``_process_msg`` at once: the same calls with
the same arguments, in the same order, as nats-py's. Anything else (a message split across
reads, ``PING``, ``INFO``, ``-ERR``, a malformed line) goes through nats-py's own steps, copied
below from nats-py 2.16.0 (Apache License 2.0), whose parser ``PigeonClient`` replaces only on
the versions in ``client.TESTED_VERSIONS``.
"""

from __future__ import annotations

import json
from typing import Any

from nats.errors import ProtocolError
from nats.protocol import parser as nats_parser
from nats.protocol.parser import (
    AWAITING_CONTROL_LINE,
    AWAITING_MSG_PAYLOAD,
    CRLF_SIZE,
    ERR_RE,
    HMSG_RE,
    INFO_RE,
    MAX_CONTROL_LINE_SIZE,
    MSG_RE,
    OK_RE,
    PING_RE,
    PONG_RE,
)

_H, _M = ord("H"), ord("M")


class PigeonParser(nats_parser.Parser):
    """nats-py's ``Parser`` with a faster path for whole messages (see the module docstring)."""

    async def parse(self, data: bytes = b"") -> None:
        nc = self.nc
        nc.wrote_since_read = False  # PigeonClient: the next flush may write at once
        self.buf.extend(data)
        steps = 0
        while buf := self.buf:  # read again after each step: a reconnect's reset() replaces it
            steps += 1
            if steps == 2:  # a burst read: what it causes is written together, by the flusher
                nc.wrote_since_read = True
            if self.state == AWAITING_CONTROL_LINE:
                first = buf[0]
                if first in (_H, _M):
                    if not await self._message(buf, first == _H):
                        return
                elif not await self._other(buf):
                    return
            elif not await self._payload(buf):
                return

    async def _message(self, buf: bytearray, with_headers: bool) -> bool:
        """Read the message whose control line starts ``buf``; whole, hand it on. Returns
        whether to go on parsing (``False``: wait for more bytes)."""
        line = _usual_line(buf, with_headers)
        if line is None:  # not whole, or not as a server writes it: nats-py's pattern decides
            line = _matched_line(buf, with_headers)
            if line is None:
                return self._unknown(buf)
        subject, sid, reply, header_needed, needed, start = line
        if len(buf) < start + needed + CRLF_SIZE:  # the payload is still on its way
            self.msg_arg.update(subject=subject, sid=sid, reply=reply)
            self.needed, self.header_needed = needed, header_needed
            self.state = AWAITING_MSG_PAYLOAD
            del buf[:start]
            return True
        headers = bytes(buf[start : start + header_needed]) if header_needed > 0 else None
        payload = bytes(buf[start + header_needed : start + needed])
        del buf[: start + needed + CRLF_SIZE]
        await self.nc._process_msg(sid, subject, reply, payload, headers)
        return True

    def _unknown(self, buf: bytearray) -> bool:
        """No pattern matched the start of ``buf``: a line not whole yet (``False``: wait for
        more bytes), or one nats-py does not know (``ProtocolError``)."""
        if len(buf) < MAX_CONTROL_LINE_SIZE and b"\r\n" in buf:
            raise ProtocolError("nats: unknown protocol")
        return False

    async def _payload(self, buf: bytearray) -> bool:
        """nats-py's step for the payload of a message whose control line came in an earlier
        read. Returns whether to go on parsing."""
        if len(buf) < self.needed + CRLF_SIZE:
            return False
        arg: dict[str, Any] = self.msg_arg
        headers = None
        if self.header_needed > 0:
            headers = bytes(buf[: self.header_needed])
            payload = bytes(buf[self.header_needed : self.needed])
            self.header_needed = 0
        else:
            payload = bytes(buf[: self.needed])
        del buf[: self.needed + CRLF_SIZE]
        self.state = AWAITING_CONTROL_LINE
        await self.nc._process_msg(arg["sid"], arg["subject"], arg["reply"], payload, headers)
        return True

    async def _other(self, buf: bytearray) -> bool:
        """nats-py's steps for ``+OK``, ``-ERR``, ``PING``, ``PONG`` and ``INFO``. Returns
        whether to go on parsing."""
        nc = self.nc
        if ok := OK_RE.match(buf):
            del buf[: ok.end()]
        elif err := ERR_RE.match(buf):
            await nc._process_err(err.groups()[0].decode().lower())
            del buf[: err.end()]
        elif ping := PING_RE.match(buf):
            del buf[: ping.end()]
            await nc._process_ping()
        elif pong := PONG_RE.match(buf):
            del buf[: pong.end()]
            await nc._process_pong()
        elif info := INFO_RE.match(buf):
            await nc._process_info(json.loads(info.groups()[0].decode()))
            del buf[: info.end()]
        else:
            return self._unknown(buf)
        return True


Line = tuple[bytes, int, bytes, int, int, int]
"""A message's control line: subject, sid, reply subject (``b""``: none), header block size,
header and payload size, and where in the buffer the header block starts."""


def _usual_line(buf: bytearray, with_headers: bool) -> Line | None:
    """The control line starting ``buf`` when it is whole and written as the server writes it
    (fields separated by single spaces, sid and sizes in digits); else ``None``. Such a line
    gives the fields nats-py's pattern gives it (``_matched_line``), for half of its cost."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    text = bytes(buf[:end])
    fields = text.split()
    if b" ".join(fields) != text:  # other whitespace, or more than one space
        return None
    count = len(fields) - with_headers  # MSG subject sid [reply] [header_size] size
    if count == 4:
        reply = b""
    elif count == 5:
        reply = fields[3]
    else:
        return None
    if fields[0] != (b"HMSG" if with_headers else b"MSG"):
        return None
    sid, size = fields[2], fields[-1]
    header_size = fields[-2] if with_headers else b"0"
    if not (sid.isdigit() and size.isdigit() and header_size.isdigit()):
        return None
    try:
        return fields[1], int(sid), reply, int(header_size), int(size), end + 2
    except ValueError:  # over Python's digit limit: the pattern's path raises ProtocolError
        return None


def _matched_line(buf: bytearray, with_headers: bool) -> Line | None:
    """The control line starting ``buf`` as nats-py's pattern reads it; ``None`` if it does
    not match. Raises ``ProtocolError`` for a sid or size that is no number."""
    match = (HMSG_RE if with_headers else MSG_RE).match(buf)
    if match is None:
        return None
    try:
        if with_headers:
            subject, sid, _, reply, header_size, size = match.groups()
            header_needed = int(header_size)
        else:
            subject, sid, _, reply, size = match.groups()
            header_needed = 0
        return subject, int(sid), reply or b"", header_needed, int(size), match.end()
    except Exception:
        raise ProtocolError("nats: malformed MSG") from None
