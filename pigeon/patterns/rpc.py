"""Request-reply: one server of a subject answers; failures reach the caller as exceptions."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pigeon import headers as h
from pigeon.codecs import PROTOBUF, Codec, Decoder, codec_of, decoder_for
from pigeon.codecs.protobuf import is_protobuf_message
from pigeon.errors import ConfigurationError, DecodeError, EncodeError, RemoteError
from pigeon.failures import describe, log_failure, stops_the_handler
from pigeon.handlers import HandlerSpec
from pigeon.message import Envelope, Message
from pigeon.middleware import CallNext, Middleware, handle_chain, run_send
from pigeon.patterns.outgoing import envelope_for
from pigeon.transports.base import Delivery, Requests, Subscription, Transport
from pigeon.transports.cutoff import Held
from pigeon.transports.runner import own_cancel_pending

log = logging.getLogger("pigeon")

PATTERN = "rpc"
DEFAULT_TIMEOUT = 5.0
BAD_REQUEST, HANDLER_ERROR = "400", "500"
"""Error codes of a reply: the request failed decoding or validation; the handler raised."""
SERVICE_ERROR_TYPE = h.SERVICE_ERROR_TYPE
"""``RemoteError.type`` of an error reply from a NATS service that is not pigeon."""


@dataclass(frozen=True, slots=True)
class Responder:
    """The server of requests on ``subject``; see ``App.rpc``."""

    subject: str
    handler: HandlerSpec
    codec: Codec | None
    """Encodes replies; ``None``: the codec the request came in with, if it can encode the reply."""
    concurrency: int
    middleware: tuple[Middleware, ...] = ()
    chain: CallNext | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chain", handle_chain(self.middleware, self.handler.call_message))

    def held(self) -> Held:
        """What this server's calls hold, for the line saying some were cut off at close."""
        label = f"rpc {self.handler.name} of {self.subject!r}"
        return Held(label, "request", self.handler.runs == "thread")

    async def start(self, transport: Transport) -> Subscription:
        """Serve ``subject`` on ``transport``'s requests, sharing them with its other servers."""
        requests = transport.requests
        handle = functools.partial(self.handle, requests)  # no coroutine of its own per request
        return await requests.serve(self.subject, handle, concurrency=self.concurrency)

    async def handle(self, requests: Requests, delivery: Delivery) -> None:
        """Answer one request: its reply, or the error it raised. Expired requests are dropped."""
        request = delivery.envelope
        if _expired(request):
            log.warning(
                "pigeon: dropped expired request subject=%s message_id=%s",
                delivery.subject,
                request.message_id,
            )
            if (acking := delivery.ack()) is not None:
                await acking
            return
        try:
            answer = await self._answer(request, delivery.subject)
        except BaseException as exc:  # the App stopping: tell the caller now, not at its deadline
            if request.reply_to and stops_the_handler(exc):
                stopped = ServerStopped(f"rpc {self.handler.name} was stopped before it answered")
                await self._reply(requests, delivery, error_envelope(stopped))
                if (acking := delivery.ack()) is not None:  # answered: handed back, another
                    await acking  # server would run it again
            raise
        stopping = None
        if (withdrawal := own_cancel_pending()) is not None:
            try:  # the handler cancelled its own task: not its reply, nor the ack
                await withdrawal
            except asyncio.CancelledError as exc:  # the App stopping meanwhile: it answered
                stopping = exc
        if request.reply_to:
            await self._reply(requests, delivery, answer)
        if (acking := delivery.ack()) is not None:
            await acking
        if stopping is not None:
            raise stopping

    async def _reply(self, requests: Requests, delivery: Delivery, answer: Envelope) -> None:
        """Send ``answer``; one the transport refuses (too large, say) goes as that error
        instead, so the caller learns why at once rather than timing out."""
        request = delivery.envelope
        assert request.reply_to is not None
        answer.correlation_id = request.correlation
        try:
            await requests.reply(request.reply_to, answer)
            return
        except Exception as exc:
            log_failure("could not send the reply", delivery.subject, request, 1, exc)
            answer = error_envelope(exc)
            answer.correlation_id = request.correlation
        try:
            await requests.reply(request.reply_to, answer)
        except Exception as exc:
            log_failure("could not send the error reply", delivery.subject, request, 1, exc)

    async def _answer(self, request: Envelope, subject: str) -> Envelope:
        try:
            if self.chain is None:
                body = self.handler.decode_body(request)
                result = await self.handler.call(body, request, subject)
            else:
                result = await self.chain(Message.of(request, subject, 1, PATTERN, self.subject))
            return envelope_for(result, self.codec or _mirror(request, result))
        except BaseException as exc:
            if stops_the_handler(exc):
                raise
            level = logging.WARNING if isinstance(exc, DecodeError | EncodeError) else logging.ERROR
            log_failure(f"rpc {self.handler.name} failed", subject, request, 1, exc, level)
            return error_envelope(exc)


