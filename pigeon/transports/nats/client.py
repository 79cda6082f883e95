"""A nats-py client whose header codec and requests are faster, with the same bytes on the wire.

``PigeonClient`` keeps nats-py's rules and makes:

- headers: the same blocks sent and the same dicts received, their per-name work cached
  (``header_codec.HeaderCodec``);
- requesting: the same inbox subscription and reply map, each request's token the next number
  of a counter (in hex; unique per connection, as the inbox's random prefix is: nats-py draws a
  NUID and two random bytes, 3-5 us in Python), and a timer instead of ``asyncio.wait_for``;
- receiving: a status line (``NATS/1.0 503``) goes to nats-py's own header parser;
- sending a header block built already (``queue_block``, ``request(block=...)``:
  ``wire.plain_block``; see ``writes``);
- writing: a request or reply on the wire before its caller yields, not a trip through the
  event loop later (``writes.WritesAtOnce``);
- parsing: a whole message's control line and payload in one step (``parser.PigeonParser``);
- delivering: a reply goes straight from the connection's reader to its request's future, and a
  message of a subscription that asked for it (``take_directly``: an rpc server, every event
  subscription into pigeon's own buffer) to that subscription, instead of through the
  subscription's queue and task.

These replace private methods of nats-py, so they are used only with the nats-py versions they
were checked against (``TESTED_VERSIONS``, by ``tests/nats/test_header_codec.py`` on random
header sets and ``tests/nats/test_parser.py`` on random protocol streams); on any other version
``new_client`` returns nats-py's own ``Client``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any, Protocol

from nats import errors
from nats.aio import client as nats_client
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.aio.transport import TcpTransport

from pigeon.transports.nats.failover import BoundedCloseTransport
from pigeon.transports.nats.header_codec import HeaderCodec
from pigeon.transports.nats.parser import PigeonParser
from pigeon.transports.nats.writes import WritesAtOnce

TESTED_VERSIONS = frozenset({"2.16.0"})
"""nats-py versions whose protocol parser (``parser.PigeonParser``), ``publish``, ``request``,
``_send_publish``, ``_init_request_sub``, ``_process_msg``, ``_process_headers``,
``_flush_pending``, ``_send_ping``, ``_process_pong`` and ``_connect_to_server`` (to use
``failover.BoundedCloseTransport``) ``PigeonClient`` replaces, and whose
subscriptions' queue (``_pending_queue``, ``_pending_size``), ``_send_unsubscribe``, command
buffer (``_pending``, ``_pending_data_size``, ``_max_pending_size``, ``_flush_queue``),
``_pongs``, ``_pongs_received``, ``_pings_outstanding`` and ``TcpTransport._io_writer`` it
uses."""

_NO_RESPONDERS_BLOCK = b"NATS/1.0 503\r\n\r\n"
"""The header block of NATS's "no responders" status, as the server sends it (without its
``Nats-Subject`` header, which no client needs)."""
_STATUS = "Status"
"""The header nats-py gives a status line's code (``nats.js.api.Header.STATUS``)."""
_BLOCK_START_BYTES = b"NATS/1.0\r\n"
_STATUS_START = b"NATS/1.0 "