class ServerStopped(Exception):
    """What the caller of a request hears (``RemoteError.type == "ServerStopped"``) when the App
    serving it stopped before the handler answered (``shutdown_timeout`` ended): the request may
    or may not have taken effect."""


def error_envelope(exc: BaseException) -> Envelope:
    """The reply that carries ``exc`` to the caller, who raises it as ``RemoteError``.

    Its body is JSON any client can read, ``{"error": {"type": ..., "message": ...}}``; pigeon's
    headers say the same (``x-pigeon-error-*``, with code 400 for a request that failed decoding or
    validation, 500 for a handler error), and they alone make it an error reply.
    """
    error_type, message = type(exc).__name__, describe(exc)[:1000]
    code = BAD_REQUEST if isinstance(exc, DecodeError) else HANDLER_ERROR
    body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
    text = h.encode_text(message)  # line breaks and all, whatever a transport does to headers
    headers = {h.ERROR_TYPE: error_type, h.ERROR_MESSAGE: text, h.ERROR_CODE: code}
    return Envelope(body, headers, "application/json")


async def request(
    requests: Requests,
    subject: str,
    obj: Any,
    *,
    codec: Codec | None,
    reply: Any,
    timeout: float,
    headers: dict[str, str] | None,
    send: tuple[Callable[..., Awaitable[Any]], ...] = (),
) -> Any:
    """Send ``obj`` to the server of ``subject`` (through the ``send`` middleware steps) and
    return its reply decoded into ``reply``.

    Raises ``RemoteError`` when the handler raised, ``NoResponders`` at once when nobody serves
    the subject, ``RequestTimeout`` after ``timeout`` seconds, ``DecodeError`` for a reply that does
    not fit ``reply``.
    """
    envelope = envelope_for(obj, codec, headers)
    envelope.headers[h.DEADLINE] = f"{time.time() + timeout:.6f}"  # repr() costs twice as much
    envelope.correlation_id = envelope.message_id  # a fresh envelope: set, not copied
    if not send:
        return _decoded(await requests.request(subject, envelope, timeout), reply, subject)

    async def deliver(message: Message) -> Message:
        answer = await requests.request(message.subject, message.envelope(), timeout)
        return Message.of(answer, message.subject, pattern="reply", route=message.route)

    message = Message.outgoing(envelope, subject, "request")
    answer: Message = await run_send(send, message, deliver)
    return _decoded(answer.envelope(), reply, subject)


def check_timeout(timeout: float) -> None:
    """``ConfigurationError`` unless ``timeout`` is a positive, finite number of seconds."""
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (0 < timeout < math.inf)
    ):
        raise ConfigurationError(
            f"timeout={timeout!r}: give the seconds the caller waits for the reply, a positive "
            "finite number (e.g. timeout=5)"
        )


def _decoded(answer: Envelope, reply: Any, subject: str) -> Any:
    """The reply's value, or ``RemoteError`` if its headers say it is an error reply: pigeon's,
    or the NATS services protocol's. The body's shape never makes a reply an error; one that
    does not fit ``reply`` is a ``DecodeError`` naming the request's ``subject``."""
    headers = answer.headers
    if h.ERROR_TYPE in headers:
        code = _code(headers.get(h.ERROR_CODE) or headers.get(h.SERVICE_ERROR_CODE))
        text = h.decode_text(headers.get(h.ERROR_MESSAGE, ""))
        raise RemoteError(headers[h.ERROR_TYPE], text, code)
    if h.SERVICE_ERROR_CODE in headers or h.SERVICE_ERROR in headers:
        text, code = headers.get(h.SERVICE_ERROR, ""), _code(headers.get(h.SERVICE_ERROR_CODE))
        raise RemoteError(SERVICE_ERROR_TYPE, text, code)
    try:
        return _reply_decoder(reply)(answer.body, answer.content_type, answer.headers)
    except DecodeError as exc:
        raise DecodeError(f"the reply to {subject!r}: {exc}") from exc


def _code(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _reply_decoder(reply: Any) -> Decoder:
    return decoder_for(reply)


_RAW_TYPES = (bytes, bytearray, memoryview, str)
"""A tuple: ``isinstance`` with one is quicker than with a union of them, once per reply."""


def _mirror(request: Envelope, result: Any) -> Codec | None:
    """The request's codec for the reply when it can encode the result; else ``None`` (by type:
    ``bytes`` and ``str`` go raw, labelled as such, never as the request's codec)."""
    if not request.content_type:  # a plain client's request: the reply in the result's own codec
        return None
    if isinstance(result, _RAW_TYPES):
        return None
    codec = codec_of(request.content_type)
    if codec is PROTOBUF and not is_protobuf_message(result):
        return None
    return codec


def _expired(request: Envelope) -> bool:
    deadline = request.headers.get(h.DEADLINE)
    if deadline is None:
        return False
    try:
        return time.time() > float(deadline)
    except ValueError:
        return False