class PigeonClient(WritesAtOnce):
    """nats-py's ``Client`` with a faster header codec (see the module docstring)."""

    header_block: Callable[[dict[str, str]], bytes]
    """``HeaderCodec.block``: the ``NATS/1.0`` block nats-py would build for some headers."""
    parse_headers: Callable[[bytes], dict[str, str] | None]
    """``HeaderCodec.parse``: the dict nats-py builds from a block without a status."""
    parse_status: Callable[[bytes], dict[str, str]]
    """``HeaderCodec.parse_status``: the headers of a block with a status line, as text."""

    def __init__(self) -> None:
        super().__init__()
        self._ps = PigeonParser(self)
        codec = HeaderCodec()
        self.header_block = codec.block
        self.parse_headers = codec.parse
        self.parse_status = codec.parse_status
        self._replies_sid = -1
        """The sid of the inbox subscription that receives replies to requests."""
        self._takers: dict[int, Taker] = {}
        self._tokens = itertools.count()
        self._reply_prefix = ""
        """``_resp_sub_prefix`` decoded, once."""

    def take_directly(self, subscription: Subscription, taker: Taker) -> None:
        """Hand ``subscription``'s messages to ``taker.take`` as they are read, whenever
        ``taker.ready()`` and none waits in the subscription's queue; the others go through the
        queue to its callback as usual. Until ``stop_taking``."""
        self._takers[subscription._id] = taker

    def stop_taking(self, subscription: Subscription) -> None:
        self._takers.pop(subscription._id, None)

    def take_held(self, subscription: Subscription) -> list[Msg]:
        """Take out of ``subscription``'s queue the messages that wait there for its task (which
        will not see them), oldest first."""
        queue: asyncio.Queue[Msg] = subscription._pending_queue
        held = []
        while not queue.empty():
            msg = queue.get_nowait()
            queue.task_done()
            subscription._pending_size -= len(msg.data)
            held.append(msg)
        return held

    async def stop_interest(self, subscription: Subscription) -> None:
        """Ask the server for no more of ``subscription``'s messages, but keep it here (its task
        and its taker): what the server sent before it read this still reaches it. Raises
        nats-py's errors (``ConnectionClosedError``...)."""
        if self.is_closed:
            raise errors.ConnectionClosedError
        await self._send_unsubscribe(subscription._id)

    async def send_no_responders(self, subject: str) -> None:
        """Publish NATS's "no responders" status (503, no payload) on ``subject``: the requester
        waiting there raises its client's no-responders error (nats-py: ``NoRespondersError``).
        Raises ``ConnectionClosedError`` once the connection is closed."""
        if self.is_closed:
            raise errors.ConnectionClosedError
        size = len(_NO_RESPONDERS_BLOCK)
        head = f"HPUB {subject} {size} {size}\r\n".encode()
        await self._send_command(b"".join((head, _NO_RESPONDERS_BLOCK, b"\r\n")))
        await self._flush_pending()

    async def _init_request_sub(self) -> None:
        self._resp_map = {}
        prefix = self._resp_sub_prefix = self._inbox_prefix[:]
        prefix += b"." + self._nuid.next() + b"."
        self._reply_prefix = prefix.decode()
        subscription = await self.subscribe(self._reply_prefix + "*", cb=self._request_sub_callback)
        self._replies_sid = subscription._id

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """nats-py's ``publish``, the connection's state read once instead of through four
        properties: the same checks, the same errors, in the same order."""
        if not self._skip_subject_validation:
            nats_client._validate_subject(subject)
            if reply:
                nats_client._validate_subject(reply)
        await self._publish_valid(subject, payload, reply, headers)

    async def _publish_valid(
        self, subject: str, payload: bytes, reply: str, headers: dict[str, str] | None
    ) -> None:
        """``publish`` once the subjects are known to be valid."""
        self._check_status(len(payload))
        await self._send_publish(subject, reply, payload, len(payload), headers)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:  # headers: None without any, though nats-py's annotation says bytes
        """Two kinds of message skip the subscription's queue and task, one trip through the
        event loop each: a reply to a request goes straight to the request's future, and a
        message of a ``take_directly`` subscription to its taker, if none waits in that queue
        (taking one now would pass it) and nats-py has no other use for the subscription
        (JetStream, auto-unsubscribe). Inline, not in helpers: a call costs ~600 instructions,
        and this runs once per message received."""
        future = taker = None
        if sid == self._replies_sid:
            future = self._reply_future(sid, subject, data)
            if future is None:
                return
        else:
            taker = self._takers.get(sid)
            subscription = self._subs.get(sid)
            if (
                taker is None
                or subscription is None
                or not taker.ready()
                or not subscription._pending_queue.empty()
                or subscription._jsi is not None
                or subscription._max_msgs != 0
            ):
                await super()._process_msg(sid, subject, reply, data, headers)
                return
            subscription._received += 1  # what nats-py counts for a message it hands on
            stats = self.stats
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
        parsed = None  # then the Msg nats-py's _process_msg builds (its fields given in order)
        if headers is not None:
            if headers.startswith(_BLOCK_START_BYTES):
                parsed = self.parse_headers(headers)
            elif headers.startswith(_STATUS_START):  # a status line (no responders)
                parsed = self.parse_status(headers)
        if parsed is None:  # none, or an empty block
            parsed = await super()._process_headers(headers)
        msg = self.msg_class(self, subject.decode(), reply.decode(), data, parsed, None, False, sid)
        if future is not None:
            future.set_result(msg)
            return
        assert taker is not None
        try:
            taker.take(msg)
        except Exception as exc:  # as nats-py treats a failing callback
            await self._error_cb(exc)

    def _count(self, subscription: Subscription | None, data: bytes) -> None:
        """What nats-py counts for a message it reads (and, with its subscription, hands on)."""
        if subscription is not None:
            subscription._received += 1
        stats = self.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)

    def _reply_future(self, sid: int, subject: bytes, data: bytes) -> asyncio.Future[Any] | None:
        """The future of the request a reply answers; ``None`` for a late reply or one to a
        request that gave up (nats-py drops those too)."""
        subscription = self._subs.get(sid)
        self._count(subscription, data)  # nats-py counts what it reads, drained or not
        if subscription is None:
            return None
        prefix = self._resp_sub_prefix
        future = self._resp_map.get(subject[len(prefix) :].decode()) if prefix else None
        return None if future is None or future.done() else future

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

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 0.5,
        old_style: bool = False,
        headers: dict[str, str] | None = None,
        *,
        block: bytes | None = None,
    ) -> Msg:
        """nats-py's ``request`` through the shared inbox, one coroutine instead of three (the
        reply subject is the inbox's, checked when it was subscribed to); ``block``: a header
        block built already, instead of ``headers`` (see ``queue_block``). Raises what
        nats-py's does: ``TimeoutError``, ``NoRespondersError``, ``BadSubjectError``..."""
        if old_style:
            return await super().request(subject, payload, timeout, old_style, headers)
        if not self._skip_subject_validation:
            nats_client._validate_subject(subject)
        if self._status == Client.DRAINING_PUBS:
            raise errors.ConnectionDrainingError
        if not self._resp_sub_prefix:
            await self._init_request_sub()
        token = f"{next(self._tokens):x}"
        replies: dict[str, asyncio.Future[Msg]] = self._resp_map
        loop = asyncio.get_running_loop()
        future = replies[token] = loop.create_future()
        timer = loop.call_later(timeout, _expire, future)
        try:
            if block is None:
                await self._publish_valid(subject, payload, self._reply_prefix + token, headers)
            else:
                command = self._block_command(subject, self._reply_prefix + token, payload, block)
                await self._send_command(command)
                if self._flush_queue is not None and self._flush_queue.empty():
                    await self._flush_pending()
            msg: Msg = await future
        finally:
            timer.cancel()
            replies.pop(token, None)
        if msg.headers and msg.headers.get(_STATUS) == nats_client.NO_RESPONDERS_STATUS:
            raise errors.NoRespondersError
        return msg

    async def _connect_to_server(self, s: Any) -> None:
        await super()._connect_to_server(s)
        # nats-py makes its transport here whenever the one it has is falsy (not connected):
        # the same object, with a bounded close
        if type(self._transport) is TcpTransport:
            self._transport.__class__ = BoundedCloseTransport

    async def _process_pong(self) -> None:
        # PONGs answer PINGs in order: the first future waiting is this PONG's. nats-py 2.16
        # sets its result even when its flush timed out (cancelled it), and the InvalidStateError
        # ends its reading task: the connection then reads nothing until found stale.
        if self._pongs and self._pongs[0].done():
            self._pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()

    async def _process_headers(self, headers: bytes | None) -> dict[str, str] | None:
        if headers and headers.startswith(_STATUS_START):
            return self.parse_status(headers)
        if not headers or not headers.startswith(_BLOCK_START_BYTES):
            return await super()._process_headers(headers)
        return self.parse_headers(headers)


async def registered(client: Client) -> None:
    """Return once the server has every command sent so far (a subscription: it will deliver).

    nats-py 2.16's own ``flush`` writes its PING straight to the socket, ahead of commands still
    in its buffer (a ``SUB`` just made), so its PONG may come before the server saw them: a
    publish right after ``subscribe`` then found no subscriber. The first flush's round trip
    lets nats-py's flusher write the buffer; the second PING follows it. A ``PigeonClient``
    sends the PING after its buffer (``writes.WritesAtOnce``): one flush. Once it returns, every
    message the server sent us before reading them has been read too."""
    await client.flush()
    if not isinstance(client, PigeonClient):
        await client.flush()


class Taker(Protocol):
    """Takes messages of a subscription as they are read (``PigeonClient.take_directly``)."""

    def ready(self) -> bool:
        """Whether ``take`` may be called now; it must not wait."""

    def take(self, msg: Msg) -> None:
        """Handle ``msg`` (start a task for it, or hold it): called by the connection's
        reading task."""


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
